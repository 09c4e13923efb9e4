// Package testkit holds the helpers that tests of several packages share: keys, a settable
// clock, compact JWS signing (go-jose v4 and raw), the JWTs of attestation-based client
// authentication (ABCA-09) and DPoP (RFC 9449), and RFC 7638 thumbprints.
//
// Only _test.go files import it. It imports no package of this module, so that the internal
// tests of any package (storage, clientauth, ...) can use it without an import cycle.
package testkit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	_ "crypto/sha512" // SHA-384 and SHA-512 for SignInput
	"encoding/base64"
	"encoding/json"
	"net"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// The typ header values of the JWTs the tests sign.
const (
	TypAttestation = "oauth-client-attestation+jwt"     // Client Attestation JWT, ABCA-09 §4
	TypPoP         = "oauth-client-attestation-pop+jwt" // Client Attestation PoP JWT, ABCA-09 §5.1
	TypDPoP        = "dpop+jwt"                         // DPoP proof, RFC 9449 §4.2
)

// ECKey returns a fresh P-256 key.
func ECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	return ECKeyOn(t, elliptic.P256())
}

// ECKeyOn returns a fresh key on curve.
func ECKeyOn(t testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatalf("generate EC key: %v", err)
	}
	return k
}

// RSAKey returns a fresh RSA key of bits.
func RSAKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatalf("generate RSA key: %v", err)
	}
	return k
}

// Ed25519Key returns a fresh Ed25519 key.
func Ed25519Key(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate Ed25519 key: %v", err)
	}
	return k
}

// Clock is a settable clock, safe for concurrent use: tests advance it instead of sleeping.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock that reads start until advanced.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Listen returns a listener on a free loopback port.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// Serve runs serve in a goroutine until the test ends; then it calls stop (a context's cancel),
// waits for serve to return and fails the test if serve returned an error. Cleanups registered
// before Serve run after serve has returned.
func Serve(t testing.TB, serve func() error, stop func()) {
	done := make(chan error, 1)
	go func() { done <- serve() }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

// RandomString returns 16 random bytes, base64url-encoded (a jti, state or nonce).
func RandomString(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// MustJSON marshals v, failing the test on error.
func MustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of key (public or private), base64url-encoded:
// the jkt of RFC 9449 and the instance_jkt of authz.
func Thumbprint(t testing.TB, key any) string {
	t.Helper()
	tp, err := (&jose.JSONWebKey{Key: key}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatalf("thumbprint: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

// ATH is the ath claim of a DPoP proof for accessToken (RFC 9449 §4.2): base64url(SHA-256).
func ATH(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// SignJWS signs claims as a compact JWS with go-jose: alg with key, typ (omitted when empty)
// and the extra protected header members of hdr (e.g. kid, jwk).
func SignJWS(t testing.TB, key any, alg jose.SignatureAlgorithm, typ string, hdr map[jose.HeaderKey]any, claims any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	for k, v := range hdr {
		opts = opts.WithHeader(k, v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatalf("signer: %v", err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return tok
}

// Attestation signs an ES256 Client Attestation JWT (ABCA-09 §4) by attester under kid for
// clientID, binding instance (cnf.jwk), issued at iat and valid for an hour.
func Attestation(t testing.TB, attester any, kid, clientID string, instance crypto.PublicKey, iat time.Time) string {
	t.Helper()
	return SignJWS(t, attester, jose.ES256, TypAttestation, map[jose.HeaderKey]any{"kid": kid}, map[string]any{
		"sub": clientID, "iat": iat.Unix(), "exp": iat.Add(time.Hour).Unix(),
		"cnf": map[string]any{"jwk": jose.JSONWebKey{Key: instance}},
	})
}

// PoP signs an ES256 Client Attestation PoP JWT (ABCA-09 §5.1) by instance for aud, issued at
// iat, with a random jti and, when not empty, challenge.
func PoP(t testing.TB, instance any, aud, challenge string, iat time.Time) string {
	t.Helper()
	claims := map[string]any{"aud": aud, "jti": RandomString(t), "iat": iat.Unix()}
	if challenge != "" {
		claims["challenge"] = challenge
	}
	return SignJWS(t, instance, jose.ES256, TypPoP, nil, claims)
}

// DPoPProof signs an ES256 DPoP proof (RFC 9449 §4.2) of claims by key, its public key in the
// jwk header.
func DPoPProof(t testing.TB, key *ecdsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	return SignJWS(t, key, jose.ES256, TypDPoP, map[jose.HeaderKey]any{"jwk": jose.JSONWebKey{Key: key.Public()}}, claims)
}

// CompactJWS assembles a compact JWS from raw header and payload texts and a raw signature,
// for tokens no JOSE library would produce (duplicate members, wrong types, forged signatures).
func CompactJWS(header, payload, sig []byte) string {
	b64 := base64.RawURLEncoding.EncodeToString
	return b64(header) + "." + b64(payload) + "." + b64(sig)
}

// SignRaw builds a compact JWS from raw header and payload texts, signed by key for alg with
// SignInput: the texts go out verbatim, so tests can forge duplicate members and wrong types.
func SignRaw(t testing.TB, alg string, key any, header, payload []byte) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	input := b64(header) + "." + b64(payload)
	return input + "." + b64(SignInput(t, alg, key, []byte(input)))
}

// SignInput signs a JWS signing input per RFC 7518 §3 and RFC 8037 §3.1, with no JOSE library
// in the way: ES256/384/512 (*ecdsa.PrivateKey, r||s), RS and PS 256/384/512 (*rsa.PrivateKey),
// EdDSA (ed25519.PrivateKey), HS256/384/512 (key []byte) and none (no signature).
func SignInput(t testing.TB, alg string, key any, input []byte) []byte {
	t.Helper()
	hashOf := map[string]crypto.Hash{
		"ES256": crypto.SHA256, "ES384": crypto.SHA384, "ES512": crypto.SHA512,
		"RS256": crypto.SHA256, "RS384": crypto.SHA384, "RS512": crypto.SHA512,
		"PS256": crypto.SHA256, "PS384": crypto.SHA384, "PS512": crypto.SHA512,
		"HS256": crypto.SHA256, "HS384": crypto.SHA384, "HS512": crypto.SHA512,
	}
	digest := func() []byte {
		h := hashOf[alg].New()
		h.Write(input)
		return h.Sum(nil)
	}
	var sig []byte
	var err error
	switch alg {
	case "none":
		return nil
	case "EdDSA":
		return ed25519.Sign(key.(ed25519.PrivateKey), input)
	case "HS256", "HS384", "HS512":
		m := hmac.New(hashOf[alg].New, key.([]byte))
		m.Write(input)
		return m.Sum(nil)
	case "ES256", "ES384", "ES512":
		k := key.(*ecdsa.PrivateKey)
		r, s, err := ecdsa.Sign(rand.Reader, k, digest())
		if err != nil {
			t.Fatalf("ecdsa sign: %v", err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out
	case "RS256", "RS384", "RS512":
		sig, err = rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), hashOf[alg], digest())
	case "PS256", "PS384", "PS512":
		sig, err = rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), hashOf[alg], digest(), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	default:
		t.Fatalf("SignInput: unsupported alg %s", alg)
	}
	if err != nil {
		t.Fatalf("rsa sign: %v", err)
	}
	return sig
}
