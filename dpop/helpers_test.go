package dpop_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strconv"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/dpop"
	"github.com/authz/authz/internal/testkit"
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

// hsSecret is the key of the HS256 proofs, which no configuration accepts.
var hsSecret = []byte("a-shared-secret-of-thirty-two-bytes!")

// sign signs the proof per RFC 7518 §3 / RFC 8037 §3.1 without any library header logic, so
// tests can sign headers that go-jose's signer would never produce. HS256 proofs are MACed with
// hsSecret; none proofs carry the signature "x".
func (p *proofSpec) sign(t testing.TB) string {
	t.Helper()
	h, c := []byte(p.rawHeader), []byte(p.rawPayload)
	if p.rawHeader == "" {
		h = testkit.MustJSON(t, p.header)
	}
	if p.rawPayload == "" {
		c = testkit.MustJSON(t, p.claims)
	}
	switch p.signAlg {
	case "none":
		return testkit.CompactJWS(h, c, []byte("x"))
	case "HS256":
		return testkit.SignRaw(t, p.signAlg, hsSecret, h, c)
	}
	return testkit.SignRaw(t, p.signAlg, p.key, h, c)
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

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
