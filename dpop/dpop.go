package dpop

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Wire names (RFC 9449 §4.1, §4.2, §8).
const (
	// Header is the request header field that carries a proof (RFC 9449 §4.1).
	Header = "DPoP"
	// HeaderNonce is the response header field that carries a server nonce (RFC 9449 §8.1).
	HeaderNonce = "DPoP-Nonce"
	// Typ is the JOSE typ of a proof (RFC 9449 §4.2).
	Typ = "dpop+jwt"
)

// Defaults applied by Config for its zero fields (profile §3, §5).
const (
	// NoClockSkew as Config.ClockSkew tolerates no clock difference (the zero value selects
	// DefaultClockSkew).
	NoClockSkew      = -1 * time.Nanosecond
	DefaultMaxAge    = 60 * time.Second
	DefaultClockSkew = 30 * time.Second
	DefaultMaxBytes  = 16 << 10
)

// maxJTILen bounds the jti claim (bytes); longer values are refused before they reach a replay store.
const maxJTILen = 256

// asymmetricAlgorithms are the JWS algorithms a proof may ever use (RFC 9449 §4.3 step 5:
// registered, asymmetric, not none). Config.Algorithms is intersected with this set, so HS* and
// none are never accepted whatever the configuration says.
var asymmetricAlgorithms = map[string]bool{
	"ES256": true, "ES384": true, "ES512": true,
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"EdDSA": true,
}

// DefaultAlgorithms returns the allow-list used when Config.Algorithms is empty (profile §3):
// ES256 ES384 ES512 PS256 PS384 PS512 EdDSA RS256. The slice is a fresh copy.
func DefaultAlgorithms() []string {
	return []string{"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA", "RS256"}
}

// Errors. Header-level failures (ErrMissing, ErrMultiple, ErrTooLarge) are request errors
// (profile §2: 400 invalid_request); every proof failure wraps ErrInvalid (profile §2: 400
// invalid_dpop_proof) and one more specific sentinel, asserted with errors.Is.
var (
	ErrMissing  = errors.New("dpop: no DPoP header")
	ErrMultiple = errors.New("dpop: more than one DPoP proof")
	ErrTooLarge = errors.New("dpop: proof too large")
	ErrInvalid  = errors.New("dpop: invalid proof")

	ErrMalformed       = fmt.Errorf("%w: not a compact JWS", ErrInvalid)
	ErrTyp             = fmt.Errorf("%w: typ", ErrInvalid)
	ErrAlg             = fmt.Errorf("%w: alg", ErrInvalid)
	ErrJWK             = fmt.Errorf("%w: jwk", ErrInvalid)
	ErrSignature       = fmt.Errorf("%w: signature", ErrInvalid)
	ErrClaims          = fmt.Errorf("%w: claims", ErrInvalid)
	ErrHTM             = fmt.Errorf("%w: htm", ErrInvalid)
	ErrHTU             = fmt.Errorf("%w: htu", ErrInvalid)
	ErrIAT             = fmt.Errorf("%w: iat", ErrInvalid)
	ErrATH             = fmt.Errorf("%w: ath", ErrInvalid)
	ErrDuplicateMember = fmt.Errorf("%w: duplicate JSON member", ErrInvalid)
	ErrCrit            = fmt.Errorf("%w: crit", ErrInvalid)
)

// Proof is a verified DPoP proof.
type Proof struct {
	JKT      string          // RFC 7638 SHA-256 thumbprint (base64url, no padding) of JWK
	JWK      jose.JSONWebKey // public key from the header
	JTI      string
	IssuedAt time.Time
	Nonce    string // "" when absent (the caller checks it against its nonce policy)
	HTM, HTU string // as presented in the proof
}

// Expect describes the request a proof must match.
type Expect struct {
	Method      string // request method, compared exactly with htm
	URL         string // expected htu: scheme://host[:port]/path; the caller passes issuer+path (never Host)
	AccessToken string // when non-empty, ath must equal base64url(SHA-256(AccessToken)) (RFC 9449 §4.3 step 12)
}

// Config holds the verification policy. Zero fields take the defaults.
type Config struct {
	Algorithms []string      // allow-list; default DefaultAlgorithms(); HS* and none are never allowed
	MaxAge     time.Duration // iat window, default 60s
	ClockSkew  time.Duration // default 30s; NoClockSkew for none (see Skew)
	MaxBytes   int           // default 16 KiB (checked before parsing)
	Now        func() time.Time
}

// policy is a Config with its defaults applied.
type policy struct {
	algorithms map[string]bool
	maxAge     time.Duration
	skew       time.Duration
	maxBytes   int
	now        time.Time
}

// Skew is the Config.ClockSkew (of this package and of clientauth, which shares NoClockSkew)
// for a tolerance taken from configuration, where 0 means none.
func Skew(d time.Duration) time.Duration {
	if d == 0 {
		return NoClockSkew
	}
	return d
}

func (c Config) policy() policy {
	p := policy{maxAge: c.MaxAge, skew: c.ClockSkew, maxBytes: c.MaxBytes, algorithms: map[string]bool{}}
	if p.maxAge <= 0 {
		p.maxAge = DefaultMaxAge
	}
	switch {
	case p.skew == 0:
		p.skew = DefaultClockSkew
	case p.skew < 0:
		p.skew = 0
	}
	if p.maxBytes <= 0 {
		p.maxBytes = DefaultMaxBytes
	}
	algs := c.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms()
	}
	for _, a := range algs {
		if asymmetricAlgorithms[a] {
			p.algorithms[a] = true
		}
	}
	if c.Now != nil {
		p.now = c.Now()
	} else {
		p.now = time.Now()
	}
	return p
}

// Verify checks a DPoP proof against the request described by exp: RFC 9449 §4.3 steps 2 to 9,
// 11 and 12 (ath), in spec order, except that the header checks (steps 4, 5, 7) run before the
// signature (step 6) and the claims are read only after it. Step 1 is ExtractHeader's; step 10
// (nonce policy) and jti replay (§11.1) are the caller's, fed by Proof.Nonce and Proof.JTI.
// Every failure wraps ErrInvalid except ErrTooLarge.
func Verify(proof string, exp Expect, cfg Config) (*Proof, error) {
	p := cfg.policy()
	if err := checkSize(proof, p.maxBytes); err != nil {
		return nil, err
	}
	hdr, err := checkWellFormed(proof)
	if err != nil {
		return nil, err
	}
	if err := checkCrit(hdr); err != nil {
		return nil, err
	}
	if err := checkTyp(hdr); err != nil {
		return nil, err
	}
	alg, err := checkAlg(hdr, p.algorithms)
	if err != nil {
		return nil, err
	}
	jwk, err := checkJWKPublic(hdr)
	if err != nil {
		return nil, err
	}
	if err := checkAlgMatchesKey(alg, jwk); err != nil {
		return nil, err
	}
	payload, err := verifySignature(proof, alg, jwk)
	if err != nil {
		return nil, err
	}
	c, err := checkRequiredClaims(payload)
	if err != nil {
		return nil, err
	}
	if err := checkHTM(c.htm, exp.Method); err != nil {
		return nil, err
	}
	if err := checkHTU(c.htu, exp.URL); err != nil {
		return nil, err
	}
	if err := checkIAT(c.iat, p.now, p.maxAge, p.skew); err != nil {
		return nil, err
	}
	if err := checkATH(c, exp.AccessToken); err != nil {
		return nil, err
	}
	jkt, err := Thumbprint(jwk)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrJWK, err)
	}
	return &Proof{
		JKT:      jkt,
		JWK:      *jwk,
		JTI:      c.jti,
		IssuedAt: c.iat,
		Nonce:    c.nonce,
		HTM:      c.htm,
		HTU:      c.htu,
	}, nil
}

// ErrNoKey is returned by Thumbprint for a nil or empty key.
var ErrNoKey = errors.New("dpop: no key")

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of k, base64url without padding (the value
// of cnf.jkt, RFC 9449 §6.1). A private key yields the thumbprint of its public part.
func Thumbprint(k *jose.JSONWebKey) (string, error) {
	if k == nil || k.Key == nil {
		return "", ErrNoKey
	}
	sum, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("dpop: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// AccessTokenHash returns the ath value for token: base64url of the SHA-256 of its ASCII
// bytes, without padding (RFC 9449 §4.2).
func AccessTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
