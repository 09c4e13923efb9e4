package dpop_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	_ "crypto/sha512" // SHA-384 and SHA-512 for signJWS
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strconv"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/dpop"
)

const (
	testURL    = "https://as.example.com/oauth2/token"
	testMethod = "POST"
)

// testNow is the fixed clock of every test.
func testNow() time.Time { return time.Date(2026, 5, 26, 12, 0, 0, 0, time.UTC) }

func testConfig() dpop.Config {
	return dpop.Config{Now: testNow}
}

func testExpect() dpop.Expect {
	return dpop.Expect{Method: testMethod, URL: testURL}
}

func newECKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatalf("ecdsa key: %v", err)
	}
	return k
}

func newRSAKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatalf("rsa key: %v", err)
	}
	return k
}

func newEdKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("ed25519 key: %v", err)
	}
	return k
}

// jwkMap renders key (public or private) as a JWK JSON object.
func jwkMap(t testing.TB, key any) map[string]any {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: key})
	if err != nil {
		t.Fatalf("marshal jwk: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("unmarshal jwk: %v", err)
	}
	return m
}

// proofSpec is a proof before signing; tests mutate it to build each hostile variant.
type proofSpec struct {
	signAlg    string        // algorithm actually used to sign
	key        crypto.Signer // signing key
	header     map[string]any
	claims     map[string]any
	rawHeader  string // when set, used verbatim instead of header
	rawPayload string // when set, used verbatim instead of claims
}

// newProofSpec is a valid proof for testMethod testURL at testNow signed by key with alg.
func newProofSpec(t testing.TB, alg string, key crypto.Signer) *proofSpec {
	t.Helper()
	return &proofSpec{
		signAlg: alg,
		key:     key,
		header:  map[string]any{"typ": dpop.Typ, "alg": alg, "jwk": jwkMap(t, key.Public())},
		claims: map[string]any{
			"jti": "e1j3V_bKic8-LAEB",
			"htm": testMethod,
			"htu": testURL,
			"iat": testNow().Unix(),
		},
	}
}

func (p *proofSpec) sign(t testing.TB) string {
	t.Helper()
	h, c := []byte(p.rawHeader), []byte(p.rawPayload)
	var err error
	if p.rawHeader == "" {
		if h, err = json.Marshal(p.header); err != nil {
			t.Fatalf("marshal header: %v", err)
		}
	}
	if p.rawPayload == "" {
		if c, err = json.Marshal(p.claims); err != nil {
			t.Fatalf("marshal claims: %v", err)
		}
	}
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	return input + "." + base64.RawURLEncoding.EncodeToString(signJWS(t, p.signAlg, p.key, []byte(input)))
}

// signJWS signs input per RFC 7518 §3 / RFC 8037 §3.1 without any library header logic, so tests
// can sign headers that go-jose's signer would never produce.
func signJWS(t testing.TB, alg string, key crypto.Signer, input []byte) []byte {
	t.Helper()
	hashOf := map[string]crypto.Hash{
		"ES256": crypto.SHA256, "ES384": crypto.SHA384, "ES512": crypto.SHA512,
		"RS256": crypto.SHA256, "RS384": crypto.SHA384, "RS512": crypto.SHA512,
		"PS256": crypto.SHA256, "PS384": crypto.SHA384, "PS512": crypto.SHA512,
	}
	digest := func(h crypto.Hash) []byte {
		w := h.New()
		w.Write(input)
		return w.Sum(nil)
	}
	switch alg {
	case "EdDSA":
		return ed25519.Sign(key.(ed25519.PrivateKey), input)
	case "HS256":
		m := hmac.New(sha256.New, []byte("a-shared-secret-of-thirty-two-bytes!"))
		m.Write(input)
		return m.Sum(nil)
	case "none":
		return []byte("x")
	}
	h, ok := hashOf[alg]
	if !ok {
		t.Fatalf("signJWS: unknown alg %s", alg)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest(h))
		if err != nil {
			t.Fatalf("ecdsa sign: %v", err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out
	case *rsa.PrivateKey:
		var sig []byte
		var err error
		if alg[0] == 'P' {
			sig, err = rsa.SignPSS(rand.Reader, k, h, digest(h), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, k, h, digest(h))
		}
		if err != nil {
			t.Fatalf("rsa sign: %v", err)
		}
		return sig
	}
	t.Fatalf("signJWS: %s with %T", alg, key)
	return nil
}

// referenceThumbprint computes RFC 7638 by hand for EC and OKP keys, independently of go-jose.
func referenceThumbprint(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	var input string
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		point, err := k.Bytes() // 0x04 || X || Y (SEC 1 §2.3.3)
		if err != nil {
			t.Fatalf("ec point: %v", err)
		}
		x, y := point[1:1+size], point[1+size:]
		input = `{"crv":"` + k.Curve.Params().Name + `","kty":"EC","x":"` + b64(x) + `","y":"` + b64(y) + `"}`
	case ed25519.PublicKey:
		input = `{"crv":"Ed25519","kty":"OKP","x":"` + b64(k) + `"}`
	case *rsa.PublicKey:
		input = `{"e":"` + b64(big.NewInt(int64(k.E)).Bytes()) + `","kty":"RSA","n":"` + b64(k.N.Bytes()) + `"}`
	default:
		t.Fatalf("referenceThumbprint: %T", pub)
	}
	sum := sha256.Sum256([]byte(input))
	return b64(sum[:])
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
