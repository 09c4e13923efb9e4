package server_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/authz/authz/config"
	"github.com/authz/authz/internal/testkit"
)

// attestation.clock_skew: 0s means no tolerance (profile §5), for the PoP, the attestation and
// DPoP proofs alike: the verifiers read a zero skew as "default", so the server must not pass
// the configured 0 through as is. With the 30 s default a DPoP proof 65 s old was accepted while
// its replay entry (kept for pop_max_age + 2 × the configured 0 s) had already expired, so the
// same proof could be used twice.
func TestZeroClockSkewMeansNone(t *testing.T) {
	env := newTestServer(t, func(c *config.Config) { c.Attestation.ClockSkew = 0 })
	now := time.Now()
	if r := env.post("/oauth2/token", ccForm, map[string]string{
		"OAuth-Client-Attestation":     env.attestation(agentID, env.Instance),
		"OAuth-Client-Attestation-PoP": testkit.PoP(t, env.Instance, env.URL, "", now.Add(-65*time.Second)),
	}); r.Status != 401 || r.Error != "invalid_client" {
		t.Fatalf("PoP 65 s old (pop_max_age 60 s, no skew): %d %q, want 401 invalid_client", r.Status, r.Error)
	}
	if r := env.post("/oauth2/token", ccForm, map[string]string{
		"OAuth-Client-Attestation":     testkit.Attestation(t, env.Attester, testAttesterKID, agentID, env.Instance.Public(), now.Add(-time.Hour-5*time.Second)),
		"OAuth-Client-Attestation-PoP": env.pop(env.Instance, ""),
	}); r.Status != 400 || r.Error != "use_fresh_attestation" {
		t.Fatalf("attestation expired 5 s ago (no skew): %d %q, want 400 use_fresh_attestation", r.Status, r.Error)
	}

	key := newECKey(t)
	proof := func(age time.Duration) string {
		return testkit.DPoPProof(t, key, map[string]any{"jti": randomString(t), "htm": "POST", "htu": env.URL + "/oauth2/token", "iat": now.Add(-age).Unix()})
	}
	if r := basicReq(t, env, ccForm, map[string]string{"DPoP": proof(65 * time.Second)}); r.Status != 400 || r.Error != "invalid_dpop_proof" {
		t.Fatalf("DPoP proof 65 s old (no skew): %d %q, want 400 invalid_dpop_proof", r.Status, r.Error)
	}
	recent := proof(50 * time.Second)
	if r := basicReq(t, env, ccForm, map[string]string{"DPoP": recent}); r.Status != 200 {
		t.Fatalf("DPoP proof 50 s old: %d %q %s", r.Status, r.Error, r.Description)
	}
	if r := basicReq(t, env, ccForm, map[string]string{"DPoP": recent}); r.Status != 400 || r.Error != "invalid_dpop_proof" {
		t.Fatalf("the same DPoP proof again: %d %q, want 400 invalid_dpop_proof", r.Status, r.Error)
	}
}

// A DPoP proof replayed at PAR is 400 invalid_dpop_proof (RFC 9449 §11.1, profile §2), as at
// the token endpoint — it was a 500 when the replay surfaced from the grant's transaction.
func TestDPoP_PARReplayedProof(t *testing.T) {
	env := newTestServer(t, func(c *config.Config) {
		c.Clients = append(c.Clients, config.Client{ClientID: "agent-web", TokenEndpointAuthMethod: config.AuthMethodAttestJWT,
			GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"read"}, RedirectURIs: []string{webRedirect}})
	})
	proof := env.dpopProof(newECKey(t), "POST", "/oauth2/par", "", "")
	push := func() tokenResponse {
		form := url.Values{"client_id": {"agent-web"}, "response_type": {"code"}, "redirect_uri": {webRedirect}, "scope": {"read"}, "state": {randomString(t)}}
		h := env.attestedHeaders("agent-web", env.Instance, "") // a fresh PoP each time
		h["DPoP"] = proof                                       // the same DPoP proof
		return env.post("/oauth2/par", form, h)
	}
	if r := push(); r.Status != 201 {
		t.Fatalf("first push: %d %q %s", r.Status, r.Error, r.Description)
	}
	if r := push(); r.Status != 400 || r.Error != "invalid_dpop_proof" {
		t.Fatalf("replayed DPoP proof at PAR: %d %q (%s), want 400 invalid_dpop_proof", r.Status, r.Error, r.Description)
	}
	// Both pushes carried a valid attestation: one record each, both accepted (profile §7
	// records the attestation's outcome, not the grant's).
	ds := env.decisions()
	if len(ds) != 2 || ds[0].Decision != "accepted" || ds[1].Decision != "accepted" {
		t.Fatalf("decisions = %+v", ds)
	}
}
