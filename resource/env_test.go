package resource_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/dpop"
	"github.com/authz/authz/internal/testkit"
	"github.com/authz/authz/resource"
)

const (
	// testBaseURL is the resource server's external origin; DPoP htu is built on it.
	testBaseURL = "https://rs.example.com"
	// testAudience is the aud of test tokens and the Verifier's Audience (RFC 9068 §4).
	testAudience = "https://rs.example.com/api"
	testPath     = "/api/things"
	testURL      = testBaseURL + testPath
	testMethod   = http.MethodGet
	issuerKID    = "issuer-key-1"
	jwksPath     = "/jwks.json"
)

// testNow is the fixed instant every test starts at.
func testNow() time.Time { return time.Date(2026, 5, 26, 12, 0, 0, 0, time.UTC) }

// issuer is authz as seen by a resource server: ES256 signing keys published as a JWK set at
// /jwks.json by an httptest server on loopback.
type issuer struct {
	srv     *httptest.Server
	key     *ecdsa.PrivateKey // signs with issuerKID
	fetches atomic.Int32

	mu     sync.Mutex
	keys   []jose.JSONWebKey // published public keys
	status int               // JWKS response status; 0 means 200
	body   string            // when set, served instead of the key set
}

func newIssuer(t testing.TB) *issuer {
	t.Helper()
	iss := &issuer{key: testkit.ECKey(t)}
	iss.publish(issuerKID, &iss.key.PublicKey)
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+jwksPath, func(w http.ResponseWriter, r *http.Request) {
		iss.fetches.Add(1)
		iss.mu.Lock()
		status, body := iss.status, iss.body
		set := jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey(nil), iss.keys...)}
		iss.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if status != 0 {
			w.WriteHeader(status)
		}
		if body != "" {
			_, _ = w.Write([]byte(body))
			return
		}
		_ = json.NewEncoder(w).Encode(set)
	})
	iss.srv = httptest.NewServer(mux)
	t.Cleanup(iss.srv.Close)
	return iss
}

// URL is the issuer identifier (the httptest server's origin).
func (iss *issuer) URL() string { return iss.srv.URL }

// publish adds a public key to the served JWK set.
func (iss *issuer) publish(kid string, pub *ecdsa.PublicKey) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.keys = append(iss.keys, jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"})
}

// unpublish removes the key kid from the served JWK set (a key the issuer retired).
func (iss *issuer) unpublish(kid string) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.keys = slices.DeleteFunc(iss.keys, func(k jose.JSONWebKey) bool { return k.KeyID == kid })
}

// fail makes the JWKS endpoint answer status with body; status 0 restores normal service.
func (iss *issuer) fail(status int, body string) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.status, iss.body = status, body
}

// newVerifier returns a Verifier for iss on clk; mutate adjusts the Config.
func newVerifier(t testing.TB, iss *issuer, clk *testkit.Clock, mutate func(*resource.Config)) *resource.Verifier {
	t.Helper()
	cfg := resource.Config{
		Issuer:     iss.URL(),
		Audience:   testAudience,
		BaseURL:    testBaseURL,
		HTTPClient: iss.srv.Client(),
		Now:        clk.Now,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	v, err := resource.New(cfg)
	if err != nil {
		t.Fatalf("resource.New: %v", err)
	}
	return v
}

// tokenSpec is an access token before signing; tests mutate it.
type tokenSpec struct {
	key    *ecdsa.PrivateKey
	kid    string // "" omits kid
	typ    string // "" omits typ
	claims map[string]any
}

// newTokenSpec is a valid RFC 9068 access token from iss at now, not sender-constrained.
func newTokenSpec(iss *issuer, now time.Time) *tokenSpec {
	return &tokenSpec{
		key: iss.key,
		kid: issuerKID,
		typ: "at+jwt",
		claims: map[string]any{
			"iss":       iss.URL(),
			"aud":       testAudience,
			"sub":       "user-42",
			"client_id": "client-7",
			"scope":     "read write",
			"jti":       "at-jti-1",
			"iat":       now.Unix(),
			"exp":       now.Add(5 * time.Minute).Unix(),
		},
	}
}

// bind makes the token DPoP-bound to jkt (cnf.jkt, RFC 9449 §6.1).
func (s *tokenSpec) bind(jkt string) *tokenSpec {
	s.claims["cnf"] = map[string]any{"jkt": jkt}
	return s
}

func (s *tokenSpec) sign(t testing.TB) string {
	t.Helper()
	var hdr map[jose.HeaderKey]any
	if s.kid != "" {
		hdr = map[jose.HeaderKey]any{"kid": s.kid}
	}
	return testkit.SignJWS(t, s.key, jose.ES256, s.typ, hdr, s.claims)
}

// proofSpec is a DPoP proof before signing; tests mutate it.
type proofSpec struct {
	key    *ecdsa.PrivateKey
	typ    string
	claims map[string]any
}

// newProofSpec is a valid proof by key for testMethod testURL at now, with ath for token and a
// fresh jti.
func newProofSpec(key *ecdsa.PrivateKey, token string, now time.Time) *proofSpec {
	return &proofSpec{
		key: key,
		typ: dpop.Typ,
		claims: map[string]any{
			"jti": rand.Text(), // fresh per proof; replay tests reuse a signed proof
			"htm": testMethod,
			"htu": testURL,
			"iat": now.Unix(),
			"ath": dpop.AccessTokenHash(token),
		},
	}
}

func (p *proofSpec) sign(t testing.TB) string {
	t.Helper()
	return testkit.SignJWS(t, p.key, jose.ES256, p.typ, map[jose.HeaderKey]any{"jwk": jose.JSONWebKey{Key: p.key.Public()}}, p.claims)
}

// newRequest is a request for testMethod testURL carrying authorization and, when non-empty,
// one DPoP header.
func newRequest(authorization, proof string) *http.Request {
	r := httptest.NewRequest(testMethod, testURL, nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	if proof != "" {
		r.Header.Set(dpop.Header, proof)
	}
	return r
}
