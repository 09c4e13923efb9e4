package clientauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	testIssuer   = "https://as.example.com"
	testClientID = "client-1"
	testAttester = "att1"
	testKid      = "att1-key-1"
	testTokenURL = testIssuer + "/oauth2/token"
)

// testNow is the fixed time every test starts at.
var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// testClock is a settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: testNow} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newECKey(t testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newRSAKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newEdKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// publicOf returns the public half of a private key.
func publicOf(t testing.TB, priv any) crypto.PublicKey {
	t.Helper()
	s, ok := priv.(crypto.Signer)
	if !ok {
		t.Fatalf("not a signer: %T", priv)
	}
	return s.Public()
}

// publicJWK returns the public JWK of priv with kid.
func publicJWK(t testing.TB, priv any, kid string) jose.JSONWebKey {
	t.Helper()
	return jose.JSONWebKey{Key: publicOf(t, priv), KeyID: kid}
}

// jwkMap returns a JWK as a generic JSON object, for embedding in claims or headers.
func jwkMap(t testing.TB, k jose.JSONWebKey) map[string]any {
	t.Helper()
	b, err := k.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var b64 = base64.RawURLEncoding

// signRaw builds a compact JWS from raw header and payload JSON texts, signing with key for alg
// ("none" yields an empty signature). Raw texts let tests forge duplicate members and wrong types.
func signRaw(t testing.TB, alg string, key any, header, payload []byte) string {
	t.Helper()
	input := b64.EncodeToString(header) + "." + b64.EncodeToString(payload)
	sig := signInput(t, alg, key, []byte(input))
	return input + "." + b64.EncodeToString(sig)
}

func signInput(t testing.TB, alg string, key any, input []byte) []byte {
	t.Helper()
	hashFor := map[string]crypto.Hash{
		"ES256": crypto.SHA256, "ES384": crypto.SHA384, "ES512": crypto.SHA512,
		"RS256": crypto.SHA256, "RS384": crypto.SHA384, "RS512": crypto.SHA512,
		"PS256": crypto.SHA256, "PS384": crypto.SHA384, "PS512": crypto.SHA512,
		"HS256": crypto.SHA256, "HS384": crypto.SHA384, "HS512": crypto.SHA512,
	}
	digest := func() []byte {
		h := hashFor[alg].New()
		h.Write(input)
		return h.Sum(nil)
	}
	switch alg {
	case "none":
		return nil
	case "ES256", "ES384", "ES512":
		k := key.(*ecdsa.PrivateKey)
		r, s, err := ecdsa.Sign(rand.Reader, k, digest())
		if err != nil {
			t.Fatal(err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out
	case "RS256", "RS384", "RS512":
		sig, err := rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), hashFor[alg], digest())
		if err != nil {
			t.Fatal(err)
		}
		return sig
	case "PS256", "PS384", "PS512":
		sig, err := rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), hashFor[alg], digest(), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		if err != nil {
			t.Fatal(err)
		}
		return sig
	case "EdDSA":
		return ed25519.Sign(key.(ed25519.PrivateKey), input)
	case "HS256", "HS384", "HS512":
		m := hmac.New(hashFor[alg].New, key.([]byte))
		m.Write(input)
		return m.Sum(nil)
	}
	t.Fatalf("signInput: unsupported alg %s", alg)
	return nil
}

// signJWT marshals header and claims and signs them with header["alg"].
func signJWT(t testing.TB, key any, header, claims map[string]any) string {
	t.Helper()
	alg, _ := header["alg"].(string)
	return signRaw(t, alg, key, mustJSON(t, header), mustJSON(t, claims))
}

// testEnv is a verifier with one attester (testAttester, EC P-256 key testKid) and one client
// instance key (EC P-256), on a settable clock.
type testEnv struct {
	t       testing.TB
	clock   *testClock
	attKey  *ecdsa.PrivateKey
	instKey *ecdsa.PrivateKey
	cfg     Config
	v       *Verifier
}

// testSecret is a fixed 32-byte challenge secret.
var testSecret = []byte("0123456789abcdef0123456789abcdef")

func newEnv(t testing.TB, mutate func(e *testEnv, cfg *Config), opts ...Option) *testEnv {
	t.Helper()
	e := &testEnv{t: t, clock: newTestClock(), attKey: newECKey(t, elliptic.P256()), instKey: newECKey(t, elliptic.P256())}
	e.cfg = Config{
		Issuer: testIssuer,
		Attesters: []Attester{{
			ID:      testAttester,
			Keys:    &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{publicJWK(t, e.attKey, testKid)}},
			Enabled: true,
		}},
		ChallengeSecret: testSecret,
	}
	if mutate != nil {
		mutate(e, &e.cfg)
	}
	v, err := New(e.cfg, append([]Option{WithClock(e.clock.Now)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.v = v
	return e
}

// attHeader and attClaims are the defaults of a valid attestation.
func (e *testEnv) attHeader() map[string]any {
	return map[string]any{"typ": TypAttestation, "alg": "ES256", "kid": testKid}
}

func (e *testEnv) attClaims() map[string]any {
	now := e.clock.Now()
	return map[string]any{
		"sub": testClientID,
		"iat": now.Add(-time.Minute).Unix(),
		"exp": now.Add(time.Hour).Unix(),
		"cnf": map[string]any{"jwk": jwkMap(e.t, publicJWK(e.t, e.instKey, ""))},
	}
}

// attestation returns a valid attestation signed by the attester key, after mutate.
func (e *testEnv) attestation(mutate func(h, c map[string]any)) string {
	e.t.Helper()
	h, c := e.attHeader(), e.attClaims()
	if mutate != nil {
		mutate(h, c)
	}
	return signJWT(e.t, e.attKey, h, c)
}

var jtiCounter struct {
	sync.Mutex
	n int
}

func nextJTI() string {
	jtiCounter.Lock()
	defer jtiCounter.Unlock()
	jtiCounter.n++
	return "jti-" + big.NewInt(int64(jtiCounter.n)).String()
}

// pop returns a valid PoP signed by the instance key, after mutate.
func (e *testEnv) pop(mutate func(h, c map[string]any)) string {
	e.t.Helper()
	h := map[string]any{"typ": TypPoP, "alg": "ES256"}
	c := map[string]any{"aud": testIssuer, "jti": nextJTI(), "iat": e.clock.Now().Unix()}
	if mutate != nil {
		mutate(h, c)
	}
	return signJWT(e.t, e.instKey, h, c)
}

// dpopProof returns a valid combined-mode DPoP proof signed by key, after mutate.
func (e *testEnv) dpopProof(key *ecdsa.PrivateKey, mutate func(h, c map[string]any)) string {
	e.t.Helper()
	h := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwkMap(e.t, publicJWK(e.t, key, ""))}
	c := map[string]any{"jti": nextJTI(), "htm": http.MethodPost, "htu": testTokenURL, "iat": e.clock.Now().Unix()}
	if mutate != nil {
		mutate(h, c)
	}
	return signJWT(e.t, key, h, c)
}

func headerWith(pairs ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(pairs); i += 2 {
		h.Add(pairs[i], pairs[i+1])
	}
	return h
}

func (e *testEnv) request(h http.Header) Request {
	return Request{Header: h, Method: http.MethodPost, URL: testTokenURL}
}

func (e *testEnv) client() ClientPolicy {
	return ClientPolicy{ClientID: testClientID, AuthMethod: AuthMethodAttestJWT}
}

// authenticate runs a normal-mode request with att and pop for the default client.
func (e *testEnv) authenticate(att, pop string) (*Result, error) {
	return e.v.Authenticate(e.t.Context(), e.request(headerWith(HeaderClientAttestation, att, HeaderClientAttestationPoP, pop)), e.client())
}

// checkErr asserts err against want with errors.Is (want nil = success).
func checkErr(t testing.TB, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("error = %v, want %v", err, want)
	}
}

// certificate issues a certificate for pub signed by parent/parentKey (self-signed when parent
// is nil).
type certSpec struct {
	cn        string
	ca        bool
	notBefore time.Time
	notAfter  time.Time
	keyUsage  x509.KeyUsage
}

func issueCert(t testing.TB, spec certSpec, pub, signer any, parent *x509.Certificate) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: spec.cn},
		NotBefore:             spec.notBefore,
		NotAfter:              spec.notAfter,
		KeyUsage:              spec.keyUsage,
		BasicConstraintsValid: true,
		IsCA:                  spec.ca,
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func x5cOf(certs ...*x509.Certificate) []string {
	out := make([]string, len(certs))
	for i, c := range certs {
		out[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	return out
}
