package reliability

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authz/authz/clientauth"
	"github.com/authz/authz/config"
)

// slowRate refills one request every 1000 s: within a test, a bucket holds exactly its burst.
const slowRate = 0.001

// serveFrom sends a form to path through the handler as if from remoteAddr.
func (e *testEnv) serveFrom(remoteAddr, path string, form url.Values, headers map[string]string) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.RemoteAddr = remoteAddr
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.Handler.ServeHTTP(rec, req)
	return rec
}

// assertRateLimited checks an RFC 6585 §4 answer: 429, a positive integer Retry-After, and the
// RFC 6749 JSON error body.
func assertRateLimited(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429: %s", rec.Code, rec.Body)
	}
	if secs, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("Retry-After %q, want a positive number of seconds", rec.Header().Get("Retry-After"))
	}
	if !strings.Contains(rec.Body.String(), `"error":"temporarily_unavailable"`) || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("429 body %s, Cache-Control %q", rec.Body, rec.Header().Get("Cache-Control"))
	}
}

// TestRateLimit_PerAddress is issue 7 item 2 for the remote address: on each limited endpoint an
// address gets its burst and then 429 with Retry-After, another address is unaffected, and a
// spoofed X-Forwarded-For does not buy a fresh bucket.
func TestRateLimit_PerAddress(t *testing.T) {
	env := newTestServer(t, false, func(c *config.Config) {
		c.RateLimit = config.RateLimit{PerAddress: slowRate, PerAddressBurst: 2}
		c.HTTP.CORSAllowedOrigins = []string{allowedOrigin}
	})
	tests := []struct {
		name string
		path string
		form url.Values
	}{
		{"token_endpoint", "/oauth2/token", ccForm},
		{"par_endpoint", "/oauth2/par", url.Values{"response_type": {"code"}, "client_id": {agentID}}},
		{"challenge_endpoint", "/oauth2/challenge", url.Values{}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flooder := "192.0.2." + strconv.Itoa(i+1) + ":40000"
			bystander := "198.51.100." + strconv.Itoa(i+1) + ":40000"
			for n := range 2 {
				if rec := env.serveFrom(flooder, tt.path, tt.form, nil); rec.Code == http.StatusTooManyRequests {
					t.Fatalf("request %d within the burst was limited", n+1)
				}
			}
			assertRateLimited(t, env.serveFrom(flooder, tt.path, tt.form, nil))
			// Another port of the same host is the same address.
			assertRateLimited(t, env.serveFrom(strings.Replace(flooder, ":40000", ":40001", 1), tt.path, tt.form, nil))
			// The server keys on the connection's address, never on a header a client chooses.
			assertRateLimited(t, env.serveFrom(flooder, tt.path, tt.form, map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Real-Ip": "203.0.113.9"}))
			if rec := env.serveFrom(bystander, tt.path, tt.form, nil); rec.Code == http.StatusTooManyRequests {
				t.Fatalf("another address was limited: %s", rec.Body)
			}
		})
	}
	t.Run("limited_answer_readable_by_allowed_origin", func(t *testing.T) {
		// A browser client must be able to read Retry-After (CORS exposes it).
		origin := map[string]string{"Origin": allowedOrigin}
		addr := "192.0.2.100:1"
		for range 2 {
			env.serveFrom(addr, "/oauth2/challenge", nil, origin)
		}
		rec := env.serveFrom(addr, "/oauth2/challenge", nil, origin)
		assertRateLimited(t, rec)
		if rec.Header().Get("Access-Control-Allow-Origin") != allowedOrigin || !headerList(rec.Header(), "Access-Control-Expose-Headers")["retry-after"] {
			t.Fatalf("429 CORS headers: Allow-Origin %q, Expose %v", rec.Header().Get("Access-Control-Allow-Origin"), rec.Header().Values("Access-Control-Expose-Headers"))
		}
	})
	t.Run("introspection_not_limited", func(t *testing.T) {
		// Only the token, PAR and challenge endpoints are limited (issue 7 item 2).
		for range 4 {
			if rec := env.serveFrom("192.0.2.200:1", "/oauth2/introspect", url.Values{"token": {"x"}}, nil); rec.Code == http.StatusTooManyRequests {
				t.Fatal("introspection was rate limited")
			}
		}
	})
}

// TestRateLimit_PerClient is issue 7 item 2 for the claimed client: a flood of bad attestations
// claiming one client id, from one address, ends in 429 for that client id while another client
// at the same address still gets its token.
func TestRateLimit_PerClient(t *testing.T) {
	env := newTestServer(t, true, func(c *config.Config) {
		c.RateLimit = config.RateLimit{PerClient: slowRate, PerClientBurst: 3}
	})
	victim := env.agent(otherAgentID)
	forger, err := NewAttester(attesterID) // the same attester id, a key nobody trusts
	if err != nil {
		t.Fatal(err)
	}
	bad, err := NewAgent(forger, agentID, env.URL, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		form       url.Values
		headers    func() map[string]string
		wantStatus int
		wantError  string
	}{
		{"flood_1_refused_by_attestation", formFor(agentID), func() map[string]string { return env.headers(bad, "") }, 401, "invalid_client"},
		{"flood_2_refused_by_attestation", formFor(agentID), func() map[string]string { return env.headers(bad, "") }, 401, "invalid_client"},
		{"flood_3_garbage_headers", formFor(agentID), func() map[string]string {
			return map[string]string{clientauth.HeaderClientAttestation: "e30.e30.AAAA", clientauth.HeaderClientAttestationPoP: "x"}
		}, 0, ""},
		{"flood_4_limited", formFor(agentID), func() map[string]string { return env.headers(bad, "") }, 429, "temporarily_unavailable"},
		{"flood_5_limited_by_attestation_sub", ccForm, func() map[string]string { return env.headers(bad, "") }, 429, "temporarily_unavailable"},
		{"other_client_still_served", formFor(otherAgentID), func() map[string]string { return env.headers(victim, "") }, 200, ""},
		{"other_client_without_client_id", ccForm, func() map[string]string { return env.headers(victim, "") }, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := env.post("/oauth2/token", tt.form, tt.headers())
			if tt.wantStatus == 0 { // any refusal except 429 and 5xx
				if r.Status == 429 || r.Status >= 500 || r.Status == 200 {
					t.Fatalf("got %d %q", r.Status, r.Error)
				}
				return
			}
			if r.Status != tt.wantStatus || r.Error != tt.wantError {
				t.Fatalf("got %d %q (%s), want %d %q", r.Status, r.Error, r.Description, tt.wantStatus, tt.wantError)
			}
			if r.Status == 429 {
				if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 {
					t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
				}
			}
		})
	}
}
