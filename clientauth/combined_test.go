package clientauth

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/authz/authz/dpop"
	"github.com/authz/authz/internal/testkit"
)

// TestCombinedMode covers ABCA-09 §7.3 with profile §1, §2, §5.
func TestCombinedMode(t *testing.T) {
	optional := newEnv(t, nil)
	required := newEnv(t, func(e *testEnv, cfg *Config) { cfg.ChallengeRequired = true })
	other := testkit.ECKey(t)
	challenge, err := required.v.IssueChallenge()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		env        *testEnv
		headers    func(e *testEnv) http.Header
		method     string
		wantErr    error
		wantDPoP   error
		wantStatus string
	}{
		{"valid", optional, func(e *testEnv) http.Header {
			return headerWith(HeaderClientAttestation, e.attestation(nil), "DPoP", e.dpopProof(e.instKey, nil))
		}, http.MethodPost, nil, nil, ChallengeNone},
		{"dpop_key_is_not_cnf", optional, func(e *testEnv) http.Header {
			return headerWith(HeaderClientAttestation, e.attestation(nil), "DPoP", e.dpopProof(other, nil))
		}, http.MethodPost, ErrDPoPKeyMismatch, nil, ChallengeNone},
		{"wrong_htm", optional, func(e *testEnv) http.Header {
			return headerWith(HeaderClientAttestation, e.attestation(nil), "DPoP", e.dpopProof(e.instKey, nil))
		}, http.MethodGet, ErrDPoPProof, dpop.ErrHTM, ChallengeNone},
		{"wrong_htu", optional, func(e *testEnv) http.Header {
			return headerWith(HeaderClientAttestation, e.attestation(nil), "DPoP", e.dpopProof(e.instKey, func(h, c map[string]any) { c["htu"] = "https://evil.example/oauth2/token" }))
		}, http.MethodPost, ErrDPoPProof, dpop.ErrHTU, ChallengeNone},
		{"dpop_iat_too_old", optional, func(e *testEnv) http.Header {
			return headerWith(HeaderClientAttestation, e.attestation(nil), "DPoP", e.dpopProof(e.instKey, func(h, c map[string]any) { c["iat"] = testNow.Add(-5 * time.Minute).Unix() }))
		}, http.MethodPost, ErrDPoPProof, dpop.ErrIAT, ChallengeNone},
		{"dpop_typ_wrong", optional, func(e *testEnv) http.Header {
			return headerWith(HeaderClientAttestation, e.attestation(nil), "DPoP", e.dpopProof(e.instKey, func(h, c map[string]any) { h["typ"] = "jwt" }))
		}, http.MethodPost, ErrDPoPProof, dpop.ErrTyp, ChallengeNone},
		{"two_dpop_headers", optional, func(e *testEnv) http.Header {
			return headerWith(HeaderClientAttestation, e.attestation(nil), "DPoP", e.dpopProof(e.instKey, nil), "DPoP", e.dpopProof(e.instKey, nil))
		}, http.MethodPost, ErrHeaderDuplicate, dpop.ErrMultiple, ChallengeNone},
		{"dpop_not_a_jwt", optional, func(e *testEnv) http.Header {
			return headerWith(HeaderClientAttestation, e.attestation(nil), "DPoP", "not a jwt")
		}, http.MethodPost, ErrDPoPProof, dpop.ErrInvalid, ChallengeNone},
		{"attestation_invalid", optional, func(e *testEnv) http.Header {
			return headerWith(HeaderClientAttestation, e.attestation(func(h, c map[string]any) { c["exp"] = 1 }), "DPoP", e.dpopProof(e.instKey, nil))
		}, http.MethodPost, ErrAttestationExpired, nil, ChallengeNone},
		{"nonce_required_missing", required, func(e *testEnv) http.Header {
			return headerWith(HeaderClientAttestation, e.attestation(nil), "DPoP", e.dpopProof(e.instKey, nil))
		}, http.MethodPost, ErrDPoPNonce, nil, ChallengeMissing},
		{"nonce_required_stale", required, func(e *testEnv) http.Header {
			return headerWith(HeaderClientAttestation, e.attestation(nil), "DPoP", e.dpopProof(e.instKey, func(h, c map[string]any) { c["nonce"] = "stale-nonce-value" }))
		}, http.MethodPost, ErrDPoPNonce, nil, ChallengeInvalid},
		{"nonce_required_valid", required, func(e *testEnv) http.Header {
			return headerWith(HeaderClientAttestation, e.attestation(nil), "DPoP", e.dpopProof(e.instKey, func(h, c map[string]any) { c["nonce"] = challenge }))
		}, http.MethodPost, nil, nil, ChallengeValid},
		{"challenge_in_pop_claim_is_not_the_nonce", required, func(e *testEnv) http.Header {
			return headerWith(HeaderClientAttestation, e.attestation(nil), "DPoP", e.dpopProof(e.instKey, func(h, c map[string]any) { c["challenge"] = challenge }))
		}, http.MethodPost, ErrDPoPNonce, nil, ChallengeMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := tt.env.client()
			client.AuthMethod = AuthMethodAttestJWTDPoP
			req := tt.env.request(tt.headers(tt.env))
			req.Method = tt.method
			res, err := tt.env.v.Authenticate(t.Context(), req, client)
			checkErr(t, err, tt.wantErr)
			if tt.wantDPoP != nil && !errors.Is(err, tt.wantDPoP) {
				t.Errorf("error %v does not wrap %v", err, tt.wantDPoP)
			}
			if res.PoPMethod != PoPMethodDPoP || res.Challenge != tt.wantStatus {
				t.Errorf("PoPMethod, Challenge = %q, %q, want dpop_combined, %q", res.PoPMethod, res.Challenge, tt.wantStatus)
			}
			if err != nil {
				if res.DPoP != nil || res.Replay != nil {
					t.Errorf("failure reports a proof or replay keys: %+v", res)
				}
				return
			}
			if res.DPoP == nil || res.DPoP.JKT != res.InstanceJKT {
				t.Fatalf("DPoP = %+v, instance %q", res.DPoP, res.InstanceJKT)
			}
			want := "dpop:" + res.InstanceJKT + ":" + res.DPoP.JTI
			if len(res.Replay) != 1 || res.Replay[0].Key != want || !res.Replay[0].ExpiresAt.Equal(res.DPoP.IssuedAt.Add(90*time.Second)) {
				t.Errorf("Replay = %+v, want key %q", res.Replay, want)
			}
		})
	}
}

// TestNormalModeWithPlainDPoP covers profile §1: with a PoP header, a DPoP proof in the same
// request is plain RFC 9449 DPoP; its key may differ from cnf and clientauth does not check it.
func TestNormalModeWithPlainDPoP(t *testing.T) {
	e := newEnv(t, nil)
	other := testkit.ECKey(t)
	h := headerWith(HeaderClientAttestation, e.attestation(nil), HeaderClientAttestationPoP, e.pop(nil), "DPoP", e.dpopProof(other, nil))
	res, err := e.v.Authenticate(t.Context(), e.request(h), e.client())
	checkErr(t, err, nil)
	if res.PoPMethod != PoPMethodJWT || res.DPoP != nil {
		t.Errorf("result = %+v", res)
	}
}
