package clientauth

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/ory/fosite"
)

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// TestToRFC6749 covers the profile §2 error table.
func TestToRFC6749(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		asSignal   bool
		wantCode   string
		wantStatus int
		wantHeader bool
	}{
		{"pop_signature", ErrPoPSignature, false, "invalid_client", http.StatusUnauthorized, false},
		{"pop_signature_as_signal", ErrPoPSignature, true, "invalid_client_attestation", http.StatusBadRequest, false},
		{"header_missing", ErrHeaderMissing, false, "invalid_client", http.StatusUnauthorized, false},
		{"attestation_required_as_signal", ErrAttestationRequired, true, "invalid_client_attestation", http.StatusBadRequest, false},
		{"unknown_client", ErrUnknownClient, true, "invalid_client", http.StatusUnauthorized, false},
		{"method_not_allowed", ErrMethodNotAllowed, false, "invalid_client", http.StatusUnauthorized, false},
		{"dpop_key_mismatch", ErrDPoPKeyMismatch, false, "invalid_client", http.StatusUnauthorized, false},
		{"replay_joined", errors.Join(ErrReplay, errors.New("unique violation")), false, "invalid_client", http.StatusUnauthorized, false},
		{"iat_window", ErrPoPIatWindow, false, "invalid_client", http.StatusUnauthorized, false},
		{"challenge_missing", ErrChallengeMissing, false, "use_attestation_challenge", http.StatusBadRequest, true},
		{"challenge_invalid_as_signal", ErrChallengeInvalid, true, "use_attestation_challenge", http.StatusBadRequest, true},
		{"challenge_expired", fmt.Errorf("ctx: %w", ErrChallengeExpired), false, "use_attestation_challenge", http.StatusBadRequest, true},
		{"attestation_expired", ErrAttestationExpired, false, "use_fresh_attestation", http.StatusBadRequest, false},
		{"attestation_too_old", ErrAttestationTooOld, true, "use_fresh_attestation", http.StatusBadRequest, false},
		{"header_duplicate", ErrHeaderDuplicate, false, "invalid_request", http.StatusBadRequest, false},
		{"header_malformed", ErrHeaderMalformed, false, "invalid_request", http.StatusBadRequest, false},
		{"header_too_large", ErrHeaderTooLarge, false, "invalid_request", http.StatusBadRequest, false},
		{"two_methods", ErrTwoMethods, false, "invalid_request", http.StatusBadRequest, false},
		{"dpop_proof", ErrDPoPProof, false, "invalid_dpop_proof", http.StatusBadRequest, false},
		{"dpop_nonce", ErrDPoPNonce, false, "use_dpop_nonce", http.StatusBadRequest, true},
		{"foreign_error", errors.New("boom"), false, "server_error", http.StatusInternalServerError, false},
		{"fosite_error_kept", fosite.ErrInvalidGrant, false, "invalid_grant", http.StatusBadRequest, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ToRFC6749(tt.err, tt.asSignal)
			if got.ErrorField != tt.wantCode || got.CodeField != tt.wantStatus {
				t.Errorf("ToRFC6749 = %s %d, want %s %d", got.ErrorField, got.CodeField, tt.wantCode, tt.wantStatus)
			}
			if got.GetDescription() == "" {
				t.Error("empty description")
			}
			if NeedsChallengeHeader(tt.err) != tt.wantHeader {
				t.Errorf("NeedsChallengeHeader = %v, want %v", !tt.wantHeader, tt.wantHeader)
			}
			if tt.wantStatus < 500 && !errors.Is(got, tt.err) && !errors.Is(got.Cause(), tt.err) {
				t.Error("the cause is not kept")
			}
		})
	}
	if ToRFC6749(nil, false) != nil {
		t.Error("ToRFC6749(nil) is not nil")
	}
}

// TestReason covers the profile §7 audit reasons: one distinct snake_case code per sentinel.
func TestReason(t *testing.T) {
	if got := Reason(nil); got != "ok" {
		t.Errorf("Reason(nil) = %q", got)
	}
	if got := Reason(errors.New("x")); got != reasonUnexpected {
		t.Errorf("Reason(foreign) = %q", got)
	}
	seen := map[string]bool{}
	for _, f := range failures {
		got := Reason(fmt.Errorf("context: %w", f.err))
		if got != f.reason {
			t.Errorf("Reason(%v) = %q, want %q", f.err, got, f.reason)
		}
		if seen[got] {
			t.Errorf("reason %q used twice", got)
		}
		seen[got] = true
		for _, c := range got {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				t.Errorf("reason %q is not snake_case", got)
				break
			}
		}
	}
	for name, want := range map[string]string{"pop_signature_invalid": Reason(ErrPoPSignature), "ambiguous_kid": Reason(ErrAmbiguousKid), "instance_revoked": Reason(ErrInstanceRevoked)} {
		if name != want {
			t.Errorf("reason %q, want %q", want, name)
		}
	}
	if got := Reason(errors.Join(ErrReplay, errors.New("storage"))); got != "replay_detected" {
		t.Errorf("Reason(replay) = %q", got)
	}
}
