package clientauth

import "errors"

// Sentinel errors, one per failed check. Every error returned by this package wraps exactly one
// of them with %w (combined-mode DPoP failures also wrap the dpop package's error); assert with
// errors.Is. Messages never contain token contents.
var (
	// Request shape (ABCA-09 §7.1 step 1, §7.2 step 1, §7.3 steps 1–2; profile §2, §3).
	ErrHeaderMissing   = errors.New("clientauth: attestation header missing")
	ErrHeaderDuplicate = errors.New("clientauth: header sent more than once")
	ErrHeaderMalformed = errors.New("clientauth: header value malformed")
	ErrHeaderTooLarge  = errors.New("clientauth: header value too large")
	// ErrTwoMethods is set by the server when a request carries attestation and another client
	// credential (RFC 6749 §2.3).
	ErrTwoMethods = errors.New("clientauth: more than one client authentication method")
	// ErrUnknownClient is set by the server when the claimed client is not registered.
	ErrUnknownClient = errors.New("clientauth: unknown client")
	// ErrAttestationRequired is set by the server when a client with require_attestation sent none
	// (ABCA-09 §7.6, profile §1).
	ErrAttestationRequired = errors.New("clientauth: attestation required for this client")

	// Client Attestation JWT (ABCA-09 §4, §7.1, §9.7; profile §3, §4, §8).
	ErrAttestationMalformed   = errors.New("clientauth: attestation is not a well-formed compact JWS")
	ErrAttestationTyp         = errors.New("clientauth: attestation typ invalid")
	ErrAttestationAlg         = errors.New("clientauth: attestation alg not allowed")
	ErrAttestationUnknownKey  = errors.New("clientauth: attestation key unknown")
	ErrAmbiguousKid           = errors.New("clientauth: attestation kid ambiguous")
	ErrAttestationSignature   = errors.New("clientauth: attestation signature invalid")
	ErrAttestationExpired     = errors.New("clientauth: attestation expired")
	ErrAttestationTooOld      = errors.New("clientauth: attestation too old")
	ErrAttestationNotYetValid = errors.New("clientauth: attestation not yet valid")
	ErrAttestationClaims      = errors.New("clientauth: attestation claims invalid")
	ErrCnfKey                 = errors.New("clientauth: attestation cnf key invalid")
	ErrCrit                   = errors.New("clientauth: unsupported crit header parameter")
	ErrX5CChain               = errors.New("clientauth: attestation x5c chain invalid")
	ErrJKUNotAllowed          = errors.New("clientauth: attestation jku not allowed")
	ErrAttesterNotAllowed     = errors.New("clientauth: attester not allowed for this client")
	ErrRequiredClaim          = errors.New("clientauth: attester required claim not satisfied")

	// Client Attestation PoP JWT (ABCA-09 §5.1, §7.2).
	ErrPoPMalformed    = errors.New("clientauth: PoP is not a well-formed compact JWS")
	ErrPoPTyp          = errors.New("clientauth: PoP typ invalid")
	ErrPoPAlg          = errors.New("clientauth: PoP alg not allowed")
	ErrPoPSignature    = errors.New("clientauth: PoP signature invalid")
	ErrPoPAudience     = errors.New("clientauth: PoP audience invalid")
	ErrPoPClaims       = errors.New("clientauth: PoP claims invalid")
	ErrPoPIatWindow    = errors.New("clientauth: PoP iat outside the accepted window")
	ErrReplay          = errors.New("clientauth: proof replayed")
	ErrInstanceRevoked = errors.New("clientauth: client instance key revoked")

	// Challenges (ABCA-09 §6, §7.2 steps 5 and 8; profile §5).
	ErrChallengeMissing   = errors.New("clientauth: challenge missing")
	ErrChallengeInvalid   = errors.New("clientauth: challenge invalid")
	ErrChallengeExpired   = errors.New("clientauth: challenge expired")
	ErrChallengesDisabled = errors.New("clientauth: challenges are not enabled")

	// Client binding (ABCA-09 §7.1 step 7, §7.5; profile §1).
	ErrClientIDMismatch = errors.New("clientauth: client_id does not match attestation sub")
	ErrMethodNotAllowed = errors.New("clientauth: proof method not allowed for this client")

	// DPoP combined mode (ABCA-09 §5.2, §7.3; RFC 9449 §4.3, §8).
	ErrDPoPKeyMismatch = errors.New("clientauth: DPoP key differs from attested instance key")
	ErrDPoPProof       = errors.New("clientauth: DPoP proof invalid")
	ErrDPoPNonce       = errors.New("clientauth: DPoP nonce missing or stale")
)

// failure describes one sentinel: its audit reason (profile §7) and the plain-words
// error_description a client sees (profile §2: names the failed check, never token contents).
type failure struct {
	err         error
	reason      string
	description string
}

// failures is ordered: when an error wraps several sentinels the first listed wins. ErrReplay
// comes first because the server joins it with a storage error.
var failures = []failure{
	{ErrReplay, "replay_detected", "The proof of possession was already used."},
	{ErrTwoMethods, "two_methods", "The request uses more than one client authentication method."},
	{ErrUnknownClient, "unknown_client", "The client is not registered."},
	{ErrAttestationRequired, "attestation_required", "This client must send a client attestation and proof of possession."},
	{ErrHeaderDuplicate, "header_duplicate", "An attestation, proof of possession or DPoP header was sent more than once."},
	{ErrHeaderTooLarge, "header_too_large", "An attestation, proof of possession or DPoP header is too large."},
	{ErrHeaderMalformed, "header_malformed", "An attestation or proof of possession header is not a single compact JWT."},
	{ErrHeaderMissing, "header_missing", "The client attestation or its proof of possession is missing."},
	{ErrMethodNotAllowed, "method_not_allowed", "The proof of possession method is not the one registered for this client."},
	{ErrAttestationMalformed, "attestation_malformed", "The client attestation is not a well-formed JWT."},
	{ErrCrit, "crit_unsupported", "A JWT uses a critical header parameter that is not supported."},
	{ErrAttestationAlg, "attestation_alg_not_allowed", "The client attestation uses an algorithm that is not allowed."},
	{ErrAmbiguousKid, "ambiguous_kid", "The client attestation key identifier matches more than one trusted attester."},
	{ErrJKUNotAllowed, "jku_not_allowed", "The client attestation names a key set URL that is not trusted."},
	{ErrX5CChain, "x5c_chain_invalid", "The client attestation certificate chain is not trusted."},
	{ErrAttestationUnknownKey, "attestation_unknown_key", "The client attestation is not signed by a trusted attester."},
	{ErrAttestationSignature, "attestation_signature_invalid", "The client attestation signature is invalid."},
	{ErrAttestationTyp, "attestation_typ_invalid", "The client attestation has the wrong type."},
	{ErrAttestationClaims, "attestation_claims_invalid", "The client attestation lacks a required claim or a claim has the wrong type."},
	{ErrCnfKey, "cnf_key_invalid", "The client attestation confirmation key is not a valid public key."},
	{ErrAttestationExpired, "attestation_expired", "The client attestation has expired."},
	{ErrAttestationNotYetValid, "attestation_not_yet_valid", "The client attestation is not valid yet."},
	{ErrAttestationTooOld, "attestation_too_old", "The client attestation is older than this server accepts."},
	{ErrDPoPProof, "dpop_proof_invalid", "The DPoP proof is invalid."},
	{ErrDPoPKeyMismatch, "dpop_key_mismatch", "The DPoP key is not the attested client instance key."},
	{ErrDPoPNonce, "dpop_nonce_invalid", "The DPoP proof must carry a fresh server nonce."},
	{ErrPoPMalformed, "pop_malformed", "The proof of possession is not a well-formed JWT."},
	{ErrPoPAlg, "pop_alg_not_allowed", "The proof of possession uses an algorithm that is not allowed for the attested key."},
	{ErrPoPSignature, "pop_signature_invalid", "The proof of possession signature is invalid."},
	{ErrPoPTyp, "pop_typ_invalid", "The proof of possession has the wrong type."},
	{ErrPoPClaims, "pop_claims_invalid", "The proof of possession lacks a required claim or a claim is invalid."},
	{ErrPoPAudience, "pop_audience_invalid", "The proof of possession audience is not this server's issuer identifier."},
	{ErrPoPIatWindow, "pop_iat_out_of_window", "The proof of possession was not issued recently enough."},
	{ErrChallengeMissing, "challenge_missing", "The proof of possession must carry a server challenge."},
	{ErrChallengeExpired, "challenge_expired", "The challenge has expired."},
	{ErrChallengeInvalid, "challenge_invalid", "The challenge is not one this server issued."},
	{ErrChallengesDisabled, "challenges_disabled", "This server does not issue challenges."},
	{ErrClientIDMismatch, "client_id_mismatch", "The client_id does not match the client attestation subject."},
	{ErrAttesterNotAllowed, "attester_not_allowed", "The attester is not trusted for this client."},
	{ErrRequiredClaim, "required_claim_mismatch", "The client attestation lacks a claim its attester requires."},
	{ErrInstanceRevoked, "instance_revoked", "The client instance key has been revoked."},
}

// reasonUnexpected is the audit reason of an error that wraps none of the sentinels.
const reasonUnexpected = "unexpected_error"

// lookupFailure returns the first failure whose sentinel err wraps.
func lookupFailure(err error) (failure, bool) {
	for _, f := range failures {
		if errors.Is(err, f.err) {
			return f, true
		}
	}
	return failure{}, false
}

// Reason returns the snake_case audit reason for err (profile §7): "ok" for nil, the sentinel's
// code (e.g. "pop_signature_invalid") otherwise, and "unexpected_error" for an error of another
// package.
func Reason(err error) string {
	if err == nil {
		return "ok"
	}
	if f, ok := lookupFailure(err); ok {
		return f.reason
	}
	return reasonUnexpected
}
