package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/authz/authz/internal/testkit"
)

// Every attestation-related header is checked before any JWT is verified (profile §2: a
// duplicate header is 400 invalid_request), so two DPoP headers in combined mode are a request
// error whatever the attestation holds — expired, or naming an unregistered client. The audit
// record names the proof method the headers chose and the key the attestation names, even when
// the request never reached verification (profile §7).
func TestHeadersCheckedBeforeVerification(t *testing.T) {
	env := newTestServer(t, withDPoPClient)
	send := func(attestation string, extra map[string][]string, form string) tokenResponse {
		req, _ := http.NewRequest(http.MethodPost, env.URL+"/oauth2/token", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("OAuth-Client-Attestation", attestation)
		for k, vs := range extra {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		return env.do(req)
	}
	twoDPoP := map[string][]string{"DPoP": {
		env.dpopProof(env.Instance, "POST", "/oauth2/token", "", ""),
		env.dpopProof(env.Instance, "POST", "/oauth2/token", "", ""),
	}}
	expired := testkit.Attestation(t, env.Attester, testAttesterKID, "agent-dpop", env.Instance.Public(), time.Now().Add(-2*time.Hour))
	if r := send(expired, twoDPoP, ccForm.Encode()); r.Status != 400 || r.Error != "invalid_request" {
		t.Fatalf("expired attestation and two DPoP headers: %d %q (%s), want 400 invalid_request", r.Status, r.Error, r.Description)
	}
	if r := send(env.attestation("ghost", env.Instance), twoDPoP, ccForm.Encode()); r.Status != 400 || r.Error != "invalid_request" {
		t.Fatalf("unregistered sub and two DPoP headers: %d %q (%s), want 400 invalid_request", r.Status, r.Error, r.Description)
	}
	// Attestation plus a client secret: two methods (RFC 6749 §2.3), refused before verification.
	if r := send(env.attestation(agentID, env.Instance), map[string][]string{"OAuth-Client-Attestation-PoP": {env.pop(env.Instance, "")}},
		ccForm.Encode()+"&client_id="+agentID+"&client_secret=x"); r.Status != 400 || r.Error != "invalid_request" {
		t.Fatalf("attestation and client_secret: %d %q (%s), want 400 invalid_request", r.Status, r.Error, r.Description)
	}

	jkt := thumbprint(t, env.Instance)
	want := []struct{ reason, popMethod, clientID string }{ // newest first
		{"two_methods", "attestation_pop_jwt", agentID},
		{"header_duplicate", "dpop_combined", "ghost"},
		{"header_duplicate", "dpop_combined", "agent-dpop"},
	}
	ds := env.decisions()
	if len(ds) != len(want) {
		t.Fatalf("decisions = %+v, want %d", ds, len(want))
	}
	for i, w := range want {
		d := ds[i]
		if d.Decision != "rejected" || d.Reason != w.reason || d.PoPMethod != w.popMethod || d.ClientID != w.clientID || d.InstanceJKT != jkt {
			t.Errorf("decision %d = %+v, want rejected %s, pop_method %s, client %s, instance %s", i, d, w.reason, w.popMethod, w.clientID, jkt)
		}
	}
}

// Introspection takes the token endpoint's attestation authentication (profile §8): a
// duplicated attestation header is 400 invalid_request with one audit record, not the
// "authenticate first" 401 it got when the unreadable header yielded no client_id.
func TestIntrospectionMalformedAttestationHeaders(t *testing.T) {
	env := newTestServer(t, nil)
	att := env.attestation(agentID, env.Instance)
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/oauth2/introspect", strings.NewReader("token=anything"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Add("OAuth-Client-Attestation", att)
	req.Header.Add("OAuth-Client-Attestation", att)
	req.Header.Set("OAuth-Client-Attestation-PoP", env.pop(env.Instance, ""))
	if r := env.do(req); r.Status != 400 || r.Error != "invalid_request" {
		t.Fatalf("introspection with two attestation headers: %d %q, want 400 invalid_request", r.Status, r.Error)
	}
	ds := env.decisions()
	if len(ds) != 1 || ds[0].Endpoint != "/oauth2/introspect" || ds[0].Reason != "header_duplicate" || ds[0].PoPMethod != "attestation_pop_jwt" {
		t.Fatalf("decisions = %+v, want one header_duplicate record for /oauth2/introspect", ds)
	}
	// No credentials at all is still 401 invalid_client (RFC 7662 §2.1, RFC 6749 §5.2).
	if r := env.post("/oauth2/introspect", url.Values{"token": {"anything"}}, nil); r.Status != 401 || r.Error != "invalid_client" {
		t.Fatalf("introspection without credentials: %d %q, want 401 invalid_client", r.Status, r.Error)
	}
}

// fosite refuses a token request without grant_type before it authenticates the client; a
// request carrying attestation still gets its one audit record, describing the attestation's
// own outcome (profile §7).
func TestTokenRequestRefusedBeforeAuthenticationIsOnRecord(t *testing.T) {
	env := newTestServer(t, nil)
	noGrant := url.Values{"scope": {"read"}}
	if r := env.post("/oauth2/token", noGrant, env.attestedHeaders(agentID, env.Instance, "")); r.Status != 400 || r.Error != "invalid_request" {
		t.Fatalf("no grant_type: %d %q, want 400 invalid_request", r.Status, r.Error)
	}
	bad := env.attestedHeaders(agentID, env.Instance, "")
	bad["OAuth-Client-Attestation-PoP"] = env.pop(newECKey(t), "") // not the attested key
	// A failed client authentication answers first, as it does when fosite authenticates.
	if r := env.post("/oauth2/token", noGrant, bad); r.Status != 401 || r.Error != "invalid_client" {
		t.Fatalf("no grant_type, bad PoP: %d %q, want 401 invalid_client", r.Status, r.Error)
	}
	ds := env.decisions() // newest first
	if len(ds) != 2 {
		t.Fatalf("decisions = %+v, want 2", ds)
	}
	if d := ds[1]; d.Decision != "accepted" || d.Reason != "ok" || d.TokenRequestID != "" || d.InstanceJKT != thumbprint(t, env.Instance) {
		t.Fatalf("valid attestation, no grant: %+v, want accepted without a token_request_id", d)
	}
	if d := ds[0]; d.Decision != "rejected" || d.Reason != "pop_signature_invalid" {
		t.Fatalf("bad PoP, no grant: %+v, want rejected pop_signature_invalid", d)
	}
}

// A client registered for attestation leaves a record even when its request is refused before
// authentication and carries no attestation headers; an attestation whose sub cannot be read
// is reported as malformed, not as an unregistered client.
func TestEarlyRefusalsOfAttestationClients(t *testing.T) {
	env := newTestServer(t, nil)
	// Its failed authentication answers first, as when fosite authenticates.
	if r := env.post("/oauth2/token", url.Values{"client_id": {agentID}}, nil); r.Status != 401 || r.Error != "invalid_client" {
		t.Fatalf("attestation client, no grant_type, no headers: %d %q, want 401 invalid_client", r.Status, r.Error)
	}
	if r := env.post("/oauth2/token", url.Values{"client_id": {agentID}, "grant_type": {"client_credentials"}, "scope": {"read", "write"}}, nil); r.Status != 401 || r.Error != "invalid_client" {
		t.Fatalf("attestation client without attestation, scope twice: %d %q, want 401 invalid_client", r.Status, r.Error)
	}
	if r := env.post("/oauth2/token", ccForm, map[string]string{
		"OAuth-Client-Attestation":     "eyJhbGciOiJFUzI1NiJ9.bm90LWpzb24.c2ln",
		"OAuth-Client-Attestation-PoP": env.pop(env.Instance, ""),
	}); r.Status != 401 || r.Error != "invalid_client" || strings.Contains(r.Description, "not registered") {
		t.Fatalf("unreadable attestation: %d %q %q, want 401 invalid_client not blaming registration", r.Status, r.Error, r.Description)
	}
	ds := env.decisions() // newest first
	if len(ds) != 3 {
		t.Fatalf("decisions = %+v, want 3", ds)
	}
	if ds[0].Reason != "attestation_malformed" {
		t.Errorf("unreadable attestation: reason %q, want attestation_malformed", ds[0].Reason)
	}
	for _, d := range ds[1:] {
		if d.ClientID != agentID || d.Decision != "rejected" {
			t.Errorf("early refusal of %s: %+v, want a rejected record", agentID, d)
		}
	}
}
