package clientauth

import (
	"encoding/json"
	"testing"
)

// TestClientBinding covers ABCA-09 §7.1 step 7, §7.5 and profile §4.
func TestClientBinding(t *testing.T) {
	e := newEnv(t, func(e *testEnv, cfg *Config) {
		cfg.Attesters = append(cfg.Attesters, Attester{ID: "att2", HMACSecret: []byte("0123456789abcdef0123456789abcdef"), Enabled: true})
	})
	var revokedJKT string
	tests := []struct {
		name    string
		param   string
		policy  func(p *ClientPolicy)
		wantErr error
	}{
		{"no_client_id_param", "", nil, nil},
		{"client_id_param_matches", testClientID, nil, nil},
		{"client_id_param_differs", "client-2", nil, ErrClientIDMismatch},
		{"client_id_param_differs_in_case", "Client-1", nil, ErrClientIDMismatch},
		{"registered_client_differs", "", func(p *ClientPolicy) { p.ClientID = "client-2" }, ErrClientIDMismatch},
		{"registered_client_empty", "", func(p *ClientPolicy) { p.ClientID = "" }, ErrClientIDMismatch},
		{"attester_allowed", "", func(p *ClientPolicy) { p.AllowedAttesters = []string{"att2", testAttester} }, nil},
		{"attester_not_allowed", "", func(p *ClientPolicy) { p.AllowedAttesters = []string{"att2"} }, ErrAttesterNotAllowed},
		{"instance_not_revoked", "", func(p *ClientPolicy) { p.Revoked = func(string) bool { return false } }, nil},
		{"instance_revoked", "", func(p *ClientPolicy) {
			p.Revoked = func(jkt string) bool { revokedJKT = jkt; return true }
		}, ErrInstanceRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := e.client()
			if tt.policy != nil {
				tt.policy(&client)
			}
			req := e.request(headerWith(HeaderClientAttestation, e.attestation(nil), HeaderClientAttestationPoP, e.pop(nil)))
			req.ClientID = tt.param
			res, err := e.v.Authenticate(t.Context(), req, client)
			checkErr(t, err, tt.wantErr)
			if err != nil && res.Replay != nil {
				t.Error("replay entries on failure")
			}
			if tt.name == "instance_revoked" && revokedJKT != res.InstanceJKT {
				t.Errorf("Revoked got %q, want the instance thumbprint %q", revokedJKT, res.InstanceJKT)
			}
		})
	}
}

// TestRequiredClaims covers profile §8: exact JSON equality of each required claim.
func TestRequiredClaims(t *testing.T) {
	e := newEnv(t, func(e *testEnv, cfg *Config) {
		cfg.Attesters[0].RequiredClaims = map[string]json.RawMessage{
			"platform":  json.RawMessage(`"android"`),
			"level":     json.RawMessage(`2`),
			"integrity": json.RawMessage(`{"device": true, "app": ["a", "b"]}`),
		}
	})
	base := func(c map[string]any) {
		c["platform"] = "android"
		c["level"] = 2
		c["integrity"] = map[string]any{"app": []string{"a", "b"}, "device": true}
	}
	tests := []struct {
		name    string
		mutate  func(c map[string]any)
		wantErr error
	}{
		{"all_match", func(c map[string]any) {}, nil},
		{"number_written_differently", func(c map[string]any) { c["level"] = 2.0 }, nil},
		{"number_with_exponent", func(c map[string]any) { c["level"] = json.RawMessage(`20e-1`) }, nil},
		{"string_case_differs", func(c map[string]any) { c["platform"] = "Android" }, ErrRequiredClaim},
		{"string_instead_of_number", func(c map[string]any) { c["level"] = "2" }, ErrRequiredClaim},
		{"number_differs", func(c map[string]any) { c["level"] = 3 }, ErrRequiredClaim},
		{"missing_claim", func(c map[string]any) { delete(c, "platform") }, ErrRequiredClaim},
		{"array_order_differs", func(c map[string]any) { c["integrity"] = map[string]any{"app": []string{"b", "a"}, "device": true} }, ErrRequiredClaim},
		{"extra_object_member", func(c map[string]any) {
			c["integrity"] = map[string]any{"app": []string{"a", "b"}, "device": true, "x": 1}
		}, ErrRequiredClaim},
		{"null", func(c map[string]any) { c["platform"] = nil }, ErrRequiredClaim},
		{"huge_exponent", func(c map[string]any) { c["level"] = json.RawMessage(`2e999999999999`) }, ErrRequiredClaim},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			att := e.attestation(func(h, c map[string]any) { base(c); tt.mutate(c) })
			_, err := e.authenticate(att, e.pop(nil))
			checkErr(t, err, tt.wantErr)
		})
	}
}

func TestCanonicalJSON(t *testing.T) {
	tests := []struct {
		name  string
		a, b  string
		equal bool
	}{
		{"whitespace", `{"a":1}`, ` { "a" : 1 } `, true},
		{"member_order", `{"a":1,"b":2}`, `{"b":2,"a":1}`, true},
		{"integer_and_decimal", `1`, `1.0`, true},
		{"exponent", `100`, `1e2`, true},
		{"negative_zero", `0`, `-0`, true},
		{"escaped_string", `"a"`, `"\u0061"`, true},
		{"different_numbers", `1`, `1.0000001`, false},
		{"string_and_number", `"1"`, `1`, false},
		{"null_and_false", `null`, `false`, false},
		{"nested_arrays", `[[1],[2]]`, `[[2],[1]]`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := canonicalJSON([]byte(tt.a))
			if err != nil {
				t.Fatal(err)
			}
			b, err := canonicalJSON([]byte(tt.b))
			if err != nil {
				t.Fatal(err)
			}
			if (a == b) != tt.equal {
				t.Errorf("canonical %q vs %q: equal = %v, want %v", a, b, a == b, tt.equal)
			}
		})
	}
	if _, err := canonicalJSON([]byte(`{"a":1,"a":2}`)); err == nil {
		t.Error("duplicate members accepted")
	}
}

// TestModeSelection covers profile §1: the mode must match the client's registered method.
func TestModeSelection(t *testing.T) {
	e := newEnv(t, nil)
	att := e.attestation(nil)
	tests := []struct {
		name     string
		header   func() map[string]string
		method   string
		wantErr  error
		wantMode string
	}{
		{"pop_for_attest_jwt_client", func() map[string]string {
			return map[string]string{HeaderClientAttestation: att, HeaderClientAttestationPoP: e.pop(nil)}
		}, AuthMethodAttestJWT, nil, PoPMethodJWT},
		{"pop_for_dpop_client_refused", func() map[string]string {
			return map[string]string{HeaderClientAttestation: att, HeaderClientAttestationPoP: e.pop(nil)}
		}, AuthMethodAttestJWTDPoP, ErrMethodNotAllowed, PoPMethodJWT},
		{"dpop_without_pop_for_attest_jwt_client", func() map[string]string {
			return map[string]string{HeaderClientAttestation: att, "DPoP": e.dpopProof(e.instKey, nil)}
		}, AuthMethodAttestJWT, ErrMethodNotAllowed, PoPMethodDPoP},
		{"pop_for_other_method", func() map[string]string {
			return map[string]string{HeaderClientAttestation: att, HeaderClientAttestationPoP: e.pop(nil)}
		}, "client_secret_basic", ErrMethodNotAllowed, PoPMethodJWT},
		{"neither_pop_nor_dpop", func() map[string]string {
			return map[string]string{HeaderClientAttestation: att}
		}, AuthMethodAttestJWT, ErrHeaderMissing, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := headerWith()
			for k, v := range tt.header() {
				h.Set(k, v)
			}
			client := e.client()
			client.AuthMethod = tt.method
			res, err := e.v.Authenticate(t.Context(), e.request(h), client)
			checkErr(t, err, tt.wantErr)
			if res.PoPMethod != tt.wantMode {
				t.Errorf("PoPMethod = %q, want %q", res.PoPMethod, tt.wantMode)
			}
			if err != nil && res.ClientID != testClientID {
				t.Errorf("unverified client id for the audit = %q", res.ClientID)
			}
		})
	}
}
