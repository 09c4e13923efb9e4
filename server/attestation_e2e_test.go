package server_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/config"
	"github.com/authz/authz/server"
	"github.com/authz/authz/storage"
)

var ccForm = url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}

func withClientID(id string) url.Values {
	f := url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}, "client_id": {id}}
	return f
}

func TestAttestation_ClientCredentials_Accepted(t *testing.T) {
	env := newTestServer(t, nil)
	for _, tc := range []struct {
		name string
		form url.Values
	}{
		{"with_client_id", withClientID(agentID)},
		{"without_client_id", ccForm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := env.post("/oauth2/token", tc.form, env.attestedHeaders(agentID, env.Instance, ""))
			if r.Status != 200 || r.TokenType != "bearer" && r.TokenType != "Bearer" {
				t.Fatalf("got %d %s %s (token_type %q)", r.Status, r.Error, r.Description, r.TokenType)
			}
			claims := jwtClaims(t, r.AccessToken)
			ev, _ := claims["client_attestation"].(map[string]any)
			if ev["attester"] != "test-attester" || ev["instance_jkt"] != thumbprint(t, env.Instance) || ev["pop_method"] != "attestation_pop_jwt" {
				t.Fatalf("client_attestation = %v", claims["client_attestation"])
			}
			if claims["client_id"] != agentID || claims["sub"] != agentID {
				t.Fatalf("claims = %v", claims)
			}
		})
	}
	ds := env.decisions()
	if len(ds) != 2 {
		t.Fatalf("want 2 decisions, got %+v", ds)
	}
	d := ds[0]
	if d.Decision != "accepted" || d.Reason != "ok" || d.Endpoint != "/oauth2/token" || d.ClientID != agentID ||
		d.VerifiedClientID != agentID || d.Attester != "test-attester" || d.Resolution != "kid" ||
		d.InstanceJKT != thumbprint(t, env.Instance) || d.PoPMethod != "attestation_pop_jwt" || d.PoPAud != env.URL ||
		d.Challenge != "none" || d.TokenRequestID == "" {
		t.Fatalf("decision = %+v", d)
	}
}

func TestAttestation_Rejections(t *testing.T) {
	env := newTestServer(t, nil)
	other := newECKey(t)
	stranger := newECKey(t)
	strangerAttestation := sign(t, stranger, jose.ES256, "oauth-client-attestation+jwt", map[jose.HeaderKey]any{"kid": "unknown-kid"}, map[string]any{
		"sub": agentID, "exp": time.Now().Add(time.Hour).Unix(), "cnf": map[string]any{"jwk": jose.JSONWebKey{Key: env.Instance.Public()}},
	})
	tests := []struct {
		name       string
		form       url.Values
		headers    func() map[string]string
		basic      bool
		wantStatus int
		wantError  string
	}{
		{"missing_pop", ccForm, func() map[string]string {
			return map[string]string{"OAuth-Client-Attestation": env.attestation(agentID, env.Instance)}
		}, false, 401, "invalid_client"},
		{"pop_signed_by_other_key", ccForm, func() map[string]string {
			return map[string]string{"OAuth-Client-Attestation": env.attestation(agentID, env.Instance), "OAuth-Client-Attestation-PoP": env.pop(other, "")}
		}, false, 401, "invalid_client"},
		{"client_id_mismatch", withClientID(secretClientID), func() map[string]string { return env.attestedHeaders(agentID, env.Instance, "") }, false, 401, "invalid_client"},
		{"unknown_attester_key", ccForm, func() map[string]string {
			return map[string]string{"OAuth-Client-Attestation": strangerAttestation, "OAuth-Client-Attestation-PoP": env.pop(env.Instance, "")}
		}, false, 401, "invalid_client"},
		{"unregistered_sub", ccForm, func() map[string]string { return env.attestedHeaders("ghost", env.Instance, "") }, false, 401, "invalid_client"},
		{"second_method_basic", withClientID(agentID), func() map[string]string { return env.attestedHeaders(agentID, env.Instance, "") }, true, 400, "invalid_request"},
		{"comma_joined_attestation", ccForm, func() map[string]string {
			a := env.attestation(agentID, env.Instance)
			return map[string]string{"OAuth-Client-Attestation": a + "," + a, "OAuth-Client-Attestation-PoP": env.pop(env.Instance, "")}
		}, false, 400, "invalid_request"},
		{"dpop_without_pop_for_pop_client", ccForm, func() map[string]string {
			return map[string]string{"OAuth-Client-Attestation": env.attestation(agentID, env.Instance), "DPoP": env.dpopProof(env.Instance, "POST", "/oauth2/token", "", "")}
		}, false, 401, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(env.decisions())
			req, _ := http.NewRequest(http.MethodPost, env.URL+"/oauth2/token", strings.NewReader(tt.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range tt.headers() {
				req.Header.Set(k, v)
			}
			if tt.basic {
				req.SetBasicAuth(agentID, "whatever")
			}
			r := env.do(req)
			if r.Status != tt.wantStatus || r.Error != tt.wantError {
				t.Fatalf("got %d %q (%s), want %d %q", r.Status, r.Error, r.Description, tt.wantStatus, tt.wantError)
			}
			if r.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("Cache-Control = %q", r.Header.Get("Cache-Control"))
			}
			if r.Status == 401 && r.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("WWW-Authenticate = %q", r.Header.Get("WWW-Authenticate"))
			}
			if strings.Contains(r.Description, "eyJ") {
				t.Fatalf("error_description echoes token contents: %q", r.Description)
			}
			ds := env.decisions()
			if len(ds) != before+1 {
				t.Fatalf("want exactly one new decision, have %d -> %d", before, len(ds))
			}
			if ds[0].Decision != "rejected" || ds[0].Reason == "" || ds[0].Reason == "ok" || ds[0].VerifiedClientID != "" || ds[0].TokenRequestID != "" {
				t.Fatalf("decision = %+v", ds[0])
			}
		})
	}
}

func TestAttestation_ChallengeRequired(t *testing.T) {
	env := newTestServer(t, func(c *config.Config) { c.Attestation.ChallengeRequired = true })

	// The challenge endpoint: POST only, no-store, body and header agree (ABCA-09 §6.1).
	resp, err := http.Post(env.URL+"/oauth2/challenge", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Challenge string `json:"attestation_challenge"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 200 || body.Challenge == "" || resp.Header.Get("OAuth-Client-Attestation-Challenge") != body.Challenge ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("challenge endpoint: %d %q header %q cache %q", resp.StatusCode, body.Challenge, resp.Header.Get("OAuth-Client-Attestation-Challenge"), resp.Header.Get("Cache-Control"))
	}
	if len(body.Challenge) < 16 || len(body.Challenge) > 512 {
		t.Fatalf("challenge length %d", len(body.Challenge))
	}
	if g, err := http.Get(env.URL + "/oauth2/challenge"); err != nil || g.StatusCode != 405 {
		t.Fatalf("GET challenge: %v %v", g.StatusCode, err)
	}

	// Without a challenge: use_attestation_challenge with a fresh one in the header.
	r := env.post("/oauth2/token", ccForm, env.attestedHeaders(agentID, env.Instance, ""))
	fresh := r.Header.Get("OAuth-Client-Attestation-Challenge")
	if r.Status != 400 || r.Error != "use_attestation_challenge" || fresh == "" {
		t.Fatalf("no challenge: %d %q header %q", r.Status, r.Error, fresh)
	}
	// A made-up challenge is refused the same way.
	if r := env.post("/oauth2/token", ccForm, env.attestedHeaders(agentID, env.Instance, "bm90LWEtcmVhbC1jaGFsbGVuZ2U")); r.Status != 400 || r.Error != "use_attestation_challenge" {
		t.Fatalf("bogus challenge: %d %q", r.Status, r.Error)
	}
	// Retry with the header's value succeeds, and the success carries the next challenge.
	r = env.post("/oauth2/token", ccForm, env.attestedHeaders(agentID, env.Instance, fresh))
	if r.Status != 200 || r.Header.Get("OAuth-Client-Attestation-Challenge") == "" {
		t.Fatalf("retry: %d %q %s", r.Status, r.Error, r.Description)
	}
	// The endpoint's challenge works too.
	if r := env.post("/oauth2/token", ccForm, env.attestedHeaders(agentID, env.Instance, body.Challenge)); r.Status != 200 {
		t.Fatalf("endpoint challenge: %d %q", r.Status, r.Error)
	}
	ds := env.decisions()
	if ds[0].Challenge != "valid" || ds[len(ds)-1].Challenge != "missing" {
		t.Fatalf("challenge status in decisions: newest %q oldest %q", ds[0].Challenge, ds[len(ds)-1].Challenge)
	}
}

func TestAttestation_Replay(t *testing.T) {
	env := newTestServer(t, nil)
	headers := env.attestedHeaders(agentID, env.Instance, "")
	if r := env.post("/oauth2/token", ccForm, headers); r.Status != 200 {
		t.Fatalf("first: %d %s", r.Status, r.Error)
	}
	r := env.post("/oauth2/token", ccForm, headers)
	if r.Status != 401 || r.Error != "invalid_client" {
		t.Fatalf("replay: %d %q, want 401 invalid_client", r.Status, r.Error)
	}
	if d := env.decisions()[0]; d.Decision != "rejected" || !strings.Contains(d.Reason, "replay") {
		t.Fatalf("replay decision = %+v", d)
	}

	// 20 concurrent requests with one PoP: exactly one token.
	headers = env.attestedHeaders(agentID, env.Instance, "")
	ok := env.raceTokens(20, ccForm, headers)
	if ok != 1 {
		t.Fatalf("%d concurrent requests with one PoP succeeded, want exactly 1", ok)
	}
	accepted := 0
	for _, d := range env.decisions() {
		if d.Decision == "accepted" {
			accepted++
		}
	}
	if accepted != 2 {
		t.Fatalf("accepted decisions = %d, want 2", accepted)
	}
}

func TestAttestation_AdditionalSignal(t *testing.T) {
	env := newTestServer(t, func(c *config.Config) {
		c.Clients[1].RequireAttestation = true // svc: client_secret_basic + required attestation signal
	})
	basic := func(h map[string]string) tokenResponse {
		req, _ := http.NewRequest(http.MethodPost, env.URL+"/oauth2/token", strings.NewReader(ccForm.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(secretClientID, secretValue)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		return env.do(req)
	}
	if r := basic(nil); r.Status != 400 || r.Error != "invalid_client_attestation" {
		t.Fatalf("signal missing: %d %q, want 400 invalid_client_attestation", r.Status, r.Error)
	}
	if r := basic(env.attestedHeaders(agentID, env.Instance, "")); r.Status != 400 || r.Error != "invalid_client_attestation" {
		t.Fatalf("signal for another client: %d %q, want 400 invalid_client_attestation", r.Status, r.Error)
	}
	r := basic(env.attestedHeaders(secretClientID, env.Instance, ""))
	if r.Status != 200 {
		t.Fatalf("signal ok: %d %q %s", r.Status, r.Error, r.Description)
	}
	ev, _ := jwtClaims(t, r.AccessToken)["client_attestation"].(map[string]any)
	if ev["instance_jkt"] != thumbprint(t, env.Instance) {
		t.Fatalf("evidence = %v", ev)
	}
	ds := env.decisions()
	if len(ds) != 3 || ds[0].Decision != "accepted" || ds[1].Decision != "rejected" || ds[2].Decision != "rejected" {
		t.Fatalf("decisions = %+v", ds)
	}
}

func TestAttestation_PAR_CodeFlow_RefreshBinding(t *testing.T) {
	env := newTestServer(t, func(c *config.Config) {
		c.Clients = append(c.Clients, config.Client{ClientID: "agent-web", TokenEndpointAuthMethod: config.AuthMethodAttestJWT,
			GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"read"}, RedirectURIs: []string{webRedirect}})
	})
	form := url.Values{"client_id": {"agent-web"}, "response_type": {"code"}, "redirect_uri": {webRedirect}, "scope": {"read"}, "state": {randomString(t)}}
	par := pushAttested(t, env, form)
	// PAR without attestation is refused for an attested client.
	if r := env.post("/oauth2/par", form, nil); r.Status != 401 || r.Error != "invalid_client" {
		t.Fatalf("PAR without attestation: %d %q", r.Status, r.Error)
	}

	cb := browserLogin(t, env, env.URL+"/oauth2/authorize?"+url.Values{"client_id": {"agent-web"}, "request_uri": {par}}.Encode())
	code := cb.Query().Get("code")
	if code == "" {
		t.Fatalf("callback = %v", cb)
	}
	// The consent page names the attester that vouched for the instance that pushed the request.
	if !strings.Contains(env.lastConsent, "test-attester") || !strings.Contains(env.lastConsent, thumbprint(t, env.Instance)[len(thumbprint(t, env.Instance))-4:]) {
		t.Fatalf("consent page does not name the attester and key:\n%s", env.lastConsent)
	}
	// The code is bound to the pushing instance: another attested instance cannot redeem it.
	if r := env.post("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect}},
		env.attestedHeaders("agent-web", newECKey(t), "")); r.Status != 400 || r.Error != "invalid_grant" {
		t.Fatalf("code redeemed by another instance: %d %q", r.Status, r.Error)
	}
	// fosite invalidates a code on a failed redemption; run the flow again for the real exchange.
	par = pushAttested(t, env, form)
	cb = browserLogin(t, env, env.URL+"/oauth2/authorize?"+url.Values{"client_id": {"agent-web"}, "request_uri": {par}}.Encode())
	code = cb.Query().Get("code")
	tok := env.post("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect}},
		env.attestedHeaders("agent-web", env.Instance, ""))
	if tok.Status != 200 || tok.RefreshToken == "" {
		t.Fatalf("code exchange: %d %q %s", tok.Status, tok.Error, tok.Description)
	}
	if sub := jwtClaims(t, tok.AccessToken)["sub"]; sub != "alice" {
		t.Fatalf("sub = %v", sub)
	}

	refresh := func(rt string, instance *ecdsa.PrivateKey) tokenResponse {
		return env.post("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, env.attestedHeaders("agent-web", instance, ""))
	}
	// Another instance key (validly attested) cannot use this refresh token (ABCA-09 §9.3).
	if r := refresh(tok.RefreshToken, newECKey(t)); r.Status != 400 || r.Error != "invalid_grant" {
		t.Fatalf("refresh with another instance key: %d %q, want 400 invalid_grant", r.Status, r.Error)
	}
	// Without attestation, it is refused too.
	if r := env.post("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {"agent-web"}}, nil); r.Status != 401 {
		t.Fatalf("refresh without attestation: %d %q", r.Status, r.Error)
	}
	// The same instance key refreshes.
	r := refresh(tok.RefreshToken, env.Instance)
	if r.Status != 200 || r.RefreshToken == "" {
		t.Fatalf("refresh with the same key: %d %q %s", r.Status, r.Error, r.Description)
	}
	ev, _ := jwtClaims(t, r.AccessToken)["client_attestation"].(map[string]any)
	if ev["instance_jkt"] != thumbprint(t, env.Instance) {
		t.Fatalf("refreshed evidence = %v", ev)
	}
}

func TestAttestation_AttesterAddedAtRuntime(t *testing.T) {
	env := newTestServer(t, nil)
	newAttester := newECKey(t)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: newAttester.Public(), KeyID: "late-1", Algorithm: "ES256"}}})
	attestation := sign(t, newAttester, jose.ES256, "oauth-client-attestation+jwt", map[jose.HeaderKey]any{"kid": "late-1"}, map[string]any{
		"sub": "late-agent", "exp": time.Now().Add(time.Hour).Unix(), "cnf": map[string]any{"jwk": jose.JSONWebKey{Key: env.Instance.Public()}},
	})
	ctx := context.Background()
	if err := env.Store.UpsertClient(ctx, &storage.Client{ID: "late-agent", TokenEndpointAuthMethod: config.AuthMethodAttestJWT,
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}, Source: "cli"}); err != nil {
		t.Fatal(err)
	}
	try := func() tokenResponse {
		return env.post("/oauth2/token", ccForm, map[string]string{"OAuth-Client-Attestation": attestation, "OAuth-Client-Attestation-PoP": env.pop(env.Instance, "")})
	}
	if r := try(); r.Status != 401 {
		t.Fatalf("before the attester exists: %d", r.Status)
	}
	if err := env.Store.UpsertAttester(ctx, &storage.Attester{ID: "late", JWKS: jwks, Enabled: true, Source: "cli"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := try()
		if r.Status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("attester added to the database not trusted after 10s: %d %q", r.Status, r.Error)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Disabling it takes effect the same way.
	if err := env.Store.UpsertAttester(ctx, &storage.Attester{ID: "late", JWKS: jwks, Enabled: false, Source: "cli"}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		r := try()
		if r.Status == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("disabled attester still trusted after 10s: %d", r.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pushAttested pushes an authorization request with attestation (RFC 9126) and returns the
// request_uri.
func pushAttested(t *testing.T, env *testEnv, form url.Values) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/oauth2/par", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range env.attestedHeaders("agent-web", env.Instance, "") {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var par struct {
		RequestURI string `json:"request_uri"`
		ExpiresIn  int    `json:"expires_in"`
		Error      string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&par)
	if resp.StatusCode != 201 || par.RequestURI == "" || par.ExpiresIn <= 0 {
		t.Fatalf("PAR: %d %+v", resp.StatusCode, par)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("PAR Cache-Control = %q", resp.Header.Get("Cache-Control"))
	}
	return par.RequestURI
}

// TestMetadata_FollowsMACAttesters: HS* algorithms are published only while an attester with a
// shared secret is trusted (profile §8), also when attesters change at run time.
func TestMetadata_FollowsMACAttesters(t *testing.T) {
	env := newTestServer(t, nil)
	algs := func() []any {
		resp, err := http.Get(env.URL + "/.well-known/oauth-authorization-server")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var md map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&md)
		list, _ := md["client_attestation_signing_alg_values_supported"].([]any)
		return list
	}
	has := func(list []any, alg string) bool {
		for _, a := range list {
			if a == alg {
				return true
			}
		}
		return false
	}
	if has(algs(), "HS256") {
		t.Fatal("HS256 published without a MAC attester")
	}
	if err := env.Store.UpsertAttester(context.Background(), &storage.Attester{ID: "mac", HMACSecret: strings.Repeat("s", 48), Enabled: true, Source: "cli"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !has(algs(), "HS256") {
		if time.Now().After(deadline) {
			t.Fatalf("HS256 not published after a MAC attester was added: %v", algs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if list := algs(); !has(list, "HS384") || has(list, "HS512") {
		t.Fatalf("a 48-byte secret allows HS256 and HS384 only: %v", list)
	}
}

// TestTrust_BrokenStoredAttesterIsSkipped: a stored attester the verifier refuses (written by an
// older CLI, say) is logged and skipped; it does not stop the other attesters, the instance
// revocations written after it, or a restart.
func TestTrust_BrokenStoredAttesterIsSkipped(t *testing.T) {
	env := newTestServer(t, nil)
	ctx := context.Background()
	if err := env.Store.UpsertAttester(ctx, &storage.Attester{ID: "att5", JWKSURI: "notaurl", Enabled: true, Source: "cli"}); err != nil {
		t.Fatal(err)
	}
	victim := newECKey(t)
	if err := env.Store.RevokeInstance(ctx, thumbprint(t, victim), "stolen"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second) // the replica polls the generation every 2 s
	for {
		r := env.post("/oauth2/token", ccForm, env.attestedHeaders(agentID, victim, ""))
		if r.Status == 401 && r.Error == "invalid_client" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revocation was not applied beside a broken attester: %d %q", r.Status, r.Error)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r := env.post("/oauth2/token", ccForm, env.attestedHeaders(agentID, env.Instance, "")); r.Status != 200 {
		t.Fatalf("the valid attester stopped working: %d %q %s", r.Status, r.Error, r.Description)
	}
	// A restart with the broken record in the database succeeds.
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := server.New(ctx, env.Config, env.Store, log); err != nil {
		t.Fatalf("server.New with a broken stored attester: %v", err)
	}
}
