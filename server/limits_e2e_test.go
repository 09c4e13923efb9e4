package server_test

import (
	"database/sql"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/authz/authz/clientauth"
)

// Bodies of the OAuth endpoints are bounded (64 KiB): an oversized one is 413 in RFC 6749 JSON,
// and a token or PAR response still carries a fresh challenge (profile §5).
func TestOAuthBodyLimit(t *testing.T) {
	env := newTestServer(t, nil)
	big := url.Values{"grant_type": {"client_credentials"}, "x": {strings.Repeat("A", 70<<10)}}
	for _, path := range []string{"/oauth2/token", "/oauth2/par", "/oauth2/introspect", "/oauth2/revoke", "/oauth2/authorize"} {
		r := env.post(path, big, nil)
		if r.Status != http.StatusRequestEntityTooLarge || r.Error != "invalid_request" {
			t.Errorf("%s with a 70 KiB body: %d %q, want 413 invalid_request", path, r.Status, r.Error)
		}
		wantChallenge := path == "/oauth2/token" || path == "/oauth2/par"
		if got := r.Header.Get(clientauth.HeaderClientAttestationChallenge) != ""; got != wantChallenge {
			t.Errorf("%s: challenge header present %v, want %v", path, got, wantChallenge)
		}
	}
	// None of those carried attestation: nothing on record. One that does leaves its record
	// (profile §7), from what the headers tell.
	if ds := env.decisions(); len(ds) != 0 {
		t.Fatalf("decisions = %+v, want none", ds)
	}
	if r := env.post("/oauth2/token", big, env.attestedHeaders(agentID, env.Instance, "")); r.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("attested request with a 70 KiB body: %d", r.Status)
	}
	ds := env.decisions()
	if len(ds) != 1 || ds[0].Decision != "rejected" || ds[0].Reason != "request_too_large" || ds[0].ClientID != agentID ||
		ds[0].InstanceJKT != thumbprint(t, env.Instance) || ds[0].PoPMethod != "attestation_pop_jwt" {
		t.Fatalf("decisions = %+v, want one rejected request_too_large record for %s", ds, agentID)
	}
	// Under the limit the token endpoint answers as usual.
	if r := env.post("/oauth2/token", ccForm, env.attestedHeaders(agentID, env.Instance, "")); r.Status != 200 {
		t.Fatalf("normal token request: %d %q", r.Status, r.Error)
	}
}

// A pushed authorization request stores its parameters, and anyone may push for a public
// client: more than 16 KiB of parameters is refused and nothing is stored.
func TestPARParameterBound(t *testing.T) {
	env := newTestServer(t, nil)
	form := func(extra int) url.Values {
		return url.Values{"client_id": {webClientID}, "response_type": {"code"}, "redirect_uri": {webRedirect}, "scope": {"read"},
			"state": {randomString(t)}, "code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"},
			"x": {strings.Repeat("A", extra)}}
	}
	if r := env.post("/oauth2/par", form(1<<10), nil); r.Status != 201 {
		t.Fatalf("PAR with 1 KiB of extra parameters: %d %q %s", r.Status, r.Error, r.Description)
	}
	r := env.post("/oauth2/par", form(17<<10), nil)
	if r.Status != 400 || r.Error != "invalid_request" || !strings.Contains(r.Description, "16384") {
		t.Fatalf("PAR with 17 KiB of parameters: %d %q %s, want 400 invalid_request naming the bound", r.Status, r.Error, r.Description)
	}
	db, err := sql.Open("sqlite3", "file:"+env.Config.Database.DSN+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM par_requests").Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d pushed requests stored (%v), want only the first", n, err)
	}
}

// HEAD is served wherever GET is (RFC 9110 §9.3.2), with the GET headers and no body.
func TestHeadWhereGet(t *testing.T) {
	env := newTestServer(t, nil)
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/jwks.json", "/healthz", "/readyz"} {
		get, err := http.Get(env.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		get.Body.Close()
		head, err := http.Head(env.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, head.Body)
		head.Body.Close()
		if head.StatusCode != get.StatusCode || head.StatusCode != 200 || n != 0 || head.Header.Get("Content-Type") != get.Header.Get("Content-Type") {
			t.Errorf("HEAD %s: %d, %d body bytes, Content-Type %q; GET: %d %q", path, head.StatusCode, n, head.Header.Get("Content-Type"), get.StatusCode, get.Header.Get("Content-Type"))
		}
	}
	// POST-only endpoints still refuse HEAD.
	if resp, err := http.Head(env.URL + "/oauth2/token"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("HEAD /oauth2/token: %v %v, want 405", resp.StatusCode, err)
	}
}
