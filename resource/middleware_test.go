package resource_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/authz/authz/dpop"
	"github.com/authz/authz/internal/testkit"
	"github.com/authz/authz/resource"
)

func TestMiddlewareRejects(t *testing.T) {
	tests := []struct {
		name       string
		request    func(t *testing.T, e *env) *http.Request
		wantHeader []string // WWW-Authenticate values, each a prefix
		wantError  string   // body "error"; "" = no body (no credentials, RFC 6750 §3.1)
		wantAlgs   bool     // the DPoP challenge lists algs (RFC 9449 §7.1)
	}{
		{
			name:       "no_token",
			request:    func(t *testing.T, e *env) *http.Request { return newRequest("", "") },
			wantHeader: []string{`DPoP algs="ES256 ES384 ES512 PS256 PS384 PS512 EdDSA RS256"`, `Bearer`},
			wantError:  "", // RFC 6750 §3.1: no credentials, no error code
		},
		{
			name:       "unknown_scheme",
			request:    func(t *testing.T, e *env) *http.Request { return newRequest("Basic dXNlcjpwYXNz", "") },
			wantHeader: []string{`DPoP algs=`, `Bearer`},
			wantError:  "",
		},
		{
			name:       "invalid_token",
			request:    func(t *testing.T, e *env) *http.Request { return newRequest("Bearer not-a-jwt", "") },
			wantHeader: []string{`Bearer error="invalid_token", error_description="invalid access token`},
			wantError:  "invalid_token",
		},
		{
			name: "wrong_issuer",
			request: func(t *testing.T, e *env) *http.Request {
				return e.bearer(t, func(s *tokenSpec) { s.claims["iss"] = "https://evil.example" })
			},
			wantHeader: []string{`Bearer error="invalid_token"`},
			wantError:  "invalid_token",
		},
		{
			name:       "unbound_token_with_dpop_scheme",
			request:    func(t *testing.T, e *env) *http.Request { return newRequest("DPoP "+e.token(t, nil), "") },
			wantHeader: []string{`DPoP error="invalid_token"`}, // the scheme the request used (RFC 9449 §7.1)
			wantError:  "invalid_token",
		},
		{
			name:       "bound_token_as_bearer",
			request:    func(t *testing.T, e *env) *http.Request { return newRequest("Bearer "+e.boundToken(t, nil), "") },
			wantHeader: []string{`DPoP error="invalid_token", error_description="the token is DPoP-bound`},
			wantError:  "invalid_token",
		},
		{
			name:       "bound_token_without_proof",
			request:    func(t *testing.T, e *env) *http.Request { return newRequest("DPoP "+e.boundToken(t, nil), "") },
			wantHeader: []string{`DPoP error="invalid_dpop_proof", error_description="invalid DPoP proof`},
			wantAlgs:   true,
			wantError:  "invalid_dpop_proof",
		},
		{
			name: "proof_wrong_htu",
			request: func(t *testing.T, e *env) *http.Request {
				return e.dpopRequest(t, nil, func(p *proofSpec) { p.claims["htu"] = testBaseURL + "/other" })
			},
			wantHeader: []string{`DPoP error="invalid_dpop_proof"`},
			wantError:  "invalid_dpop_proof",
		},
		{
			name: "proof_by_another_key",
			request: func(t *testing.T, e *env) *http.Request {
				return e.dpopRequest(t, nil, func(p *proofSpec) { p.key = testkit.ECKey(t) })
			},
			wantHeader: []string{`DPoP error="invalid_dpop_proof"`},
			wantError:  "invalid_dpop_proof",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			v := newVerifier(t, e.iss, e.clk, nil)
			called := false
			h := v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, tt.request(t, e))
			if called {
				t.Error("the handler ran for a rejected request")
			}
			checkRejection(t, w.Result(), tt.wantHeader, tt.wantError)
			if tt.wantAlgs && !strings.Contains(w.Header().Get("WWW-Authenticate"), `algs="ES256 `) {
				t.Errorf("DPoP challenge %q has no algs", w.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

// checkRejection asserts a 401 with the WWW-Authenticate values (prefixes) and a JSON body
// whose error member is wantError.
func checkRejection(t *testing.T, resp *http.Response, wantHeader []string, wantError string) {
	t.Helper()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status = %d, want 401", resp.StatusCode)
	}
	got := resp.Header.Values("WWW-Authenticate")
	if len(got) != len(wantHeader) {
		t.Fatalf("WWW-Authenticate = %q, want %d values with prefixes %q", got, len(wantHeader), wantHeader)
	}
	for i, want := range wantHeader {
		if !strings.HasPrefix(got[i], want) {
			t.Errorf("WWW-Authenticate[%d] = %q, want prefix %q", i, got[i], want)
		}
		if strings.Contains(got[i], "resource: ") {
			t.Errorf("WWW-Authenticate[%d] = %q leaks the Go error prefix", i, got[i])
		}
	}
	var body struct {
		Error string `json:"error"`
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if wantError == "" {
		if len(b) != 0 {
			t.Errorf("body = %q, want none", b)
		}
		return
	}
	if err := json.Unmarshal(b, &body); err != nil || body.Error != wantError {
		t.Errorf("body = %q, want JSON with error %q", b, wantError)
	}
	for _, c := range got {
		if i := strings.Index(c, `error_description="`); i >= 0 {
			desc, _, _ := strings.Cut(c[i+len(`error_description="`):], `"`)
			if strings.ContainsAny(desc, "\\\x00\r\n") {
				t.Errorf("error_description %q has characters outside RFC 6750 §3", desc)
			}
		}
	}
}

func TestMiddlewareReplayedProof(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.iss, e.clk, nil)
	calls := 0
	h := v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls++ }))
	tok := e.boundToken(t, nil)
	proof := e.proof(t, tok, nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, newRequest("DPoP "+tok, proof))
	if w.Code != http.StatusOK || calls != 1 {
		t.Fatalf("first use: status %d, handler calls %d", w.Code, calls)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, newRequest("DPoP "+tok, proof))
	if calls != 1 {
		t.Error("the handler ran for a replayed proof")
	}
	checkRejection(t, w.Result(), []string{`DPoP error="invalid_dpop_proof", error_description="invalid DPoP proof: proof jti already used"`}, "invalid_dpop_proof")
}

// TestMiddlewareServesToken drives the middleware over a real loopback server with real
// clients: the handler sees the validated token, its attestation evidence and scopes.
func TestMiddlewareServesToken(t *testing.T) {
	e := newEnv(t)
	type seen struct {
		Token    *resource.Token
		OK       bool
		Read     bool
		Admin    bool
		PathSeen string
	}
	results := make(chan seen, 1)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := resource.FromContext(r.Context())
		s := seen{Token: tok, OK: ok, PathSeen: r.URL.Path}
		if ok {
			s.Read, s.Admin = tok.HasScope("read"), tok.HasScope("admin")
		}
		results <- s
		w.WriteHeader(http.StatusNoContent)
	})
	// The resource server's origin is its loopback listener's, known before it starts.
	rs := httptest.NewUnstartedServer(nil)
	v := newVerifier(t, e.iss, e.clk, func(c *resource.Config) { c.BaseURL = "http://" + rs.Listener.Addr().String() })
	rs.Config.Handler = v.Middleware(handler)
	rs.Start()
	t.Cleanup(rs.Close)

	attestation := map[string]any{"attester": "https://attester.example", "instance_jkt": "inst-jkt", "pop_method": "attestation_pop_jwt"}
	tests := []struct {
		name    string
		request func(t *testing.T) *http.Request
		wantJKT string
	}{
		{
			name: "bearer",
			request: func(t *testing.T) *http.Request {
				raw := e.token(t, func(s *tokenSpec) { s.claims["client_attestation"] = attestation })
				r, err := http.NewRequest(http.MethodGet, rs.URL+testPath, nil)
				if err != nil {
					t.Fatal(err)
				}
				r.Header.Set("Authorization", "Bearer "+raw)
				return r
			},
		},
		{
			name: "dpop",
			request: func(t *testing.T) *http.Request {
				raw := e.boundToken(t, func(s *tokenSpec) { s.claims["client_attestation"] = attestation })
				r, err := http.NewRequest(http.MethodPost, rs.URL+testPath+"?x=1", strings.NewReader("{}"))
				if err != nil {
					t.Fatal(err)
				}
				r.Header.Set("Authorization", "DPoP "+raw)
				r.Header.Set(dpop.Header, e.proof(t, raw, func(p *proofSpec) {
					p.claims["htm"] = http.MethodPost
					p.claims["htu"] = rs.URL + testPath
				}))
				return r
			},
			wantJKT: e.jkt,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := rs.Client().Do(tt.request(t))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status = %d (%q, %s), want 204", resp.StatusCode, resp.Header.Values("WWW-Authenticate"), b)
			}
			s := <-results
			if !s.OK || s.Token == nil {
				t.Fatal("FromContext found no token in the handler")
			}
			if s.PathSeen != testPath {
				t.Errorf("handler path = %q, want %q", s.PathSeen, testPath)
			}
			tok := s.Token
			if tok.Subject != "user-42" || tok.ClientID != "client-7" || tok.JKT != tt.wantJKT {
				t.Errorf("token = %+v, want sub user-42, client_id client-7, jkt %q", tok, tt.wantJKT)
			}
			if !s.Read || s.Admin || !slices.Equal(tok.Scopes, []string{"read", "write"}) {
				t.Errorf("scopes = %q: HasScope(read) = %v, HasScope(admin) = %v", tok.Scopes, s.Read, s.Admin)
			}
			want := resource.Attestation{Attester: "https://attester.example", InstanceJKT: "inst-jkt", PoPMethod: "attestation_pop_jwt"}
			if tok.Attestation == nil || *tok.Attestation != want {
				t.Errorf("Attestation = %+v, want %+v", tok.Attestation, want)
			}
		})
	}
}

func TestFromContextWithoutToken(t *testing.T) {
	if tok, ok := resource.FromContext(context.Background()); ok || tok != nil {
		t.Errorf("FromContext(empty) = %+v, %v; want nil, false", tok, ok)
	}
	// Only the middleware's key counts, not a same-looking value under another key.
	type otherKey struct{}
	ctx := context.WithValue(context.Background(), otherKey{}, &resource.Token{Subject: "forged"})
	if tok, ok := resource.FromContext(ctx); ok || tok != nil {
		t.Errorf("FromContext(other key) = %+v, %v; want nil, false", tok, ok)
	}
}
