package clientauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
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

	"github.com/authz/authz/internal/testkit"
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

var b64 = base64.RawURLEncoding

// signRaw builds a compact JWS from raw header and payload JSON texts, signing with key for alg
// ("none" yields an empty signature). Raw texts let tests forge duplicate members and wrong types.
func signRaw(t testing.TB, alg string, key any, header, payload []byte) string {
	t.Helper()
	input := b64.EncodeToString(header) + "." + b64.EncodeToString(payload)
	return input + "." + b64.EncodeToString(testkit.SignInput(t, alg, key, []byte(input)))
}

// signJWT marshals header and claims and signs them with header["alg"].
func signJWT(t testing.TB, key any, header, claims map[string]any) string {
	t.Helper()
	alg, _ := header["alg"].(string)
	return signRaw(t, alg, key, testkit.MustJSON(t, header), testkit.MustJSON(t, claims))
}

// testEnv is a verifier with one attester (testAttester, EC P-256 key testKid) and one client
// instance key (EC P-256), on a settable clock.
type testEnv struct {
	t       testing.TB
	clock   *testkit.Clock
	attKey  *ecdsa.PrivateKey
	instKey *ecdsa.PrivateKey
	cfg     Config
	v       *Verifier
}

// testSecret is a fixed 32-byte challenge secret.
var testSecret = []byte("0123456789abcdef0123456789abcdef")

func newEnv(t testing.TB, mutate func(e *testEnv, cfg *Config), opts ...Option) *testEnv {
	t.Helper()
	e := &testEnv{t: t, clock: testkit.NewClock(testNow), attKey: testkit.ECKey(t), instKey: testkit.ECKey(t)}
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

// mutationCase is a table case: a change to a token's header and claims before signing, and
// the error it must cause (nil: the request is accepted).
type mutationCase struct {
	name    string
	mutate  func(h, c map[string]any)
	wantErr error
}

// withTyp is a mutation that sets the typ header to typ, or removes it when typ is nil.
func withTyp(typ any) func(h, c map[string]any) {
	return func(h, _ map[string]any) {
		if typ == nil {
			delete(h, "typ")
		} else {
			h["typ"] = typ
		}
	}
}

// checkAttestations runs each case as a subtest: an attestation changed by its mutate, sent with
// a valid PoP.
func (e *testEnv) checkAttestations(t *testing.T, tests []mutationCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.authenticate(e.attestation(tt.mutate), e.pop(nil))
			checkErr(t, err, tt.wantErr)
		})
	}
}

// checkPoPs runs each case as a subtest: a valid attestation sent with a PoP changed by its
// mutate.
func (e *testEnv) checkPoPs(t *testing.T, tests []mutationCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.authenticate(e.attestation(nil), e.pop(tt.mutate))
			checkErr(t, err, tt.wantErr)
		})
	}
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
