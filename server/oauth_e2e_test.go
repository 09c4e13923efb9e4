package server_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/authz/authz/config"
)

const cryptoSHA256 = crypto.SHA256

func athOf(token string) string {
	h := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func retrieveErr(t *testing.T, err error) *oauth2.RetrieveError {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("want *oauth2.RetrieveError, got %v", err)
	}
	return re
}

func TestClientCredentials_ClientSecret(t *testing.T) {
	env := newTestServer(t, func(c *config.Config) {
		c.Clients = append(c.Clients, config.Client{ClientID: "poster", TokenEndpointAuthMethod: config.AuthMethodClientSecretPost,
			GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}, ClientSecret: "poster-secret-0123456789"})
	})
	ctx := context.Background()
	tests := []struct {
		name       string
		cfg        clientcredentials.Config
		wantStatus int
		wantError  string
	}{
		{"basic_ok", clientcredentials.Config{ClientID: secretClientID, ClientSecret: secretValue, Scopes: []string{"read"}, AuthStyle: oauth2.AuthStyleInHeader}, 200, ""},
		{"post_ok", clientcredentials.Config{ClientID: "poster", ClientSecret: "poster-secret-0123456789", AuthStyle: oauth2.AuthStyleInParams}, 200, ""},
		{"wrong_secret", clientcredentials.Config{ClientID: secretClientID, ClientSecret: "wrong-secret-0123456789", AuthStyle: oauth2.AuthStyleInHeader}, 401, "invalid_client"},
		{"unknown_client", clientcredentials.Config{ClientID: "nobody", ClientSecret: "whatever-0123456789", AuthStyle: oauth2.AuthStyleInHeader}, 401, "invalid_client"},
		{"post_for_basic_client", clientcredentials.Config{ClientID: secretClientID, ClientSecret: secretValue, AuthStyle: oauth2.AuthStyleInParams}, 401, "invalid_client"},
		{"scope_not_allowed", clientcredentials.Config{ClientID: secretClientID, ClientSecret: secretValue, Scopes: []string{"write"}, AuthStyle: oauth2.AuthStyleInHeader}, 400, "invalid_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.TokenURL = env.URL + "/oauth2/token"
			tok, err := tt.cfg.Token(ctx)
			if tt.wantError == "" {
				if err != nil {
					t.Fatalf("Token: %v", err)
				}
				claims := jwtClaims(t, tok.AccessToken)
				if claims["client_id"] != tt.cfg.ClientID || claims["iss"] != env.URL || claims["jti"] == "" {
					t.Fatalf("claims = %v", claims)
				}
				if _, ok := claims["client_attestation"]; ok {
					t.Fatalf("a secret client's token carries attestation evidence: %v", claims)
				}
				return
			}
			re := retrieveErr(t, err)
			if re.Response.StatusCode != tt.wantStatus || re.ErrorCode != tt.wantError {
				t.Fatalf("got %d %q, want %d %q", re.Response.StatusCode, re.ErrorCode, tt.wantStatus, tt.wantError)
			}
			if re.Response.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("Cache-Control = %q", re.Response.Header.Get("Cache-Control"))
			}
		})
	}
	// An unknown grant type is unsupported_grant_type (RFC 6749 §5.2).
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/oauth2/token", strings.NewReader("grant_type=password&username=a&password=b"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(secretClientID, secretValue)
	if r := env.do(req); r.Status != 400 || r.Error != "unsupported_grant_type" {
		t.Fatalf("password grant: %d %q, want 400 unsupported_grant_type", r.Status, r.Error)
	}
	// A secret client without attestation leaves no audit record (profile §7).
	if got := env.decisions(); len(got) != 0 {
		t.Fatalf("decisions = %+v, want none", got)
	}
}

func TestClientCredentials_PrivateKeyJWT(t *testing.T) {
	clientKey := newECKey(t)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: clientKey.Public(), KeyID: "c1", Algorithm: "ES256", Use: "sig"}}})
	env := newTestServer(t, func(c *config.Config) {
		c.Clients = append(c.Clients, config.Client{ClientID: "pkjwt", TokenEndpointAuthMethod: config.AuthMethodPrivateKeyJWT,
			TokenEndpointAuthSigningAlg: "ES256", GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}, JWKS: string(jwks)})
	})
	assertion := func(jti string, exp time.Time) string {
		return sign(t, clientKey, jose.ES256, "JWT", map[jose.HeaderKey]any{"kid": "c1"}, map[string]any{
			"iss": "pkjwt", "sub": "pkjwt", "aud": env.URL + "/oauth2/token", "jti": jti, "iat": time.Now().Unix(), "exp": exp.Unix(),
		})
	}
	form := func(a string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
	}
	first := assertion("jti-1", time.Now().Add(time.Minute))
	if r := env.post("/oauth2/token", form(first), nil); r.Status != 200 || r.AccessToken == "" {
		t.Fatalf("first use: %d %s %s", r.Status, r.Error, r.Description)
	}
	if r := env.post("/oauth2/token", form(first), nil); r.Status != 401 || r.Error != "invalid_client" {
		t.Fatalf("replayed assertion: %d %s, want 401 invalid_client", r.Status, r.Error)
	}
	if r := env.post("/oauth2/token", form(assertion("jti-2", time.Now().Add(-time.Minute))), nil); r.Status != 401 || r.Error != "invalid_client" {
		t.Fatalf("expired assertion: %d %s, want 401 invalid_client", r.Status, r.Error)
	}
	// An exp unreasonably far away is refused (RFC 7523 §3 item 4; its jti would be kept until
	// then), an hour is accepted (decision S23).
	if r := env.post("/oauth2/token", form(assertion("jti-far", time.Now().Add(365*24*time.Hour))), nil); r.Status != 401 || r.Error != "invalid_client" {
		t.Fatalf("assertion expiring in a year: %d %s, want 401 invalid_client", r.Status, r.Error)
	}
	if r := env.post("/oauth2/token", form(assertion("jti-hour", time.Now().Add(59*time.Minute))), nil); r.Status != 200 {
		t.Fatalf("assertion expiring in 59 minutes: %d %s %s", r.Status, r.Error, r.Description)
	}
	other := newECKey(t)
	forged := sign(t, other, jose.ES256, "JWT", map[jose.HeaderKey]any{"kid": "c1"}, map[string]any{
		"iss": "pkjwt", "sub": "pkjwt", "aud": env.URL + "/oauth2/token", "jti": "jti-3", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(),
	})
	if r := env.post("/oauth2/token", form(forged), nil); r.Status != 401 || r.Error != "invalid_client" {
		t.Fatalf("wrong key: %d %s, want 401 invalid_client", r.Status, r.Error)
	}
	// A key the client never registered (unknown kid) is an invalid assertion too (RFC 7523
	// §3.2: invalid_client), and a 401 for private_key_jwt does not ask for Basic.
	unknownKid := sign(t, clientKey, jose.ES256, "JWT", map[jose.HeaderKey]any{"kid": "c9"}, map[string]any{
		"iss": "pkjwt", "sub": "pkjwt", "aud": env.URL + "/oauth2/token", "jti": "jti-kid", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(),
	})
	if r := env.post("/oauth2/token", form(unknownKid), nil); r.Status != 401 || r.Error != "invalid_client" || strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("unknown kid: %d %s (WWW-Authenticate %q), want 401 invalid_client without Basic", r.Status, r.Error, r.Header.Get("WWW-Authenticate"))
	}
	// A wrong client_assertion_type stays a malformed request.
	wrongType := form(assertion("jti-type", time.Now().Add(time.Minute)))
	wrongType.Set("client_assertion_type", "urn:example:other")
	if r := env.post("/oauth2/token", wrongType, nil); r.Status != 400 || r.Error != "invalid_request" {
		t.Fatalf("unknown client_assertion_type: %d %s, want 400 invalid_request", r.Status, r.Error)
	}

	// The jti is recorded with the grant: of concurrent uses of one assertion exactly one gets
	// a token (RFC 7523 §3 item 7).
	shared := assertion("jti-race", time.Now().Add(time.Minute))
	const racers = 12
	won := env.raceTokens(racers, form(shared), nil)
	if won != 1 {
		t.Fatalf("%d of %d concurrent uses of one assertion got a token, want exactly 1", won, racers)
	}

	// An assertion spent on a request that failed after client authentication (a scope the
	// client may not have) is consumed all the same: it cannot be replayed with other parameters.
	spent := assertion("jti-spent", time.Now().Add(time.Minute))
	bad := form(spent)
	bad.Set("scope", "admin")
	if r := env.post("/oauth2/token", bad, nil); r.Status != 400 || r.Error != "invalid_scope" {
		t.Fatalf("forbidden scope: %d %s, want 400 invalid_scope", r.Status, r.Error)
	}
	if r := env.post("/oauth2/token", form(spent), nil); r.Status != 401 || r.Error != "invalid_client" {
		t.Fatalf("assertion reused after a failed request: %d %s, want 401 invalid_client", r.Status, r.Error)
	}
}

// browserLogin drives the real login and consent forms and returns the redirect to the client.
func browserLogin(t *testing.T, env *testEnv, authorizeURL string) *url.URL {
	t.Helper()
	return browserLoginConsentAt(t, env, authorizeURL, authorizeURL)
}

// browserLoginConsentAt is browserLogin with the consent form posted to consentURL (a changed
// query) instead of the authorization URL the pages were shown for.
func browserLoginConsentAt(t *testing.T, env *testEnv, authorizeURL, consentURL string) *url.URL {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	csrfRE := regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	get := func(resp *http.Response, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", resp.Request.URL, resp.StatusCode, b)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Fatalf("page may be framed: X-Frame-Options %q", resp.Header.Get("X-Frame-Options"))
		}
		return string(b)
	}
	login := get(browser.Get(authorizeURL))
	m := csrfRE.FindStringSubmatch(login)
	if m == nil || !strings.Contains(login, `name="password"`) {
		t.Fatalf("login page without csrf/password field:\n%s", login)
	}
	// A forged form (no CSRF token) is refused.
	resp, err := browser.PostForm(authorizeURL, url.Values{"username": {"alice"}, "password": {"alice-password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login without csrf: %d, want 403", resp.StatusCode)
	}
	// Wrong password: the login page again, 401.
	resp, err = browser.PostForm(authorizeURL, url.Values{"username": {"alice"}, "password": {"nope"}, "csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d, want 401", resp.StatusCode)
	}
	consent := get(browser.PostForm(authorizeURL, url.Values{"username": {"alice"}, "password": {"alice-password"}, "csrf": {m[1]}}))
	env.lastConsent = consent
	if !strings.Contains(consent, `value="allow"`) {
		t.Fatalf("consent page without allow button:\n%s", consent)
	}
	m = csrfRE.FindStringSubmatch(consent)
	if m == nil {
		t.Fatalf("consent page without csrf")
	}
	resp, err = browser.PostForm(consentURL, url.Values{"consent": {"allow"}, "csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		t.Fatalf("consent: %d, want a redirect", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestAuthorizationCode_PKCE_PublicClient(t *testing.T) {
	env := newTestServer(t, nil)
	oc := &oauth2.Config{ClientID: webClientID, RedirectURL: webRedirect, Scopes: []string{"read"},
		Endpoint: oauth2.Endpoint{AuthURL: env.URL + "/oauth2/authorize", TokenURL: env.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	state := randomString(t)

	// Without PKCE a public client is refused (RFC 7636, fosite EnforcePKCEForPublicClients).
	loc := func() *url.URL {
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(oc.AuthCodeURL(state))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		u, _ := url.Parse(resp.Header.Get("Location"))
		return u
	}()
	if loc.Query().Get("error") != "invalid_request" {
		t.Fatalf("authorize without PKCE: redirect %v, want error=invalid_request", loc)
	}

	cb := browserLogin(t, env, oc.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
	if cb.Query().Get("state") != state || cb.Query().Get("code") == "" {
		t.Fatalf("callback = %v", cb)
	}
	ctx := context.Background()
	if _, err := oc.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption("wrong-verifier-wrong-verifier-wrong-verifier-123")); err == nil {
		t.Fatal("exchange with a wrong PKCE verifier succeeded")
	}
	// The failed attempt consumed nothing; fosite invalidates the code on misuse, so start again.
	cb = browserLogin(t, env, oc.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
	tok, err := oc.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	claims := jwtClaims(t, tok.AccessToken)
	if claims["sub"] != "alice" || claims["client_id"] != webClientID || claims["scope"] != "read" {
		t.Fatalf("claims = %v", claims)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	// Refresh rotates: the new refresh token works, the old one is refused.
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {webClientID}}
	r1 := env.post("/oauth2/token", form, nil)
	if r1.Status != 200 || r1.RefreshToken == "" || r1.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %d %s %s", r1.Status, r1.Error, r1.Description)
	}
	if r := env.post("/oauth2/token", form, nil); r.Status != 400 || r.Error != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %s, want 400 invalid_grant", r.Status, r.Error)
	}
}

func TestIntrospectionAndRevocation(t *testing.T) {
	env := newTestServer(t, nil)
	ctx := context.Background()
	cc := clientcredentials.Config{ClientID: secretClientID, ClientSecret: secretValue, TokenURL: env.URL + "/oauth2/token", Scopes: []string{"read"}}
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	introspect := func() map[string]any { return introspectAs(t, env, secretClientID, secretValue, tok.AccessToken) }
	got := introspect()
	if got["active"] != true || got["client_id"] != secretClientID || got["scope"] != "read" || got["token_type"] != "Bearer" {
		t.Fatalf("introspection = %v", got)
	}
	if got["jti"] != jwtClaims(t, tok.AccessToken)["jti"] {
		t.Fatalf("introspection jti %v != token jti %v", got["jti"], jwtClaims(t, tok.AccessToken)["jti"])
	}
	// Unauthenticated introspection is refused.
	if r := env.post("/oauth2/introspect", url.Values{"token": {tok.AccessToken}}, nil); r.Status != 401 {
		t.Fatalf("unauthenticated introspection: %d", r.Status)
	}
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/oauth2/revoke", strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(secretClientID, secretValue)
	if r := env.do(req); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Error)
	}
	if got := introspect(); got["active"] != false {
		t.Fatalf("after revocation: %v", got)
	}
}

func TestMetadataAndJWKS(t *testing.T) {
	env := newTestServer(t, nil)
	resp, err := http.Get(env.URL + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	if md["issuer"] != env.URL || md["token_endpoint"] != env.URL+"/oauth2/token" || md["challenge_endpoint"] != env.URL+"/oauth2/challenge" {
		t.Fatalf("metadata = %v", md)
	}
	methods, _ := md["token_endpoint_auth_methods_supported"].([]any)
	for _, want := range []string{"attest_jwt_client_auth", "attest_jwt_client_auth_dpop", "client_secret_basic", "private_key_jwt", "none"} {
		found := false
		for _, m := range methods {
			found = found || m == want
		}
		if !found {
			t.Errorf("token_endpoint_auth_methods_supported lacks %s: %v", want, methods)
		}
	}
	for _, member := range []string{"client_attestation_signing_alg_values_supported", "client_attestation_pop_signing_alg_values_supported", "dpop_signing_alg_values_supported"} {
		algs, _ := md[member].([]any)
		if len(algs) == 0 {
			t.Errorf("%s missing", member)
		}
		for _, a := range algs {
			if a == "none" || (member != "client_attestation_signing_alg_values_supported" && strings.HasPrefix(a.(string), "HS")) {
				t.Errorf("%s lists %v", member, a)
			}
		}
	}

	// Tokens verify with the published key.
	cc := clientcredentials.Config{ClientID: secretClientID, ClientSecret: secretValue, TokenURL: env.URL + "/oauth2/token"}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	jresp, err := http.Get(env.URL + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer jresp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(jresp.Body).Decode(&set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks: %v %v", set, err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Fatal("jwks publishes a private key")
		}
	}
	jws, err := jose.ParseSignedCompact(tok.AccessToken, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if typ := jws.Signatures[0].Header.ExtraHeaders["typ"]; typ != "at+jwt" {
		t.Fatalf("typ = %v, want at+jwt (RFC 9068 §2.1)", typ)
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in jwks", jws.Signatures[0].Header.KeyID)
	}
	if _, err := jws.Verify(keys[0].Key); err != nil {
		t.Fatalf("access token does not verify with /jwks.json: %v", err)
	}
}

func TestOperationalEndpoints(t *testing.T) {
	env := newTestServer(t, nil)
	// One attested token, so the group writer's counters have moved.
	if r := env.post("/oauth2/token", ccForm, env.attestedHeaders(agentID, env.Instance, "")); r.Status != 200 {
		t.Fatalf("token: %d %s", r.Status, r.Error)
	}
	for _, tc := range []struct {
		path string
		want int
		body string
	}{
		{"/healthz", 200, `"ok"`},
		{"/readyz", 200, `"database":"ok"`},
		{"/metrics", 200, "authz_http_requests_total"},
		{"/metrics", 200, "\nauthz_grants_total 1\n"},
		{"/metrics", 200, "\nauthz_grant_transactions_total 1\n"},
		{"/nope", 404, "not_found"},
	} {
		resp, err := http.Get(env.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want || !strings.Contains(string(b), tc.body) {
			t.Errorf("%s: %d %s", tc.path, resp.StatusCode, b)
		}
	}

	// Made-up methods share one label value: a client cannot add series at will.
	for _, method := range []string{"MADEUP1", "MADEUP2"} {
		req, _ := http.NewRequest(method, env.URL+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s /healthz: %d, want 405", method, resp.StatusCode)
		}
	}
	resp, err := http.Get(env.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), "MADEUP") {
		t.Errorf("/metrics has a series per made-up method")
	}
	if want := `authz_http_requests_total{method="other",route="/healthz",status="405"} 2`; !strings.Contains(string(b), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

func TestAuthorizationCode_ConcurrentRedemption(t *testing.T) {
	env := newTestServer(t, nil)
	verifier := oauth2.GenerateVerifier()
	oc := &oauth2.Config{ClientID: webClientID, RedirectURL: webRedirect, Scopes: []string{"read"},
		Endpoint: oauth2.Endpoint{AuthURL: env.URL + "/oauth2/authorize", TokenURL: env.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	cb := browserLogin(t, env, oc.AuthCodeURL(randomString(t), oauth2.S256ChallengeOption(verifier)))
	form := url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")}, "redirect_uri": {webRedirect},
		"client_id": {webClientID}, "code_verifier": {verifier}}
	statuses := make(chan int, 10)
	for i := 0; i < 10; i++ {
		go func() {
			resp, err := http.PostForm(env.URL+"/oauth2/token", form)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	ok := 0
	for i := 0; i < 10; i++ {
		switch s := <-statuses; s {
		case 200:
			ok++
		case 400:
		default:
			t.Errorf("status %d: a lost race must be a client error, never a server error", s)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of 10 concurrent redemptions of one code succeeded, want exactly 1", ok)
	}
}

// A client whose policy requires attestation cannot step around it by naming another client
// in client_id while authenticating with its own credentials, nor by leaving client_id out of
// a private_key_jwt request (decision S21).
func TestClientAuth_PolicyFollowsAuthenticatedClient(t *testing.T) {
	clientKey := newECKey(t)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: clientKey.Public(), KeyID: "c1", Algorithm: "ES256", Use: "sig"}}})
	env := newTestServer(t, func(c *config.Config) {
		c.Clients[1].RequireAttestation = true // svc: client_secret_basic + required attestation
		c.Clients = append(c.Clients, config.Client{ClientID: "pkjwt", TokenEndpointAuthMethod: config.AuthMethodPrivateKeyJWT,
			TokenEndpointAuthSigningAlg: "ES256", GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}, JWKS: string(jwks),
			RequireAttestation: true},
			config.Client{ClientID: "plain-secret", TokenEndpointAuthMethod: "client_secret_basic", ClientSecret: "plain-secret-value-0123456789",
				GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}})
	})
	basic := func(clientID string) tokenResponse {
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}
		if clientID != "" {
			form.Set("client_id", clientID)
		}
		req, _ := http.NewRequest(http.MethodPost, env.URL+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(secretClientID, secretValue)
		return env.do(req)
	}
	for _, named := range []string{"plain-secret", "no-such-client"} {
		if r := basic(named); r.Status != 400 || r.Error != "invalid_request" || r.AccessToken != "" {
			t.Fatalf("Basic %s with client_id=%s: %d %q, want 400 invalid_request", secretClientID, named, r.Status, r.Error)
		}
	}
	if r := basic(secretClientID); r.Status != 400 || r.Error != "invalid_client_attestation" {
		t.Fatalf("Basic with its own client_id: %d %q, want 400 invalid_client_attestation", r.Status, r.Error)
	}
	// The other client's own credentials still work with and without client_id.
	for _, withID := range []bool{false, true} {
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}
		if withID {
			form.Set("client_id", "plain-secret")
		}
		req, _ := http.NewRequest(http.MethodPost, env.URL+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("plain-secret", "plain-secret-value-0123456789")
		if r := env.do(req); r.Status != 200 {
			t.Fatalf("plain-secret (client_id sent: %v): %d %q %s", withID, r.Status, r.Error, r.Description)
		}
	}

	assertion := sign(t, clientKey, jose.ES256, "JWT", map[jose.HeaderKey]any{"kid": "c1"}, map[string]any{
		"iss": "pkjwt", "sub": "pkjwt", "aud": env.URL + "/oauth2/token", "jti": "jti-policy", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(),
	})
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
	if r := env.post("/oauth2/token", form, nil); r.Status != 400 || r.Error != "invalid_client_attestation" || r.AccessToken != "" {
		t.Fatalf("private_key_jwt without client_id for a client that requires attestation: %d %q, want 400 invalid_client_attestation", r.Status, r.Error)
	}
	// Both refusals of required attestation are on record (profile §7); the client_id
	// mismatches are not attestation decisions.
	ds := env.decisions()
	if len(ds) != 2 {
		t.Fatalf("decisions = %+v, want 2", ds)
	}
	for _, d := range ds {
		if d.Decision != "rejected" || d.Reason != "attestation_required" || (d.ClientID != "pkjwt" && d.ClientID != secretClientID) {
			t.Fatalf("decision %+v, want rejected attestation_required for pkjwt or %s", d, secretClientID)
		}
	}
}
