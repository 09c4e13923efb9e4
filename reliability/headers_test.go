package reliability

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/authz/authz/clientauth"
	"github.com/authz/authz/config"
	"github.com/authz/authz/dpop"
)

const (
	allowedOrigin = "https://app.example.com"
	webClientID   = "web"
	webRedirect   = "http://127.0.0.1:1/callback"
)

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// send makes one request to the listening server and returns the answer with its body read.
func (e *testEnv) send(method, path, body string, headers map[string]string) (*http.Response, string) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, e.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	return resp, string(b)
}

// headerList splits a comma-separated header value into lower-cased members.
func headerList(h http.Header, name string) map[string]bool {
	m := map[string]bool{}
	for _, v := range h.Values(name) {
		for _, part := range strings.Split(v, ",") {
			if p := strings.ToLower(strings.TrimSpace(part)); p != "" {
				m[p] = true
			}
		}
	}
	return m
}

// corsHeaders returns every Access-Control-* response header.
func corsHeaders(h http.Header) []string {
	var out []string
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "access-control-") {
			out = append(out, k)
		}
	}
	return out
}

func newCORSServer(t *testing.T) *testEnv {
	t.Helper()
	return newTestServer(t, true, func(c *config.Config) {
		c.HTTP.CORSAllowedOrigins = []string{allowedOrigin}
		c.Attestation.ChallengeRequired = true
		c.Clients = append(c.Clients, config.Client{ClientID: webClientID, TokenEndpointAuthMethod: config.AuthMethodNone,
			GrantTypes: []string{"authorization_code"}, Scopes: []string{"read"}, RedirectURIs: []string{webRedirect}})
	})
}

// TestCORS is issue 7 item 6: browser clients of a configured origin may send the attestation
// and DPoP request headers to the back-channel endpoints and read OAuth-Client-Attestation-
// Challenge (ABCA-09 §6.2) and DPoP-Nonce (RFC 9449 §8); any other origin gets no CORS headers.
func TestCORS(t *testing.T) {
	env := newCORSServer(t)
	requested := strings.Join([]string{clientauth.HeaderClientAttestation, clientauth.HeaderClientAttestationPoP, dpop.Header, "Content-Type"}, ", ")

	preflights := []struct {
		name    string
		path    string
		origin  string
		allowed bool
	}{
		{"allowed_origin_token", "/oauth2/token", allowedOrigin, true},
		{"allowed_origin_par", "/oauth2/par", allowedOrigin, true},
		{"allowed_origin_challenge", "/oauth2/challenge", allowedOrigin, true},
		{"allowed_origin_introspect", "/oauth2/introspect", allowedOrigin, true},
		{"allowed_origin_revoke", "/oauth2/revoke", allowedOrigin, true},
		{"other_origin", "/oauth2/token", "https://evil.example", false},
		{"other_scheme", "/oauth2/token", "http://app.example.com", false},
		{"other_port", "/oauth2/token", "https://app.example.com:8443", false},
		{"suffix_match", "/oauth2/token", "https://app.example.com.evil.example", false},
		{"null_origin", "/oauth2/token", "null", false},
	}
	for _, tt := range preflights {
		t.Run("preflight_"+tt.name, func(t *testing.T) {
			resp, _ := env.send(http.MethodOptions, tt.path, "", map[string]string{
				"Origin": tt.origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": requested,
			})
			if !tt.allowed {
				if got := corsHeaders(resp.Header); len(got) != 0 {
					t.Fatalf("origin %s got CORS headers %v", tt.origin, got)
				}
				if resp.StatusCode < 400 {
					t.Fatalf("preflight from %s: %d, want a refusal", tt.origin, resp.StatusCode)
				}
				return
			}
			if resp.StatusCode/100 != 2 {
				t.Fatalf("preflight: %d", resp.StatusCode)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.origin {
				t.Fatalf("Access-Control-Allow-Origin %q, want %q", got, tt.origin)
			}
			allowHeaders := headerList(resp.Header, "Access-Control-Allow-Headers")
			for _, h := range []string{clientauth.HeaderClientAttestation, clientauth.HeaderClientAttestationPoP, dpop.Header} {
				if !allowHeaders[strings.ToLower(h)] {
					t.Errorf("Access-Control-Allow-Headers %v lacks %s", resp.Header.Values("Access-Control-Allow-Headers"), h)
				}
			}
			if !headerList(resp.Header, "Access-Control-Allow-Methods")["post"] {
				t.Errorf("Access-Control-Allow-Methods %q lacks POST", resp.Header.Get("Access-Control-Allow-Methods"))
			}
			if !headerList(resp.Header, "Vary")["origin"] {
				t.Errorf("Vary %v lacks Origin", resp.Header.Values("Vary"))
			}
			expose := headerList(resp.Header, "Access-Control-Expose-Headers")
			for _, name := range []string{clientauth.HeaderClientAttestationChallenge, dpop.HeaderNonce} {
				if !expose[strings.ToLower(name)] {
					t.Errorf("Access-Control-Expose-Headers %v lacks %s", resp.Header.Values("Access-Control-Expose-Headers"), name)
				}
			}
			if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("credentials allowed: %q", resp.Header.Get("Access-Control-Allow-Credentials"))
			}
		})
	}

	t.Run("actual_request_allowed_origin_exposes_challenge_and_nonce", func(t *testing.T) {
		g := env.agent(agentID)
		// Without a challenge the server refuses and hands one over (ABCA-09 §6.2); the browser
		// may read it only because it is exposed.
		h := env.headers(g, "")
		h["Origin"] = allowedOrigin
		r := env.post("/oauth2/token", ccForm, h)
		if r.Status != 400 || r.Error != "use_attestation_challenge" {
			t.Fatalf("got %d %q", r.Status, r.Error)
		}
		challenge := r.Header.Get(clientauth.HeaderClientAttestationChallenge)
		if challenge == "" {
			t.Fatal("no challenge in the answer")
		}
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != allowedOrigin {
			t.Fatalf("Access-Control-Allow-Origin %q", got)
		}
		expose := headerList(r.Header, "Access-Control-Expose-Headers")
		for _, name := range []string{clientauth.HeaderClientAttestationChallenge, dpop.HeaderNonce} {
			if !expose[strings.ToLower(name)] {
				t.Errorf("Access-Control-Expose-Headers %v lacks %s", r.Header.Values("Access-Control-Expose-Headers"), name)
			}
		}
		// The retry with the exposed challenge succeeds, still with CORS headers.
		h = env.headers(g, challenge)
		h["Origin"] = allowedOrigin
		r = env.post("/oauth2/token", ccForm, h)
		if r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != allowedOrigin {
			t.Fatalf("retry: %d %q, Access-Control-Allow-Origin %q", r.Status, r.Error, r.Header.Get("Access-Control-Allow-Origin"))
		}
	})

	t.Run("actual_request_other_origin_gets_no_cors_headers", func(t *testing.T) {
		resp, _ := env.send(http.MethodPost, "/oauth2/challenge", "", map[string]string{"Origin": "https://evil.example"})
		if got := corsHeaders(resp.Header); len(got) != 0 {
			t.Fatalf("CORS headers for another origin: %v", got)
		}
	})

	t.Run("not_on_front_channel", func(t *testing.T) {
		// The login pages are navigated to, never fetched cross-origin.
		resp, _ := env.send(http.MethodGet, "/oauth2/authorize?client_id=web", "", map[string]string{"Origin": allowedOrigin})
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("authorize answered with Access-Control-Allow-Origin %q", resp.Header.Get("Access-Control-Allow-Origin"))
		}
	})
}

// TestSecurityHeaders is issue 7 item 6: X-Content-Type-Options on every response, no-store on
// token, challenge and error responses (RFC 6749 §5.1), frame denial on HTML pages.
func TestSecurityHeaders(t *testing.T) {
	env := newCORSServer(t)
	g := env.agent(agentID)
	authorizeQuery := url.Values{
		"response_type": {"code"}, "client_id": {webClientID}, "redirect_uri": {webRedirect}, "scope": {"read"},
		"state": {"state-0123456789"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
	}.Encode()

	tests := []struct {
		name    string
		method  string
		path    string
		body    func() string
		headers func() map[string]string
		noStore bool
		html    bool
	}{
		{name: "metadata", method: "GET", path: "/.well-known/oauth-authorization-server"},
		{name: "jwks", method: "GET", path: "/jwks.json"},
		{name: "token_success", method: "POST", path: "/oauth2/token", noStore: true,
			body: func() string { return ccForm.Encode() },
			headers: func() map[string]string {
				r := env.post("/oauth2/challenge", nil, nil)
				return env.headers(g, r.Challenge)
			}},
		{name: "token_error", method: "POST", path: "/oauth2/token", body: func() string { return ccForm.Encode() }, noStore: true},
		{name: "challenge", method: "POST", path: "/oauth2/challenge", noStore: true},
		{name: "introspection_error", method: "POST", path: "/oauth2/introspect", body: func() string { return "token=x" }, noStore: true},
		{name: "method_not_allowed", method: "GET", path: "/oauth2/challenge"},
		{name: "not_found", method: "GET", path: "/no-such-path"},
		{name: "healthz", method: "GET", path: "/healthz"},
		{name: "readyz", method: "GET", path: "/readyz"},
		{name: "body_too_large", method: "POST", path: "/oauth2/token", body: func() string { return "a=" + strings.Repeat("b", 2<<20) }},
		{name: "login_page", method: "GET", path: "/oauth2/authorize?" + authorizeQuery, html: true},
		{name: "authorize_error", method: "GET", path: "/oauth2/authorize?client_id=nobody", html: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := ""
			if tt.body != nil {
				body = tt.body()
			}
			var headers map[string]string
			if tt.headers != nil {
				headers = tt.headers()
			}
			resp, b := env.send(tt.method, tt.path, body, headers)
			if resp.StatusCode >= 500 {
				t.Fatalf("%d: %s", resp.StatusCode, b)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q (status %d)", got, resp.StatusCode)
			}
			if tt.noStore && resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q (status %d)", resp.Header.Get("Cache-Control"), resp.StatusCode)
			}
			if tt.name == "token_success" && resp.StatusCode != 200 {
				t.Fatalf("token: %d %s", resp.StatusCode, b)
			}
			if tt.html {
				if resp.Header.Get("X-Frame-Options") != "DENY" {
					t.Errorf("X-Frame-Options %q (status %d)", resp.Header.Get("X-Frame-Options"), resp.StatusCode)
				}
				if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
					t.Errorf("Content-Security-Policy %q", resp.Header.Get("Content-Security-Policy"))
				}
			}
			if tt.name == "login_page" && (resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html")) {
				t.Errorf("login page: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
		})
	}
}
