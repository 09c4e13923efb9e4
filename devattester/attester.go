package devattester

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Wire values of ABCA-09 §4.
const (
	// TypeClientAttestation is the typ header of a Client Attestation JWT (ABCA-09 §4).
	TypeClientAttestation = "oauth-client-attestation+jwt"
	// DefaultLifetime is the exp - iat of an attestation when Options.Lifetime is zero.
	DefaultLifetime = time.Hour
	// maxClientIDLen bounds the client_id an attester signs for.
	maxClientIDLen = 1024
)

// Options tunes an Attester. The zero value is usable.
type Options struct {
	Lifetime time.Duration    // exp - iat of each attestation; default DefaultLifetime (1h)
	Now      func() time.Time // clock, for tests; default time.Now
}

// Attester signs Client Attestation JWTs with one private key. It is safe for concurrent use.
type Attester struct {
	signer   jose.Signer
	public   jose.JSONWebKey
	lifetime time.Duration
	now      func() time.Time
}

// New returns an Attester signing with key, a private EC (P-256/P-384/P-521), RSA (>= 2048 bits)
// or Ed25519 JWK, as returned by LoadKey. An empty alg, use or kid is filled in as LoadKey does;
// key itself is not modified.
func New(key *jose.JSONWebKey, opts Options) (*Attester, error) {
	if key == nil {
		return nil, fmt.Errorf("%w: no key", ErrUnsupportedKey)
	}
	k := *key
	if err := completeSigningKey(&k); err != nil {
		return nil, err
	}
	if opts.Lifetime < 0 {
		return nil, fmt.Errorf("%w: negative lifetime %s", ErrOptions, opts.Lifetime)
	}
	if opts.Lifetime == 0 {
		opts.Lifetime = DefaultLifetime
	}
	if opts.Lifetime < time.Second {
		return nil, fmt.Errorf("%w: lifetime %s is shorter than one second (exp and iat are whole seconds)", ErrOptions, opts.Lifetime)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Algorithm), Key: k},
		(&jose.SignerOptions{}).WithType(TypeClientAttestation),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupportedKey, err)
	}
	return &Attester{
		signer:   signer,
		public:   jose.JSONWebKey{Key: k.Public().Key, KeyID: k.KeyID, Algorithm: k.Algorithm, Use: k.Use},
		lifetime: opts.Lifetime,
		now:      opts.Now,
	}, nil
}

// attestationClaims is the Client Attestation JWT claim set of ABCA-09 §4: sub, iat, exp and
// cnf (RFC 7800 §3.2, jwk member only). There is no iss (removed in -08).
type attestationClaims struct {
	jwt.Claims
	Cnf confirmation `json:"cnf"`
}

type confirmation struct {
	JWK jose.JSONWebKey `json:"jwk"`
}

// Attest signs a Client Attestation JWT (ABCA-09 §4): header typ oauth-client-attestation+jwt, alg, kid;
// claims sub=clientID, iat, exp, cnf.jwk = the instance's PUBLIC key (reject private members / symmetric keys).
//
// cnf.jwk carries only the public key and the instance's own kid, alg and use (no x5c). A key the
// verifier would refuse under ABCA-09 §7.1 step 5 is refused here first.
func (a *Attester) Attest(clientID string, instanceKey *jose.JSONWebKey) (string, error) {
	if err := checkClientID(clientID); err != nil {
		return "", err
	}
	cnf, err := checkInstanceKey(instanceKey)
	if err != nil {
		return "", err
	}
	now := a.now()
	claims := attestationClaims{
		Claims: jwt.Claims{
			Subject:  clientID,
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(a.lifetime)),
		},
		Cnf: confirmation{JWK: cnf},
	}
	token, err := jwt.Signed(a.signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("devattester: sign attestation: %w", err)
	}
	return token, nil
}

// PublicJWKS returns the attester's public key as a JWK set (RFC 7517 §5), for an authorization
// server's attesters[].jwks or jwks_uri (ABCA-09 §9.7).
func (a *Attester) PublicJWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{a.public}}
}

// checkClientID requires an RFC 6749 client_id: one or more VSCHARs (%x20-7E, Appendix A.1),
// bounded in length. The attestation's sub is this value (ABCA-09 §4).
func checkClientID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrClientID)
	case len(id) > maxClientIDLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrClientID, maxClientIDLen)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: not UTF-8", ErrClientID)
	}
	for _, c := range []byte(id) {
		if c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w: characters outside %%x20-7E (RFC 6749 Appendix A.1)", ErrClientID)
		}
	}
	return nil
}

// checkInstanceKey implements, attester-side, ABCA-09 §7.1 step 5 and §3 (Client Instance Key):
// the key for cnf.jwk is a public asymmetric signature key (EC P-256/P-384/P-521 on its curve,
// RSA >= 2048 bits, or Ed25519), never private and never symmetric; its alg, when given, fits the
// key, and its use, when given, is sig. It returns the JWK to embed.
func checkInstanceKey(k *jose.JSONWebKey) (jose.JSONWebKey, error) {
	if k == nil || k.Key == nil {
		return jose.JSONWebKey{}, fmt.Errorf("%w: no key", ErrInstanceKey)
	}
	switch k.Key.(type) {
	case []byte:
		return jose.JSONWebKey{}, fmt.Errorf("%w: send the public half of an asymmetric key pair", ErrInstanceKeySymmetric)
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		return jose.JSONWebKey{}, fmt.Errorf("%w: send the public key only", ErrInstanceKeyPrivate)
	}
	if !k.IsPublic() || !k.Valid() {
		return jose.JSONWebKey{}, fmt.Errorf("%w: key type %T is not a valid EC, RSA or Ed25519 public key", ErrInstanceKey, k.Key)
	}
	algs, err := signatureAlgs(k.Key)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("%w: %w", ErrInstanceKey, err)
	}
	if k.Algorithm != "" && !slices.Contains(algs, jose.SignatureAlgorithm(k.Algorithm)) {
		return jose.JSONWebKey{}, fmt.Errorf("%w: alg %q does not fit the key", ErrInstanceKey, k.Algorithm)
	}
	if k.Use != "" && k.Use != "sig" {
		return jose.JSONWebKey{}, fmt.Errorf("%w: use %q (want sig)", ErrInstanceKey, k.Use)
	}
	return jose.JSONWebKey{Key: k.Key, KeyID: k.KeyID, Algorithm: k.Algorithm, Use: k.Use}, nil
}
