package resource_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/internal/testkit"
	"github.com/authz/authz/resource"
)

// rsFixture is an issuer key served at /jwks.json and a fixed clock.
type rsFixture struct {
	issuer *httptest.Server
	key    *ecdsa.PrivateKey
	now    time.Time
}

func rsNewFixture(t *testing.T) *rsFixture {
	t.Helper()
	f := &rsFixture{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	f.key = testkit.ECKey(t)
	f.issuer = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: f.key.Public(), KeyID: "k1", Algorithm: "ES256"}}})
	}))
	t.Cleanup(f.issuer.Close)
	return f
}

// token mints an access token; mutate changes claims before signing.
func (f *rsFixture) token(t *testing.T, typ string, key *ecdsa.PrivateKey, mutate func(map[string]any)) string {
	t.Helper()
	claims := map[string]any{"iss": "https://as.example", "aud": "https://api.example", "sub": "alice", "client_id": "agent", "scope": "read write",
		"jti": "t1", "iat": f.now.Unix(), "exp": f.now.Add(10 * time.Minute).Unix(),
		"client_attestation": map[string]any{"attester": "acme", "instance_jkt": "abc", "pop_method": "attestation_pop_jwt"}}
	if mutate != nil {
		mutate(claims)
	}
	return testkit.SignJWS(t, key, jose.ES256, typ, map[jose.HeaderKey]any{"kid": "k1"}, claims)
}

func (f *rsFixture) proof(t *testing.T, key *ecdsa.PrivateKey, method, url, token string, mutate func(map[string]any)) string {
	t.Helper()
	claims := map[string]any{"jti": base64.RawURLEncoding.EncodeToString([]byte(time.Now().String())), "htm": method, "htu": url,
		"iat": f.now.Unix(), "ath": testkit.ATH(token)}
	if mutate != nil {
		mutate(claims)
	}
	return testkit.DPoPProof(t, key, claims)
}

func TestVerifyTable(t *testing.T) {
	f := rsNewFixture(t)
	dpopKey := testkit.ECKey(t)
	bound := func(c map[string]any) { c["cnf"] = map[string]any{"jkt": testkit.Thumbprint(t, dpopKey)} }
	const url = "https://api.example/whoami"
	tests := []struct {
		name    string
		auth    func() (scheme, token, proof string)
		wantErr error
	}{
		{"valid_bearer", func() (string, string, string) { return "Bearer", f.token(t, "at+jwt", f.key, nil), "" }, nil},
		{"valid_dpop_bound", func() (string, string, string) {
			tok := f.token(t, "at+jwt", f.key, bound)
			return "DPoP", tok, f.proof(t, dpopKey, "GET", url, tok, nil)
		}, nil},
		{"no_token", func() (string, string, string) { return "", "", "" }, resource.ErrNoToken},
		{"unknown_scheme", func() (string, string, string) { return "Basic", "abc", "" }, resource.ErrNoToken},
		{"wrong_typ", func() (string, string, string) { return "Bearer", f.token(t, "JWT", f.key, nil), "" }, resource.ErrInvalid},
		{"wrong_issuer", func() (string, string, string) {
			return "Bearer", f.token(t, "at+jwt", f.key, func(c map[string]any) { c["iss"] = "https://evil.example" }), ""
		}, resource.ErrInvalid},
		{"expired", func() (string, string, string) {
			return "Bearer", f.token(t, "at+jwt", f.key, func(c map[string]any) { c["exp"] = f.now.Add(-time.Minute).Unix() }), ""
		}, resource.ErrInvalid},
		{"expired_within_skew", func() (string, string, string) {
			return "Bearer", f.token(t, "at+jwt", f.key, func(c map[string]any) { c["exp"] = f.now.Add(-10 * time.Second).Unix() }), ""
		}, nil},
		{"bad_signature", func() (string, string, string) { return "Bearer", f.token(t, "at+jwt", testkit.ECKey(t), nil), "" }, resource.ErrInvalid},
		{"bound_token_as_bearer", func() (string, string, string) { return "Bearer", f.token(t, "at+jwt", f.key, bound), "" }, resource.ErrDPoPNeeded},
		{"unbound_token_as_dpop", func() (string, string, string) { return "DPoP", f.token(t, "at+jwt", f.key, nil), "" }, resource.ErrInvalid},
		{"proof_by_other_key", func() (string, string, string) {
			tok := f.token(t, "at+jwt", f.key, bound)
			return "DPoP", tok, f.proof(t, testkit.ECKey(t), "GET", url, tok, nil)
		}, resource.ErrDPoP},
		{"proof_wrong_htu", func() (string, string, string) {
			tok := f.token(t, "at+jwt", f.key, bound)
			return "DPoP", tok, f.proof(t, dpopKey, "GET", "https://api.example/other", tok, nil)
		}, resource.ErrDPoP},
		{"proof_wrong_htm", func() (string, string, string) {
			tok := f.token(t, "at+jwt", f.key, bound)
			return "DPoP", tok, f.proof(t, dpopKey, "POST", url, tok, nil)
		}, resource.ErrDPoP},
		{"proof_without_ath", func() (string, string, string) {
			tok := f.token(t, "at+jwt", f.key, bound)
			return "DPoP", tok, f.proof(t, dpopKey, "GET", url, tok, func(c map[string]any) { delete(c, "ath") })
		}, resource.ErrDPoP},
		{"bound_without_proof", func() (string, string, string) { return "DPoP", f.token(t, "at+jwt", f.key, bound), "" }, resource.ErrDPoP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := resource.New(resource.Config{Issuer: "https://as.example", Audience: "https://api.example", JWKSURL: f.issuer.URL, BaseURL: "https://api.example", Now: func() time.Time { return f.now }})
			if err != nil {
				t.Fatal(err)
			}
			scheme, tok, proof := tt.auth()
			r := httptest.NewRequest("GET", url, nil)
			if scheme != "" {
				r.Header.Set("Authorization", scheme+" "+tok)
			}
			if proof != "" {
				r.Header.Set("DPoP", proof)
			}
			got, err := v.Verify(r)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && (got.ClientID != "agent" || got.Attestation == nil || got.Attestation.Attester != "acme" || !got.HasScope("write")) {
				t.Fatalf("token = %+v", got)
			}
		})
	}
}

func TestVerify_ProofReplayAndMiddleware(t *testing.T) {
	f := rsNewFixture(t)
	dpopKey := testkit.ECKey(t)
	v, err := resource.New(resource.Config{Issuer: "https://as.example", Audience: "https://api.example", JWKSURL: f.issuer.URL, BaseURL: "https://api.example", Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	tok := f.token(t, "at+jwt", f.key, func(c map[string]any) { c["cnf"] = map[string]any{"jkt": testkit.Thumbprint(t, dpopKey)} })
	proof := f.proof(t, dpopKey, "GET", "https://api.example/whoami", tok, nil)
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := resource.FromContext(r.Context())
		if !ok || got.JKT != testkit.Thumbprint(t, dpopKey) {
			t.Errorf("handler token = %+v", got)
		}
	}))
	call := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "https://api.example/whoami", nil).WithContext(context.Background())
		r.Header.Set("Authorization", "DPoP "+tok)
		r.Header.Set("DPoP", proof)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := call(); w.Code != 200 {
		t.Fatalf("first use: %d", w.Code)
	}
	w := call()
	if w.Code != 401 || !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="invalid_dpop_proof"`) {
		t.Fatalf("replayed proof: %d %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "")
	f.Add("DPoP a.b.c", "x.y.z")
	f.Add(strings.Repeat("A", 20000), "")
	v, err := resource.New(resource.Config{Issuer: "https://as.example", Audience: "https://api.example", JWKSURL: "http://127.0.0.1:1/jwks.json", BaseURL: "https://api.example",
		HTTPClient: &http.Client{Timeout: 100 * time.Millisecond}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, auth, proof string) {
		r := httptest.NewRequest("GET", "https://api.example/x", nil)
		r.Header.Set("Authorization", auth)
		r.Header.Set("DPoP", proof)
		if _, err := v.Verify(r); err == nil {
			t.Fatal("a fuzzed request verified")
		}
	})
}
