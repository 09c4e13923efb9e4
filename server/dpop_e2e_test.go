package server_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/authz/authz/config"
)

func withDPoPClient(c *config.Config) {
	c.Clients = append(c.Clients, config.Client{ClientID: "agent-dpop", TokenEndpointAuthMethod: config.AuthMethodAttestJWTDPoP,
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}})
}

// basicHeaders returns HTTP Basic credentials for the secret client plus extra headers.
func basicReq(t *testing.T, env *testEnv, form url.Values, headers map[string]string) tokenResponse {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(secretClientID, secretValue)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return env.do(req)
}

// introspect introspects token as the confidential secret client (a resource server's view).
func introspect(t *testing.T, env *testEnv, token string) map[string]any {
	t.Helper()
	return introspectAs(t, env, secretClientID, secretValue, token)
}

func TestDPoP_BoundClientCredentials(t *testing.T) {
	env := newTestServer(t, nil)
	key := newECKey(t)
	proof := env.dpopProof(key, "POST", "/oauth2/token", "", "")
	r := basicReq(t, env, ccForm, map[string]string{"DPoP": proof})
	if r.Status != 200 || r.TokenType != "DPoP" {
		t.Fatalf("DPoP token: %d %q %s token_type %q", r.Status, r.Error, r.Description, r.TokenType)
	}
	cnf, _ := jwtClaims(t, r.AccessToken)["cnf"].(map[string]any)
	if cnf["jkt"] != thumbprint(t, key) {
		t.Fatalf("cnf = %v, want jkt %s", cnf, thumbprint(t, key))
	}
	got := introspect(t, env, r.AccessToken)
	if got["token_type"] != "DPoP" || got["cnf"].(map[string]any)["jkt"] != thumbprint(t, key) {
		t.Fatalf("introspection = %v", got)
	}
	// The same proof again is a replay (RFC 9449 §11.1).
	if r := basicReq(t, env, ccForm, map[string]string{"DPoP": proof}); r.Status != 400 || r.Error != "invalid_dpop_proof" ||
		!strings.HasSuffix(r.Description, ": its jti was used before.") {
		t.Fatalf("replayed proof: %d %q %q", r.Status, r.Error, r.Description)
	}
	// The description names the failed check in fixed words (never the proof's content).
	for _, tc := range []struct {
		name, proof, check string
	}{
		{"wrong_htu", env.dpopProof(key, "POST", "/oauth2/par", "", ""), "htu is not this endpoint's URL"},
		{"wrong_htm", env.dpopProof(key, "GET", "/oauth2/token", "", ""), "htm is not the request method"},
		{"garbage", "not-a-jwt", "it is not a compact JWS"},
		{"wrong_typ", sign(t, key, jose.ES256, "JWT", map[jose.HeaderKey]any{"jwk": jose.JSONWebKey{Key: key.Public()}},
			map[string]any{"jti": randomString(t), "htm": "POST", "htu": env.URL + "/oauth2/token", "iat": time.Now().Unix()}), "typ must be dpop+jwt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := basicReq(t, env, ccForm, map[string]string{"DPoP": tc.proof})
			if want := "The DPoP proof is invalid (RFC 9449 §4.3): " + tc.check + "."; r.Status != 400 || r.Error != "invalid_dpop_proof" || r.Description != want {
				t.Fatalf("%d %q %q, want 400 invalid_dpop_proof %q", r.Status, r.Error, r.Description, want)
			}
		})
	}
	// Two DPoP headers.
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/oauth2/token", strings.NewReader(ccForm.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(secretClientID, secretValue)
	req.Header.Add("DPoP", env.dpopProof(key, "POST", "/oauth2/token", "", ""))
	req.Header.Add("DPoP", env.dpopProof(key, "POST", "/oauth2/token", "", ""))
	if r := env.do(req); r.Status != 400 || r.Error != "invalid_request" {
		t.Fatalf("two DPoP headers: %d %q", r.Status, r.Error)
	}
}

func TestDPoP_CombinedMode(t *testing.T) {
	env := newTestServer(t, withDPoPClient)
	combined := func(instance, dpopKey *ecdsa.PrivateKey, nonce string) map[string]string {
		return map[string]string{
			"OAuth-Client-Attestation": env.attestation("agent-dpop", instance),
			"DPoP":                     env.dpopProof(dpopKey, "POST", "/oauth2/token", nonce, ""),
		}
	}
	r := env.post("/oauth2/token", ccForm, combined(env.Instance, env.Instance, ""))
	if r.Status != 200 || r.TokenType != "DPoP" {
		t.Fatalf("combined mode: %d %q %s", r.Status, r.Error, r.Description)
	}
	claims := jwtClaims(t, r.AccessToken)
	ev, _ := claims["client_attestation"].(map[string]any)
	cnf, _ := claims["cnf"].(map[string]any)
	if ev["pop_method"] != "dpop_combined" || ev["instance_jkt"] != thumbprint(t, env.Instance) || cnf["jkt"] != thumbprint(t, env.Instance) {
		t.Fatalf("claims = %v", claims)
	}
	if d := env.decisions()[0]; d.PoPMethod != "dpop_combined" || d.Decision != "accepted" {
		t.Fatalf("decision = %+v", d)
	}
	// The DPoP key must be the attested key (ABCA-09 §7.3 step 4).
	if r := env.post("/oauth2/token", ccForm, combined(env.Instance, newECKey(t), "")); r.Status != 401 || r.Error != "invalid_client" {
		t.Fatalf("key mismatch: %d %q", r.Status, r.Error)
	}
	// A PoP header means normal mode; a combined-mode client refuses it.
	h := env.attestedHeaders("agent-dpop", env.Instance, "")
	if r := env.post("/oauth2/token", ccForm, h); r.Status != 401 {
		t.Fatalf("PoP header for a combined-mode client: %d %q", r.Status, r.Error)
	}
}

func TestDPoP_CombinedMode_ChallengeRequired(t *testing.T) {
	env := newTestServer(t, func(c *config.Config) {
		withDPoPClient(c)
		c.Attestation.ChallengeRequired = true
	})
	headers := func(nonce string) map[string]string {
		return map[string]string{
			"OAuth-Client-Attestation": env.attestation("agent-dpop", env.Instance),
			"DPoP":                     env.dpopProof(env.Instance, "POST", "/oauth2/token", nonce, ""),
		}
	}
	r := env.post("/oauth2/token", ccForm, headers(""))
	nonce := r.Header.Get("DPoP-Nonce")
	if r.Status != 400 || r.Error != "use_dpop_nonce" || nonce == "" || r.Header.Get("OAuth-Client-Attestation-Challenge") != nonce {
		t.Fatalf("missing nonce: %d %q DPoP-Nonce %q challenge %q", r.Status, r.Error, nonce, r.Header.Get("OAuth-Client-Attestation-Challenge"))
	}
	if r := env.post("/oauth2/token", ccForm, headers("c3RhbGUtc3RhbGUtc3RhbGUtc3RhbGU")); r.Status != 400 || r.Error != "use_dpop_nonce" {
		t.Fatalf("stale nonce: %d %q", r.Status, r.Error)
	}
	if r := env.post("/oauth2/token", ccForm, headers(nonce)); r.Status != 200 || r.TokenType != "DPoP" {
		t.Fatalf("with nonce: %d %q %s", r.Status, r.Error, r.Description)
	}
}

// dpopCodeFlow runs the browser flow for the public web client, optionally with dpop_jkt, and
// exchanges the code with a proof by exchangeKey (nil: no proof).
func dpopCodeFlow(t *testing.T, env *testEnv, dpopJKT string, exchangeKey *ecdsa.PrivateKey) tokenResponse {
	t.Helper()
	code, verifier := dpopCode(t, env, dpopJKT)
	return exchangeDPoPCode(t, env, code, verifier, exchangeKey, "")
}

// dpopCode runs the browser flow for the public web client, optionally with dpop_jkt, and
// returns the code and its PKCE verifier.
func dpopCode(t *testing.T, env *testEnv, dpopJKT string) (code, verifier string) {
	t.Helper()
	verifier = oauth2.GenerateVerifier()
	q := url.Values{"client_id": {webClientID}, "response_type": {"code"}, "redirect_uri": {webRedirect}, "scope": {"read"},
		"state": {randomString(t)}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
	if dpopJKT != "" {
		q.Set("dpop_jkt", dpopJKT)
	}
	cb := browserLogin(t, env, env.URL+"/oauth2/authorize?"+q.Encode())
	return cb.Query().Get("code"), verifier
}

// exchangeDPoPCode redeems a code of the web client with a proof by key (nil: no proof).
func exchangeDPoPCode(t *testing.T, env *testEnv, code, verifier string, key *ecdsa.PrivateKey, nonce string) tokenResponse {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect},
		"client_id": {webClientID}, "code_verifier": {verifier}}
	headers := map[string]string{}
	if key != nil {
		headers["DPoP"] = env.dpopProof(key, "POST", "/oauth2/token", nonce, "")
	}
	return env.post("/oauth2/token", form, headers)
}

// A refused proof or key binding leaves the code redeemable: fosite's PKCE handler deletes the
// code's PKCE session while validating, so nothing of the grant may run before the DPoP checks
// pass. Otherwise the RFC 9449 §8 nonce retry could never succeed, and anyone holding a code
// bound by dpop_jkt could burn it with a proof by another key.
func TestDPoP_RefusedProofLeavesCodeRedeemable(t *testing.T) {
	env := newTestServer(t, func(c *config.Config) { c.DPoP.NonceRequired = true })
	key := newECKey(t)
	code, verifier := dpopCode(t, env, "")
	r := exchangeDPoPCode(t, env, code, verifier, key, "")
	nonce := r.Header.Get("DPoP-Nonce")
	if r.Status != 400 || r.Error != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("exchange without a nonce: %d %q, want use_dpop_nonce with DPoP-Nonce", r.Status, r.Error)
	}
	if r := exchangeDPoPCode(t, env, code, verifier, key, nonce); r.Status != 200 || r.TokenType != "DPoP" {
		t.Fatalf("retry with the server's nonce: %d %q %s", r.Status, r.Error, r.Description)
	}

	bound := newECKey(t)
	code, verifier = dpopCode(t, env, thumbprint(t, bound))
	r = exchangeDPoPCode(t, env, code, verifier, newECKey(t), nonce)
	if r.Status != 400 || r.Error != "invalid_grant" {
		t.Fatalf("dpop_jkt-bound code with another key: %d %q, want invalid_grant", r.Status, r.Error)
	}
	if r := exchangeDPoPCode(t, env, code, verifier, bound, r.Header.Get("DPoP-Nonce")); r.Status != 200 || r.TokenType != "DPoP" {
		t.Fatalf("the same code with its key after a refused attempt: %d %q %s", r.Status, r.Error, r.Description)
	}
}

func TestDPoP_PublicClientRefreshBinding(t *testing.T) {
	env := newTestServer(t, nil)
	key := newECKey(t)
	tok := dpopCodeFlow(t, env, "", key)
	if tok.Status != 200 || tok.TokenType != "DPoP" || tok.RefreshToken == "" {
		t.Fatalf("code exchange with DPoP: %d %q %s", tok.Status, tok.Error, tok.Description)
	}
	refresh := func(k *ecdsa.PrivateKey) tokenResponse {
		h := map[string]string{}
		if k != nil {
			h["DPoP"] = env.dpopProof(k, "POST", "/oauth2/token", "", "")
		}
		return env.post("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {webClientID}}, h)
	}
	if r := refresh(nil); r.Status != 400 || r.Error != "invalid_grant" {
		t.Fatalf("refresh without proof: %d %q", r.Status, r.Error)
	}
	if r := refresh(newECKey(t)); r.Status != 400 || r.Error != "invalid_grant" {
		t.Fatalf("refresh with another key: %d %q", r.Status, r.Error)
	}
	if r := refresh(key); r.Status != 200 || r.TokenType != "DPoP" {
		t.Fatalf("refresh with the bound key: %d %q %s", r.Status, r.Error, r.Description)
	}
}

func TestDPoP_AuthorizationCodeBinding(t *testing.T) {
	env := newTestServer(t, nil)
	key := newECKey(t)
	if r := dpopCodeFlow(t, env, thumbprint(t, key), newECKey(t)); r.Status != 400 || r.Error != "invalid_grant" {
		t.Fatalf("dpop_jkt with another key: %d %q", r.Status, r.Error)
	}
	if r := dpopCodeFlow(t, env, thumbprint(t, key), nil); r.Status != 400 || r.Error != "invalid_grant" {
		t.Fatalf("dpop_jkt without a proof: %d %q", r.Status, r.Error)
	}
	if r := dpopCodeFlow(t, env, thumbprint(t, key), key); r.Status != 200 || r.TokenType != "DPoP" {
		t.Fatalf("dpop_jkt with its key: %d %q %s", r.Status, r.Error, r.Description)
	}
}

var _ = context.Background

// dpop.nonce_required: plain DPoP proofs must carry a nonce the server provided (RFC 9449 §8).
// A proof without one, or with one the server did not issue, is answered with use_dpop_nonce
// and a fresh DPoP-Nonce; every answer to a DPoP request carries the next nonce.
func TestDPoP_ServerNonceRequired(t *testing.T) {
	env := newTestServer(t, func(c *config.Config) {
		c.DPoP.NonceRequired = true
		c.Clients = append(c.Clients, config.Client{ClientID: "agent-web", TokenEndpointAuthMethod: config.AuthMethodAttestJWT,
			GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"read"}, RedirectURIs: []string{webRedirect}})
	})
	key := newECKey(t)
	r := basicReq(t, env, ccForm, map[string]string{"DPoP": env.dpopProof(key, "POST", "/oauth2/token", "", "")})
	nonce := r.Header.Get("DPoP-Nonce")
	if r.Status != 400 || r.Error != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("proof without a nonce: %d %q, DPoP-Nonce %q; want 400 use_dpop_nonce with a nonce", r.Status, r.Error, nonce)
	}
	if r := basicReq(t, env, ccForm, map[string]string{"DPoP": env.dpopProof(key, "POST", "/oauth2/token", "c3RhbGUtc3RhbGUtc3RhbGUtc3RhbGU", "")}); r.Status != 400 || r.Error != "use_dpop_nonce" || r.Header.Get("DPoP-Nonce") == "" {
		t.Fatalf("proof with a nonce the server never issued: %d %q", r.Status, r.Error)
	}
	r = basicReq(t, env, ccForm, map[string]string{"DPoP": env.dpopProof(key, "POST", "/oauth2/token", nonce, "")})
	if r.Status != 200 || r.TokenType != "DPoP" || r.Header.Get("DPoP-Nonce") == "" {
		t.Fatalf("proof with the server's nonce: %d %q %s, token_type %q, DPoP-Nonce %q", r.Status, r.Error, r.Description, r.TokenType, r.Header.Get("DPoP-Nonce"))
	}
	// PAR applies the same rule to a plain DPoP proof beside attestation.
	form := url.Values{"client_id": {"agent-web"}, "response_type": {"code"}, "redirect_uri": {webRedirect}, "scope": {"read"}, "state": {randomString(t)}}
	h := env.attestedHeaders("agent-web", env.Instance, "")
	h["DPoP"] = env.dpopProof(key, "POST", "/oauth2/par", "", "")
	if r := env.post("/oauth2/par", form, h); r.Status != 400 || r.Error != "use_dpop_nonce" || r.Header.Get("DPoP-Nonce") == "" {
		t.Fatalf("PAR with a proof without a nonce: %d %q", r.Status, r.Error)
	}
	// Requests without DPoP are unaffected.
	if r := basicReq(t, env, ccForm, nil); r.Status != 200 || r.TokenType != "bearer" && r.TokenType != "Bearer" {
		t.Fatalf("bearer token request: %d %q token_type %q", r.Status, r.Error, r.TokenType)
	}
}

// pushForm POSTs a pushed authorization request and returns the status, error and request_uri.
func pushForm(t *testing.T, env *testEnv, form url.Values, headers map[string]string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/oauth2/par", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		RequestURI string `json:"request_uri"`
		Error      string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error, body.RequestURI
}

// RFC 9449 §10.1: a DPoP proof at PAR binds the code to the proof's key — a plain proof, and
// combined mode's proof (verified with the client's authentication); a dpop_jkt sent beside it
// must name the same key.
func TestDPoP_PARBindsCode(t *testing.T) {
	env := newTestServer(t, func(c *config.Config) {
		c.Clients = append(c.Clients, config.Client{ClientID: "agent-webd", TokenEndpointAuthMethod: config.AuthMethodAttestJWTDPoP,
			GrantTypes: []string{"authorization_code"}, Scopes: []string{"read"}, RedirectURIs: []string{webRedirect}})
	})
	verifier := oauth2.GenerateVerifier()
	form := func(clientID string) url.Values {
		return url.Values{"client_id": {clientID}, "response_type": {"code"}, "redirect_uri": {webRedirect}, "scope": {"read"},
			"state": {randomString(t)}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
	}

	key := newECKey(t)
	status, errCode, requestURI := pushForm(t, env, form(webClientID), map[string]string{"DPoP": env.dpopProof(key, "POST", "/oauth2/par", "", "")})
	if status != 201 {
		t.Fatalf("PAR with a plain DPoP proof: %d %q", status, errCode)
	}
	cb := browserLogin(t, env, env.URL+"/oauth2/authorize?"+url.Values{"client_id": {webClientID}, "request_uri": {requestURI}}.Encode())
	code := cb.Query().Get("code")
	if r := exchangeDPoPCode(t, env, code, verifier, newECKey(t), ""); r.Status != 400 || r.Error != "invalid_grant" {
		t.Fatalf("code pushed with a proof, redeemed with another key: %d %q, want invalid_grant", r.Status, r.Error)
	}
	if r := exchangeDPoPCode(t, env, code, verifier, key, ""); r.Status != 200 || r.TokenType != "DPoP" {
		t.Fatalf("code pushed with a proof, redeemed with its key: %d %q %s", r.Status, r.Error, r.Description)
	}

	combined := func(dpopJKT string) (int, string) {
		f := form("agent-webd")
		if dpopJKT != "" {
			f.Set("dpop_jkt", dpopJKT)
		}
		status, errCode, _ := pushForm(t, env, f, map[string]string{
			"OAuth-Client-Attestation": env.attestation("agent-webd", env.Instance),
			"DPoP":                     env.dpopProof(env.Instance, "POST", "/oauth2/par", "", ""),
		})
		return status, errCode
	}
	if status, errCode := combined(thumbprint(t, newECKey(t))); status != 400 || errCode != "invalid_dpop_proof" {
		t.Errorf("combined mode, dpop_jkt of another key: %d %q, want 400 invalid_dpop_proof", status, errCode)
	}
	if status, errCode := combined(thumbprint(t, env.Instance)); status != 201 {
		t.Errorf("combined mode, dpop_jkt of the proof key: %d %q, want 201", status, errCode)
	}
}
