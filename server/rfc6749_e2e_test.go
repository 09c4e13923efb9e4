package server_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/authz/authz/config"
	"github.com/authz/authz/storage"
)

// A confidential authorization-code client with two scopes, for the refresh, introspection and
// redirect_uri rules of RFC 6749, RFC 7662 and RFC 7009 below.
const (
	confClientID = "conf-web"
	confSecret   = "conf-secret-0123456789"
)

func withConfidentialWebClient(cfg *config.Config) {
	cfg.Clients = append(cfg.Clients, config.Client{ClientID: confClientID, TokenEndpointAuthMethod: config.AuthMethodClientSecretBasic,
		ClientSecret: confSecret, GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"read", "write"},
		RedirectURIs: []string{webRedirect}})
}

func basicAuth(id, secret string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))}
}

func confOAuthConfig(env *testEnv) *oauth2.Config {
	return &oauth2.Config{ClientID: confClientID, ClientSecret: confSecret, RedirectURL: webRedirect, Scopes: []string{"read", "write"},
		Endpoint: oauth2.Endpoint{AuthURL: env.URL + "/oauth2/authorize", TokenURL: env.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
}

// confTokens runs the code flow for conf-web with scope "read write" and returns the tokens.
func confTokens(t *testing.T, env *testEnv) *oauth2.Token {
	t.Helper()
	oc := confOAuthConfig(env)
	verifier := oauth2.GenerateVerifier()
	cb := browserLogin(t, env, oc.AuthCodeURL(randomString(t), oauth2.S256ChallengeOption(verifier)))
	tok, err := oc.Exchange(t.Context(), cb.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	return tok
}

// introspectAs introspects token authenticated as id/secret and returns the JSON object.
func introspectAs(t *testing.T, env *testEnv, id, secret, token string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/oauth2/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
		t.Fatalf("introspect: %d %v", resp.StatusCode, err)
	}
	return m
}

// TestRefresh_ScopeParameter: RFC 6749 §6 — the scope of a refresh request names only scopes
// granted with the refresh token (else invalid_scope, compared case-sensitively), narrows the new
// access token, and leaves the new refresh token with the original scope.
func TestRefresh_ScopeParameter(t *testing.T) {
	env := newTestServer(t, withConfidentialWebClient)
	tok := confTokens(t, env)
	refresh := func(rt, scope string) tokenResponse {
		t.Helper()
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		if scope != "" {
			form.Set("scope", scope)
		}
		return env.post("/oauth2/token", form, basicAuth(confClientID, confSecret))
	}

	for _, scope := range []string{"admin", "read admin", "READ", "read  write admin"} {
		if r := refresh(tok.RefreshToken, scope); r.Status != 400 || r.Error != "invalid_scope" {
			t.Errorf("refresh with scope %q: %d %s, want 400 invalid_scope", scope, r.Status, r.Error)
		}
	}
	narrowed := refresh(tok.RefreshToken, "read")
	if narrowed.Status != 200 || narrowed.Scope != "read" {
		t.Fatalf("narrowing refresh: %d %s scope %q, want 200 scope read", narrowed.Status, narrowed.Error, narrowed.Scope)
	}
	if got := jwtClaims(t, narrowed.AccessToken)["scope"]; got != "read" {
		t.Errorf("narrowed access token scope claim = %v, want read", got)
	}
	if got := introspectAs(t, env, confClientID, confSecret, narrowed.AccessToken)["scope"]; got != "read" {
		t.Errorf("narrowed access token introspects with scope %v, want read", got)
	}
	// The new refresh token keeps the scope of the one presented (RFC 6749 §6).
	if got := introspectAs(t, env, confClientID, confSecret, narrowed.RefreshToken)["scope"]; got != "read write" {
		t.Errorf("refresh token after narrowing introspects with scope %v, want \"read write\"", got)
	}
	full := refresh(narrowed.RefreshToken, "")
	if full.Status != 200 || full.Scope != "read write" {
		t.Fatalf("refresh without scope after narrowing: %d %s scope %q, want \"read write\"", full.Status, full.Error, full.Scope)
	}
	same := refresh(full.RefreshToken, "write read write")
	if got := strings.Fields(same.Scope); same.Status != 200 || !slices.Equal(slices.Sorted(slices.Values(got)), []string{"read", "write"}) {
		t.Fatalf("refresh naming every granted scope: %d %s scope %q", same.Status, same.Error, same.Scope)
	}
}

// TestIntrospection_RefreshTokenOnlyToItsClient: a refresh token is active only to the client it
// was issued to (decision S25); access tokens stay introspectable by any confidential client (a
// resource server).
func TestIntrospection_RefreshTokenOnlyToItsClient(t *testing.T) {
	env := newTestServer(t, withConfidentialWebClient)
	tok := confTokens(t, env)
	if got := introspectAs(t, env, secretClientID, secretValue, tok.RefreshToken); len(got) != 1 || got["active"] != false {
		t.Errorf("another client introspecting a refresh token: %v, want exactly {\"active\":false}", got)
	}
	if got := introspectAs(t, env, confClientID, confSecret, tok.RefreshToken); got["active"] != true || got["client_id"] != confClientID {
		t.Errorf("the owner introspecting its refresh token: %v, want active", got)
	}
	if got := introspectAs(t, env, secretClientID, secretValue, tok.AccessToken); got["active"] != true || got["token_type"] != "Bearer" {
		t.Errorf("a resource server introspecting an access token: %v, want active Bearer", got)
	}
}

// TestRevocation_Refusals: RFC 7009 §2.1 — token is required, and a token of another client is
// refused with a description that says so.
func TestRevocation_Refusals(t *testing.T) {
	env := newTestServer(t, withConfidentialWebClient)
	tok := confTokens(t, env)
	if r := env.post("/oauth2/revoke", url.Values{"token_type_hint": {"access_token"}}, basicAuth(confClientID, confSecret)); r.Status != 400 || r.Error != "invalid_request" {
		t.Errorf("revoke without token: %d %s, want 400 invalid_request", r.Status, r.Error)
	}
	if r := env.post("/oauth2/revoke", url.Values{"client_id": {webClientID}}, nil); r.Status != 400 || r.Error != "invalid_request" {
		t.Errorf("public client revoking without token: %d %s, want 400 invalid_request", r.Status, r.Error)
	}
	r := env.post("/oauth2/revoke", url.Values{"token": {tok.AccessToken}}, basicAuth(secretClientID, secretValue))
	if r.Status != 400 || r.Error != "unauthorized_client" || !strings.Contains(r.Description, "not issued to the authenticated client") {
		t.Errorf("revoking another client's token: %d %s %q", r.Status, r.Error, r.Description)
	}
	if got := introspectAs(t, env, confClientID, confSecret, tok.AccessToken); got["active"] != true {
		t.Errorf("the refused revocation revoked the token: %v", got)
	}
}

// TestTokenEndpoint_MissingGrantParameter: RFC 6749 §5.2 — a missing code or refresh_token is
// invalid_request, not invalid_grant.
func TestTokenEndpoint_MissingGrantParameter(t *testing.T) {
	env := newTestServer(t, withConfidentialWebClient)
	for _, form := range []url.Values{
		{"grant_type": {"refresh_token"}},
		{"grant_type": {"refresh_token"}, "refresh_token": {""}},
		{"grant_type": {"authorization_code"}, "redirect_uri": {webRedirect}},
	} {
		r := env.post("/oauth2/token", form, basicAuth(confClientID, confSecret))
		if r.Status != 400 || r.Error != "invalid_request" {
			t.Errorf("%v: %d %s, want 400 invalid_request", form, r.Status, r.Error)
		}
	}
	// Client authentication still comes first.
	if r := env.post("/oauth2/token", url.Values{"grant_type": {"refresh_token"}}, basicAuth(confClientID, "wrong")); r.Status != 401 || r.Error != "invalid_client" {
		t.Errorf("missing refresh_token with a wrong secret: %d %s, want 401 invalid_client", r.Status, r.Error)
	}
}

// TestAuthorize_ConfidentialClientRedirectExact: fosite accepts a registered loopback
// redirect_uri with any port (RFC 8252 §7.3, native apps); a confidential client gets exact
// matching (RFC 9700 §4.1.3, decision S26), refused with an error page, never a redirect.
func TestAuthorize_ConfidentialClientRedirectExact(t *testing.T) {
	env := newTestServer(t, withConfidentialWebClient)
	verifier := oauth2.GenerateVerifier()
	otherPort := strings.Replace(webRedirect, ":1/", ":2/", 1)
	query := func(clientID string) string {
		return url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {otherPort}, "scope": {"read"},
			"state": {randomString(t)}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}.Encode()
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(clientID string) (*http.Response, string) {
		resp, err := noRedirect.Get(env.URL + "/oauth2/authorize?" + query(clientID))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get(confClientID)
	if resp.StatusCode != 400 || resp.Header.Get("Location") != "" || !strings.Contains(body, "registered redirect URIs") {
		t.Errorf("confidential client, other loopback port: %d Location %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	// Also when fosite finds something else wrong first (a scope the client may not have): the
	// error is shown, not sent to the unregistered port.
	badScope, _ := url.ParseQuery(query(confClientID))
	badScope.Set("scope", "admin")
	if resp, err := noRedirect.Get(env.URL + "/oauth2/authorize?" + badScope.Encode()); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
		t.Errorf("confidential client, other loopback port, bad scope: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := get(webClientID); resp.StatusCode != 200 || !strings.Contains(body, `name="password"`) {
		t.Errorf("public client, other loopback port: %d, want the login page (RFC 8252 §7.3)", resp.StatusCode)
	}
	// A pushed request is held to the same rule (RFC 9126 §2.1).
	form, _ := url.ParseQuery(query(confClientID))
	form.Del("client_id")
	if r := env.post("/oauth2/par", form, basicAuth(confClientID, confSecret)); r.Status != 400 || r.Error != "invalid_request" {
		t.Errorf("PAR, confidential client, other loopback port: %d %s, want 400 invalid_request", r.Status, r.Error)
	}
}

// TestAuthorize_ConsentRechecksPKCE: the consent POST re-validates the authorization request,
// PKCE shape included, as the page that showed it did.
func TestAuthorize_ConsentRechecksPKCE(t *testing.T) {
	env := newTestServer(t, withConfidentialWebClient)
	oc := confOAuthConfig(env)
	state := randomString(t)
	good := oc.AuthCodeURL(state, oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	bad := oc.AuthCodeURL(state, oauth2.SetAuthURLParam("code_challenge", "abc"), oauth2.SetAuthURLParam("code_challenge_method", "S256"))
	loc := browserLoginConsentAt(t, env, good, bad)
	if loc.Query().Get("code") != "" || loc.Query().Get("error") != "invalid_request" {
		t.Fatalf("consent posted with a 3-character code_challenge: redirect %v, want error=invalid_request and no code", loc)
	}
}

// TestTokenResponse_NoEmptyScope: RFC 6749 §3.3 — a token issued without scope has no scope
// member in the response and no scope claim (RFC 9068 §2.2.3).
func TestTokenResponse_NoEmptyScope(t *testing.T) {
	env := newTestServer(t, nil)
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(secretClientID, secretValue)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	if _, ok := body["scope"]; ok {
		t.Errorf("response has scope %q for a token without scope", body["scope"])
	}
	at, _ := body["access_token"].(string)
	if _, ok := jwtClaims(t, at)["scope"]; ok {
		t.Errorf("access token has a scope claim without scope")
	}
}

// TestMetadata_IssuerWithPath: RFC 8414 §3.1 — the metadata of an issuer with a path is served
// at the path-inserted well-known location (and at the root one), naming that issuer.
func TestMetadata_IssuerWithPath(t *testing.T) {
	var issuer string
	env := newTestServer(t, func(c *config.Config) {
		c.Issuer += "/tenant"
		issuer = c.Issuer
	})
	for _, path := range []string{"/.well-known/oauth-authorization-server/tenant", "/.well-known/oauth-authorization-server"} {
		resp, err := http.Get(env.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Issuer        string `json:"issuer"`
			TokenEndpoint string `json:"token_endpoint"`
		}
		err = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || doc.Issuer != issuer || doc.TokenEndpoint != issuer+"/oauth2/token" {
			t.Errorf("GET %s: %d %+v %v", path, resp.StatusCode, doc, err)
		}
	}
}

// TestAuthorize_UnsupportedOrMalformedParameters: a request object (RFC 9101, not supported)
// is refused with request_not_supported instead of being ignored (authorize) or stored unread
// (PAR); a dpop_jkt that is not a thumbprint is invalid_request (RFC 9449 §10).
func TestAuthorize_UnsupportedOrMalformedParameters(t *testing.T) {
	env := newTestServer(t, withConfidentialWebClient)
	verifier := oauth2.GenerateVerifier()
	params := func(extra ...string) url.Values {
		q := url.Values{"response_type": {"code"}, "client_id": {webClientID}, "redirect_uri": {webRedirect}, "scope": {"read"},
			"state": {randomString(t)}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
		for i := 0; i+1 < len(extra); i += 2 {
			q.Set(extra[i], extra[i+1])
		}
		return q
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		name      string
		q         url.Values
		wantError string
	}{
		{"request_object", params("request", "eyJhbGciOiJub25lIn0.eyJ4IjoxfQ."), "request_not_supported"},
		{"dpop_jkt_not_a_thumbprint", params("dpop_jkt", "not-a-thumbprint x"), "invalid_request"},
		{"dpop_jkt_empty", params("dpop_jkt", ""), "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := noRedirect.Get(env.URL + "/oauth2/authorize?" + tc.q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode/100 != 3 || loc.Query().Get("error") != tc.wantError || loc.Query().Get("state") != tc.q.Get("state") {
				t.Errorf("authorize: %d Location %v, want a redirect with error=%s and the state", resp.StatusCode, loc, tc.wantError)
			}
			form := tc.q
			form.Set("client_id", confClientID)
			if r := env.post("/oauth2/par", form, basicAuth(confClientID, confSecret)); r.Status != 400 || r.Error != tc.wantError {
				t.Errorf("PAR: %d %q, want 400 %s", r.Status, r.Error, tc.wantError)
			}
		})
	}
}

// TestAuthorize_StateRequired: state is required with at least 8 characters (fosite's rule,
// kept: decision S27), refused with the registered invalid_request (RFC 6749 §4.1.2.1), not
// fosite's own invalid_state.
func TestAuthorize_StateRequired(t *testing.T) {
	env := newTestServer(t, nil)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier := oauth2.GenerateVerifier()
	for _, state := range []string{"", "short"} {
		q := url.Values{"response_type": {"code"}, "client_id": {webClientID}, "redirect_uri": {webRedirect}, "scope": {"read"},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
		if state != "" {
			q.Set("state", state)
		}
		resp, err := noRedirect.Get(env.URL + "/oauth2/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc.Query().Get("error") != "invalid_request" || !strings.Contains(loc.Query().Get("error_description"), "state") {
			t.Errorf("state %q: %d Location %v, want error=invalid_request about state", state, resp.StatusCode, loc)
		}
	}
}

// TestAuthorize_UnsafeStoredRedirectURI: a redirect URI stored before config.ValidateRedirectURI
// existed (javascript:, cleartext http) is refused at the authorization endpoint with an error
// page: neither a code nor an error (with the state) is ever sent there, whatever else is wrong
// with the request.
func TestAuthorize_UnsafeStoredRedirectURI(t *testing.T) {
	env := newTestServer(t, nil)
	type variant struct {
		name string
		mut  func(url.Values)
	}
	variants := []variant{
		{"valid_request", func(url.Values) {}},
		{"short_state", func(q url.Values) { q.Set("state", "x") }},
		{"unknown_scope", func(q url.Values) { q.Set("scope", "admin") }},
		{"bad_code_challenge", func(q url.Values) { q.Set("code_challenge", "abc") }},
	}
	for _, uri := range []string{"javascript:alert(document.domain)//", "http://evil.example/cb"} {
		id := "legacy-" + randomString(t)[:8]
		if err := env.Store.UpsertClient(t.Context(), &storage.Client{ID: id, TokenEndpointAuthMethod: "none", Public: true,
			GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, Scopes: []string{"read"}, RedirectURIs: []string{uri}, Source: "cli"}); err != nil {
			t.Fatal(err)
		}
		verifier := oauth2.GenerateVerifier()
		for _, v := range variants {
			q := url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {uri}, "scope": {"read"}, "state": {randomString(t)},
				"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
			v.mut(q)
			noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := noRedirect.Get(env.URL + "/oauth2/authorize?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
				t.Errorf("%s, %s: %d Location %q, want a 400 page", uri, v.name, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
	}
}
