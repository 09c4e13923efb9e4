package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Back-channel requests are application/x-www-form-urlencoded with each parameter at most once
// (RFC 6749 §3.2, §5.2; RFC 7009 §2.1; RFC 7662 §2.1; RFC 9126 §2.1): anything else is
// 400 invalid_request, before any token is issued, pushed or revoked.
func TestBackChannelFormSyntax(t *testing.T) {
	env := newTestServer(t, nil)
	const form = "application/x-www-form-urlencoded"
	tests := []struct {
		name, path, contentType, body string
	}{
		{"token_grant_type_twice", "/oauth2/token", form, "grant_type=client_credentials&grant_type=refresh_token&scope=read"},
		{"token_scope_twice", "/oauth2/token", form, "grant_type=client_credentials&scope=read&scope=write"},
		{"token_client_id_twice", "/oauth2/token", form, "grant_type=client_credentials&client_id=svc&client_id=svc"},
		{"token_bad_percent_encoding", "/oauth2/token", form, "grant_type=client_credentials&scope=%zz"},
		{"token_multipart", "/oauth2/token", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--x--\r\n"},
		{"token_json", "/oauth2/token", "application/json", `{"grant_type":"client_credentials"}`},
		{"token_no_content_type", "/oauth2/token", "", "grant_type=client_credentials"},
		{"token_malformed_content_type", "/oauth2/token", "application/x-www-form-urlencoded;;;===", "grant_type=client_credentials"},
		{"par_redirect_uri_twice", "/oauth2/par", form, "client_id=web&response_type=code&redirect_uri=" + webRedirect + "&redirect_uri=" + webRedirect},
		{"introspect_token_twice", "/oauth2/introspect", form, "token=a&token=b"},
		{"revoke_token_twice", "/oauth2/revoke", form, "token=a&token=b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, env.URL+tt.path, strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			req.SetBasicAuth(secretClientID, secretValue)
			if r := env.do(req); r.Status != 400 || r.Error != "invalid_request" || r.AccessToken != "" {
				t.Fatalf("%d %q %s, want 400 invalid_request", r.Status, r.Error, r.Description)
			}
		})
	}
	// Controls: a charset parameter is fine, and audience may repeat (fosite reads the list).
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/oauth2/token", strings.NewReader("grant_type=client_credentials&scope=read"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	req.SetBasicAuth(secretClientID, secretValue)
	if r := env.do(req); r.Status != 200 {
		t.Fatalf("form with charset: %d %q %s", r.Status, r.Error, r.Description)
	}

	// With attestation, the refusal still leaves the attestation's record (profile §7).
	h := env.attestedHeaders(agentID, env.Instance, "")
	req, _ = http.NewRequest(http.MethodPost, env.URL+"/oauth2/token", strings.NewReader("grant_type=client_credentials&scope=read&scope=read"))
	req.Header.Set("Content-Type", form)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	if r := env.do(req); r.Status != 400 || r.Error != "invalid_request" {
		t.Fatalf("attested request with scope twice: %d %q", r.Status, r.Error)
	}
	if ds := env.decisions(); len(ds) != 1 || ds[0].Decision != "accepted" || ds[0].TokenRequestID != "" {
		t.Fatalf("decisions = %+v, want one accepted attestation without a token", ds)
	}
}

// A pushed request is validated as an authorization request would be (RFC 9126 §2.1),
// PKCE included: fosite checks it only when the code is issued, after the user signed in.
func TestPARChecksPKCEAtPush(t *testing.T) {
	env := newTestServer(t, nil)
	s256 := strings.Repeat("a", 43)
	tests := []struct {
		name, challenge, method string
		want                    int
	}{
		{"s256", s256, "S256", 201},
		{"missing_for_public_client", "", "", 400},
		{"method_without_challenge", "", "S256", 400},
		{"plain", s256, "plain", 400},
		{"method_omitted_means_plain", s256, "", 400},
		{"too_short", strings.Repeat("a", 42), "S256", 400},
		{"too_long", strings.Repeat("a", 129), "S256", 400},
		{"bad_character", strings.Repeat("a", 42) + "+", "S256", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"client_id": {webClientID}, "response_type": {"code"}, "redirect_uri": {webRedirect}, "scope": {"read"}, "state": {randomString(t)}}
			if tt.challenge != "" {
				form.Set("code_challenge", tt.challenge)
			}
			if tt.method != "" {
				form.Set("code_challenge_method", tt.method)
			}
			r := env.post("/oauth2/par", form, nil)
			if r.Status != tt.want || (tt.want == 400 && r.Error != "invalid_request") {
				t.Fatalf("%d %q %s, want %d", r.Status, r.Error, r.Description, tt.want)
			}
		})
	}
}

// A request with no client authentication at all is invalid_client with 401 at every
// endpoint that authenticates clients (RFC 6749 §5.2, "no client authentication included").
func TestNoClientAuthenticationIsInvalidClient(t *testing.T) {
	env := newTestServer(t, nil)
	for path, form := range map[string]url.Values{
		"/oauth2/token":      {"grant_type": {"client_credentials"}},
		"/oauth2/revoke":     {"token": {"x"}},
		"/oauth2/introspect": {"token": {"x"}},
	} {
		r := env.post(path, form, nil)
		if r.Status != 401 || r.Error != "invalid_client" || r.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s without credentials: %d %q (WWW-Authenticate %q), want 401 invalid_client", path, r.Status, r.Error, r.Header.Get("WWW-Authenticate"))
		}
	}
}

// authz answers in the query response mode only (metadata response_modes_supported): a
// request for form_post or fragment gets unsupported_response_mode by query redirect, not a
// self-submitting page.
func TestAuthorizeUnsupportedResponseMode(t *testing.T) {
	env := newTestServer(t, nil)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, mode := range []string{"form_post", "fragment"} {
		q := url.Values{"client_id": {webClientID}, "response_type": {"code"}, "redirect_uri": {webRedirect}, "scope": {"read"},
			"state": {"state-" + mode}, "code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}, "response_mode": {mode}}
		resp, err := noRedirect.Get(env.URL + "/oauth2/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode/100 != 3 || err != nil || !strings.HasPrefix(loc.String(), webRedirect) ||
			loc.Query().Get("error") != "unsupported_response_mode" || loc.Query().Get("state") != "state-"+mode {
			t.Fatalf("response_mode=%s: %d Location %q, want a query redirect with unsupported_response_mode", mode, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

// RFC 6749 §3.1 applies to the authorization endpoint too: a repeated parameter is
// invalid_request, redirected to the client unless the client or redirect URI itself is the
// repeated one (then an error page: where to send the answer is ambiguous).
func TestAuthorizeRepeatedParameters(t *testing.T) {
	env := newTestServer(t, nil)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := func() url.Values {
		return url.Values{"client_id": {webClientID}, "response_type": {"code"}, "redirect_uri": {webRedirect}, "scope": {"read"},
			"state": {"state-0123"}, "code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}}
	}
	get := func(q url.Values) *http.Response {
		resp, err := noRedirect.Get(env.URL + "/oauth2/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	q := base()
	q.Add("scope", "write")
	resp := get(q)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode/100 != 3 || loc == nil || loc.Query().Get("error") != "invalid_request" || loc.Query().Get("state") != "state-0123" {
		t.Fatalf("scope twice: %d Location %q, want a redirect with invalid_request", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, name := range []string{"client_id", "redirect_uri"} {
		q := base()
		q.Add(name, q.Get(name))
		if resp := get(q); resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Fatalf("%s twice: %d Location %q, want a 400 page and no redirect", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// The request without repetition shows the sign-in page.
	if resp := get(base()); resp.StatusCode != http.StatusOK {
		t.Fatalf("valid request: %d", resp.StatusCode)
	}
}
