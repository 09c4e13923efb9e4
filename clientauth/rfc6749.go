package clientauth

import (
	"errors"
	"net/http"

	"github.com/ory/fosite"
)

// OAuth error codes of ABCA-09 §7.4 / §13.2 and RFC 9449 §7.1, §8.
const (
	errorInvalidClient            = "invalid_client"
	errorInvalidClientAttestation = "invalid_client_attestation"
	errorInvalidRequest           = "invalid_request"
	errorUseAttestationChallenge  = "use_attestation_challenge"
	errorUseFreshAttestation      = "use_fresh_attestation"
	errorInvalidDPoPProof         = "invalid_dpop_proof"
	errorUseDPoPNonce             = "use_dpop_nonce"
)

// ToRFC6749 maps err to the RFC 6749 §5.2 error of the profile §2 table (ABCA-09 §7.4):
//   - challenge missing, invalid or expired → 400 use_attestation_challenge;
//   - attestation expired or older than max_attestation_age → 400 use_fresh_attestation;
//   - duplicate, comma-joined, malformed or too large headers, two methods → 400 invalid_request;
//   - combined-mode DPoP proof invalid → 400 invalid_dpop_proof;
//   - combined-mode DPoP nonce missing or stale → 400 use_dpop_nonce;
//   - an unknown client → 401 invalid_client;
//   - any other failure → 401 invalid_client, or 400 invalid_client_attestation when asSignal
//     (attestation is an additional signal, ABCA-09 §7.6).
//
// The description names the failed check in plain words; err is kept as the cause (never shown
// to clients). nil maps to nil; an error that wraps no sentinel but already is an
// *fosite.RFC6749Error is returned as is; anything else is a 500 server_error.
func ToRFC6749(err error, asSignal bool) *fosite.RFC6749Error {
	if err == nil {
		return nil
	}
	f, ok := lookupFailure(err)
	if !ok {
		var rfc *fosite.RFC6749Error
		if errors.As(err, &rfc) {
			return rfc
		}
		return fosite.ErrServerError.WithWrap(err)
	}
	code, status := errorCode(f.err, asSignal)
	e := &fosite.RFC6749Error{ErrorField: code, DescriptionField: f.description, CodeField: status}
	return e.WithWrap(err)
}

// errorCode picks the error code and HTTP status for a sentinel (profile §2).
func errorCode(sentinel error, asSignal bool) (string, int) {
	switch sentinel {
	case ErrChallengeMissing, ErrChallengeInvalid, ErrChallengeExpired:
		return errorUseAttestationChallenge, http.StatusBadRequest
	case ErrAttestationExpired, ErrAttestationTooOld:
		return errorUseFreshAttestation, http.StatusBadRequest
	case ErrHeaderDuplicate, ErrHeaderMalformed, ErrHeaderTooLarge, ErrTwoMethods:
		return errorInvalidRequest, http.StatusBadRequest
	case ErrDPoPProof:
		return errorInvalidDPoPProof, http.StatusBadRequest
	case ErrDPoPNonce:
		return errorUseDPoPNonce, http.StatusBadRequest
	case ErrUnknownClient:
		return errorInvalidClient, http.StatusUnauthorized
	}
	if asSignal {
		return errorInvalidClientAttestation, http.StatusBadRequest
	}
	return errorInvalidClient, http.StatusUnauthorized
}

// NeedsChallengeHeader reports whether the error response for err must carry a fresh
// OAuth-Client-Attestation-Challenge (use_attestation_challenge, ABCA-09 §7.4) or, for
// use_dpop_nonce, the same value as DPoP-Nonce (RFC 9449 §8, profile §2).
func NeedsChallengeHeader(err error) bool {
	f, ok := lookupFailure(err)
	if !ok {
		return false
	}
	code, _ := errorCode(f.err, false)
	return code == errorUseAttestationChallenge || code == errorUseDPoPNonce
}
