package server_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/storage"
)

// consoleUser is a browser-like HTTP client of the console: a cookie jar, no automatic
// redirects (each hop is checked), and the CSRF token of the last page.
type consoleUser struct {
	t    *testing.T
	env  *testEnv
	http *http.Client
	csrf string
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func newConsoleUser(t *testing.T, env *testEnv) *consoleUser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &consoleUser{t: t, env: env, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type page struct {
	Status   int
	Header   http.Header
	Body     string
	Location string
}

func (u *consoleUser) do(req *http.Request) page {
	u.t.Helper()
	resp, err := u.http.Do(req)
	if err != nil {
		u.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	p := page{Status: resp.StatusCode, Header: resp.Header, Body: string(b), Location: resp.Header.Get("Location")}
	if m := csrfInput.FindStringSubmatch(p.Body); m != nil {
		u.csrf = m[1]
	}
	return p
}

func (u *consoleUser) get(path string) page {
	u.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u.env.URL+path, nil)
	return u.do(req)
}

// post submits a form with the current CSRF token (unless form sets csrf itself).
func (u *consoleUser) post(path string, form url.Values, headers ...string) page {
	u.t.Helper()
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", u.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, u.env.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return u.do(req)
}

// login signs in and follows to the dashboard.
func (u *consoleUser) login() page {
	u.t.Helper()
	if p := u.get("/admin/ui/login"); p.Status != 200 {
		u.t.Fatalf("login page: %d", p.Status)
	}
	p := u.post("/admin/ui/login", url.Values{"token": {adminToken}})
	if p.Status != 303 || p.Location != "/admin/ui/" {
		u.t.Fatalf("login: %d %q %s", p.Status, p.Location, p.Body)
	}
	return u.get("/admin/ui/")
}

func TestConsole_LoginAndSession(t *testing.T) {
	env := newAdminServer(t)
	u := newConsoleUser(t, env)
	if p := u.get("/admin/ui/attesters"); p.Status != 303 || p.Location != "/admin/ui/login" {
		t.Fatalf("signed-out page: %d %q", p.Status, p.Location)
	}
	p := u.get("/admin/ui/login")
	for header, want := range map[string]string{
		"X-Frame-Options": "DENY", "Cache-Control": "no-store", "Referrer-Policy": "same-origin",
		"Content-Security-Policy": "default-src 'none'", "X-Content-Type-Options": "nosniff",
	} {
		if !strings.Contains(p.Header.Get(header), want) {
			t.Fatalf("%s = %q, want %q", header, p.Header.Get(header), want)
		}
	}
	if strings.Contains(p.Header.Get("Content-Security-Policy"), "script-src") || strings.Contains(p.Body, "<script") {
		t.Fatal("the console must not need scripts")
	}
	tests := []struct {
		name       string
		form       url.Values
		headers    []string
		wantStatus int
		wantText   string
	}{
		{"wrong_token", url.Values{"token": {"admin-token-for-tests-0000000000"}}, nil, 401, "not the admin token"},
		{"missing_csrf", url.Values{"token": {adminToken}, "csrf": {""}}, nil, 403, "form expired"},
		{"forged_csrf", url.Values{"token": {adminToken}, "csrf": {"forged"}}, nil, 403, "form expired"},
		{"foreign_origin", url.Values{"token": {adminToken}}, []string{"Origin", "https://evil.example"}, 403, "form expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u.get("/admin/ui/login")
			p := u.post("/admin/ui/login", tc.form, tc.headers...)
			if p.Status != tc.wantStatus || !strings.Contains(p.Body, tc.wantText) {
				t.Fatalf("%d %q, want %d with %q", p.Status, p.Body, tc.wantStatus, tc.wantText)
			}
			if s := u.get("/admin/ui/"); s.Status != 303 {
				t.Fatalf("a refused sign-in opened a session: %d", s.Status)
			}
		})
	}
	dash := u.login()
	if dash.Status != 200 || !strings.Contains(dash.Body, "Dashboard") || !strings.Contains(dash.Body, "<svg") {
		t.Fatalf("dashboard: %d %s", dash.Status, dash.Body)
	}
	var session *http.Cookie
	base, _ := url.Parse(env.URL + "/admin/ui/")
	for _, c := range u.http.Jar.Cookies(base) {
		if c.Name == "authz_admin" {
			session = c
		}
	}
	if session == nil {
		t.Fatal("no session cookie")
	}
	t.Run("token_in_query_refused", func(t *testing.T) {
		if p := u.get("/admin/ui/decisions?access_token=" + adminToken); p.Status != 400 {
			t.Fatalf("%d", p.Status)
		}
	})
	t.Run("tampered_session_refused", func(t *testing.T) {
		other := newConsoleUser(t, env)
		other.http.Jar.SetCookies(base, []*http.Cookie{{Name: "authz_admin", Value: session.Value[:len(session.Value)-2] + "xx", Path: "/admin/ui"}})
		if p := other.get("/admin/ui/"); p.Status != 303 {
			t.Fatalf("tampered session: %d", p.Status)
		}
	})
	t.Run("post_without_csrf_refused", func(t *testing.T) {
		p := u.post("/admin/ui/attesters/test-attester/disable", url.Values{"csrf": {"nope"}})
		if p.Status != 403 {
			t.Fatalf("%d", p.Status)
		}
		if a, _ := env.Store.GetAttester(context.Background(), "test-attester"); !a.Enabled {
			t.Fatal("a forged form disabled the attester")
		}
	})
	t.Run("logout", func(t *testing.T) {
		u.get("/admin/ui/")
		consoleURL, _ := url.Parse(env.URL + "/admin/ui/")
		copied := u.http.Jar.Cookies(consoleURL) // a copy of the session cookie, as a thief would keep it
		if p := u.post("/admin/ui/logout", url.Values{}); p.Status != 303 || p.Location != "/admin/ui/login" {
			t.Fatalf("logout: %d %q", p.Status, p.Location)
		}
		if p := u.get("/admin/ui/"); p.Status != 303 {
			t.Fatalf("after logout: %d", p.Status)
		}
		// The copy is signed out too: the session id is recorded as ended, not only the
		// browser's cookie cleared.
		other := newConsoleUser(t, env)
		other.http.Jar.SetCookies(consoleURL, copied)
		if p := other.get("/admin/ui/clients"); p.Status != 303 || p.Location != "/admin/ui/login" {
			t.Fatalf("the session cookie copied before sign-out: %d %q, want a redirect to sign in", p.Status, p.Location)
		}
		// A new sign-in works.
		if p := other.login(); p.Status != 200 {
			t.Fatalf("sign in again: %d", p.Status)
		}
	})
}

func TestConsole_Attesters(t *testing.T) {
	env := newAdminServer(t)
	u := newConsoleUser(t, env)
	u.login()
	u.get("/admin/ui/attesters")

	key := newECKey(t)
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	p := u.post("/admin/ui/attesters", url.Values{"id": {"acme"}, "description": {"Acme <Attester>"}, "keys": {pemKey}, "enabled": {"true"}})
	if p.Status != 303 || p.Location != "/admin/ui/attesters" {
		t.Fatalf("add by PEM: %d %s", p.Status, p.Body)
	}
	list := u.get("/admin/ui/attesters")
	if !strings.Contains(list.Body, "Attester acme added") || !strings.Contains(list.Body, "Acme &lt;Attester&gt;") {
		t.Fatalf("attesters page after add: %s", list.Body)
	}
	rec, err := env.Store.GetAttester(context.Background(), "acme")
	if err != nil || rec.Source != "console" || !rec.Enabled {
		t.Fatalf("stored = %+v %v", rec, err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(rec.JWKS, &set); err != nil || len(set.Keys) != 1 || set.Keys[0].KeyID != thumbprint(t, key) {
		t.Fatalf("PEM key stored as %s (%v); want kid = RFC 7638 thumbprint", rec.JWKS, err)
	}

	// Refused forms keep what was typed and list every problem.
	p = u.post("/admin/ui/attesters", url.Values{"id": {"bad id"}, "keys": {"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}})
	if p.Status != 400 || !strings.Contains(p.Body, "private key") || !strings.Contains(p.Body, `value="bad id"`) {
		t.Fatalf("refused add: %d %s", p.Status, p.Body)
	}
	p = u.post("/admin/ui/attesters", url.Values{"id": {"acme"}, "keys": {pemKey}})
	if p.Status != 400 || !strings.Contains(p.Body, "already exists") {
		t.Fatalf("duplicate: %d", p.Status)
	}

	u.get("/admin/ui/attesters")
	if p := u.post("/admin/ui/attesters/acme/disable", url.Values{}); p.Status != 303 {
		t.Fatalf("disable: %d %s", p.Status, p.Body)
	}
	if rec, _ := env.Store.GetAttester(context.Background(), "acme"); rec.Enabled {
		t.Fatal("still enabled")
	}
	u.get("/admin/ui/attesters")
	if p := u.post("/admin/ui/attesters/acme/enable", url.Values{}); p.Status != 303 {
		t.Fatalf("enable: %d", p.Status)
	}
	u.get("/admin/ui/attesters")
	if p := u.post("/admin/ui/attesters/acme/delete", url.Values{}); p.Status != 303 {
		t.Fatalf("delete: %d", p.Status)
	}
	if p := u.post("/admin/ui/attesters/acme/explode", url.Values{}); p.Status != 404 {
		t.Fatalf("unknown action: %d", p.Status)
	}
	changes, err := env.Store.ListAdminChanges(context.Background(), storage.AdminChangeFilter{Resource: "attester", ResourceID: "acme"})
	if err != nil || len(changes) != 4 || changes[0].Actor != "console" || changes[0].Action != "delete" || changes[2].Action != "disable" {
		t.Fatalf("changes = %+v %v", changes, err)
	}
	log := u.get("/admin/ui/changes")
	if log.Status != 200 || strings.Count(log.Body, "console") < 4 {
		t.Fatalf("change log page: %d", log.Status)
	}
}

func TestConsole_ClientsDecisionsInstance(t *testing.T) {
	env := newAdminServer(t)
	inst1, _ := seedDecisions(t, env)
	u := newConsoleUser(t, env)
	u.login()

	clients := u.get("/admin/ui/clients")
	if !strings.Contains(clients.Body, "not attested") || !strings.Contains(clients.Body, "vouched for by test-attester") {
		t.Fatalf("clients page lacks attestation words: %s", clients.Body)
	}
	p := u.post("/admin/ui/clients", url.Values{"client_id": {"batch"}, "token_endpoint_auth_method": {"client_secret_post"},
		"grant_types": {"client_credentials"}, "scopes": {"read write"}})
	m := regexp.MustCompile(`id="new-secret">([^<]+)<`).FindStringSubmatch(p.Body)
	if p.Status != 200 || m == nil || len(m[1]) != 43 {
		t.Fatalf("add client with secret: %d %s", p.Status, p.Body)
	}
	if again := u.get("/admin/ui/clients"); strings.Contains(again.Body, m[1]) {
		t.Fatal("the secret is shown twice")
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}, "client_id": {"batch"}, "client_secret": {m[1]}}
	if r := env.post("/oauth2/token", form, nil); r.Status != 200 {
		t.Fatalf("token with the console's secret: %d %s", r.Status, r.Description)
	}
	// Removing the client in the console ends it at once on this replica: the client cache is
	// cleared (before, cached clients kept getting tokens until the generation poll).
	if p := u.post("/admin/ui/clients/batch/delete", url.Values{}); p.Status != 303 {
		t.Fatalf("console delete: %d %s", p.Status, p.Body)
	}
	if r := env.post("/oauth2/token", form, nil); r.Status != 401 || r.Error != "invalid_client" {
		t.Fatalf("token for a client removed in the console: %d %q, want 401 invalid_client", r.Status, r.Error)
	}
	p = u.post("/admin/ui/clients", url.Values{"client_id": {"batch"}, "token_endpoint_auth_method": {"client_secret_post"},
		"grant_types": {"client_credentials"}, "scopes": {"read write"}})
	if m = regexp.MustCompile(`id="new-secret">([^<]+)<`).FindStringSubmatch(p.Body); p.Status != 200 || m == nil {
		t.Fatalf("add the client again: %d %s", p.Status, p.Body)
	}
	p = u.post("/admin/ui/clients", url.Values{"client_id": {"x"}, "token_endpoint_auth_method": {"none"}, "grant_types": {"client_credentials authorization_code"}})
	if p.Status != 400 || !strings.Contains(p.Body, "cannot use client_credentials") || !strings.Contains(p.Body, "redirect_uris: required") {
		t.Fatalf("refused client: %d %s", p.Status, p.Body)
	}

	all := u.get("/admin/ui/decisions")
	if all.Status != 200 || strings.Count(all.Body, "<tr>") != 6 { // header + 5
		t.Fatalf("decisions page: %d rows %d", all.Status, strings.Count(all.Body, "<tr>"))
	}
	if strings.Contains(all.Body, `=HYPERLINK("x")<`) || !strings.Contains(all.Body, "=HYPERLINK(&#34;x&#34;)") {
		t.Fatal("a hostile client id is not escaped")
	}
	rejected := u.get("/admin/ui/decisions?decision=rejected&client_id=&attester=")
	if rejected.Status != 200 || strings.Count(rejected.Body, "<tr>") != 3 {
		t.Fatalf("filtered decisions: %d rows %d", rejected.Status, strings.Count(rejected.Body, "<tr>"))
	}
	if bad := u.get("/admin/ui/decisions?decision=maybe&since=later"); bad.Status != 400 || !strings.Contains(bad.Body, "2 problems") {
		t.Fatalf("bad filters: %d", bad.Status)
	}
	csvExport := u.get("/admin/ui/decisions/export?format=csv&decision=accepted")
	if csvExport.Status != 200 || strings.Count(csvExport.Body, "\n") != 4 {
		t.Fatalf("console export: %d %q", csvExport.Status, csvExport.Body)
	}

	jkt := thumbprint(t, inst1)
	if p := u.get("/admin/ui/instances?jkt=" + jkt); p.Status != 303 || p.Location != "/admin/ui/instances/"+jkt {
		t.Fatalf("lookup: %d %q", p.Status, p.Location)
	}
	inst := u.get("/admin/ui/instances/" + jkt)
	if inst.Status != 200 || !strings.Contains(inst.Body, "Revoke this instance key") || !strings.Contains(inst.Body, "test-attester") {
		t.Fatalf("instance page: %d %s", inst.Status, inst.Body)
	}
	p = u.post("/admin/ui/instances/"+jkt+"/revoke", url.Values{"reason": {"compromised"}})
	if p.Status != 303 || p.Location != "/admin/ui/instances/"+jkt {
		t.Fatalf("revoke: %d %s", p.Status, p.Body)
	}
	after := u.get(p.Location)
	if !strings.Contains(after.Body, "Revoked") || !strings.Contains(after.Body, "compromised") || strings.Contains(after.Body, "Revoke this instance key") {
		t.Fatalf("instance after revoke: %s", after.Body)
	}
	if r := env.post("/oauth2/token", ccForm, env.attestedHeaders(agentID, inst1, "")); r.Status != 401 || r.Error != "invalid_client" {
		t.Fatalf("revoked instance: %d %s", r.Status, r.Error)
	}
	if p := u.get("/admin/ui/instances/not-a-key"); p.Status != 400 {
		t.Fatalf("bad jkt: %d", p.Status)
	}
	list := u.get("/admin/ui/instances")
	if !strings.Contains(list.Body, jkt) {
		t.Fatal("revoked key not listed")
	}
	dash := u.get("/admin/ui/")
	if !strings.Contains(dash.Body, "revoke instance") || !strings.Contains(dash.Body, "(no attester resolved)") {
		t.Fatalf("dashboard lacks the change or the unresolved series: %s", dash.Body)
	}
}
