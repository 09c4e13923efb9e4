package clientauth

import (
	"context"
	"fmt"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/dpop"
)

// Request is what the HTTP layer knows about one request.
type Request struct {
	Header   http.Header
	Method   string // for DPoP htm
	URL      string // issuer + path, no query (DPoP htu; never the Host header)
	ClientID string // form client_id parameter, "" when absent
}

// ClientPolicy is what the registry says about the client that the request claims to be.
type ClientPolicy struct {
	ClientID         string
	AuthMethod       string                        // the method the attestation is checked for: AuthMethodAttestJWT or AuthMethodAttestJWTDPoP
	AllowedAttesters []string                      // empty = any trusted attester
	Revoked          func(instanceJKT string) bool // optional: instance key revoked by an admin → ErrInstanceRevoked
}

// Result describes one verification, for the token, the audit record and the replay store.
// On failure it is filled as far as verification got; ClientID and InstanceJKT may then come
// from the unverified attestation (for the audit record only).
type Result struct {
	ClientID       string // attestation sub (verified on success)
	Attester       string // attester id, "" if unresolved
	Resolution     string // kid|x5c|jku|keys_tried|hmac|""
	InstanceJKT    string // RFC 7638 SHA-256 thumbprint (base64url) of cnf.jwk, when readable
	InstanceKey    *jose.JSONWebKey
	PoPMethod      string // attestation_pop_jwt | dpop_combined | ""
	PoPAud         string // PoP aud as presented
	Challenge      string // none|valid|missing|invalid
	AttestationExp time.Time
	DPoP           *dpop.Proof // combined mode only
	Replay         []ReplayEntry
}

// ReplayEntry is one key the caller must insert atomically, with a unique index, in the
// transaction that accepts the request (profile §5); a uniqueness failure is ErrReplay.
// Key is "pop:"+instanceJKT+":"+jti, or "dpop:"+jkt+":"+jti in combined mode.
type ReplayEntry struct {
	Key       string
	ExpiresAt time.Time
}

// Authenticate runs ABCA-09 §7.1 (attestation), then §7.2 (PoP JWT, normal mode) or §7.3 (DPoP
// combined mode; mode selected per profile §1), then the client binding (§7.1 step 7, §7.5:
// client_id == sub, sub is the registered client, the attester is allowed for it, its
// required_claims hold, the instance key is not revoked). The mode must be the one client's
// method allows (checked right after the headers, ABCA-09 §7 checklist step 4).
//
// It never records replay itself: on success Result.Replay lists the keys the caller must
// insert atomically (profile §5: written only after all other checks passed). On failure it
// returns a non-nil *Result filled as far as verification got, and the error.
func (v *Verifier) Authenticate(ctx context.Context, req Request, client ClientPolicy) (*Result, error) {
	res := &Result{Challenge: ChallengeNone}
	ts := v.trust.Load()
	hdrs, err := parseHeaders(req.Header, v.cfg.MaxTokenBytes)
	res.PoPMethod = hdrs.mode
	if err != nil {
		return res.withUnverified(hdrs.attestation), err
	}
	if err := checkModeAllowed(hdrs.mode, client); err != nil {
		return res.withUnverified(hdrs.attestation), err
	}
	att, err := v.verifyAttestation(ctx, ts, hdrs.attestation, client, res)
	if err != nil {
		return res.withUnverified(hdrs.attestation), err
	}
	now := v.now()
	var replay ReplayEntry
	switch hdrs.mode {
	case PoPMethodJWT:
		pc, err := v.verifyPoP(hdrs.pop, att.cnf, res)
		if err != nil {
			return res, err
		}
		replay = ReplayEntry{Key: "pop:" + att.jkt + ":" + pc.jti, ExpiresAt: v.replayExpiry(pc.iat, now)}
	case PoPMethodDPoP:
		proof, err := v.verifyCombined(req, hdrs.dpop, att, res)
		if err != nil {
			return res, err
		}
		res.DPoP = proof
		replay = ReplayEntry{Key: "dpop:" + proof.JKT + ":" + proof.JTI, ExpiresAt: v.replayExpiry(proof.IssuedAt, now)}
	default:
		return res, fmt.Errorf("%w: no proof of possession", ErrHeaderMissing)
	}
	if err := checkClientBinding(req, client, att); err != nil {
		return res, err
	}
	res.Replay = []ReplayEntry{replay}
	return res, nil
}

// fillAttestation copies a verified attestation into the result.
func (r *Result) fillAttestation(att *attestation) {
	r.ClientID = att.sub
	r.Attester = att.attester.id
	r.Resolution = att.resolution
	r.InstanceJKT = att.jkt
	k := *att.cnf
	r.InstanceKey = &k
	r.AttestationExp = att.exp
}

// Unverified is what the headers tell without verifying anything: the proof method by the
// headers present, and the attestation's sub and cnf thumbprint when it is a readable JWT. The
// server uses it only for the audit record of a request refused before verification (an
// unregistered client, a second authentication method); never for a decision.
func Unverified(h http.Header) *Result {
	hdrs, _ := parseHeaders(h, DefaultMaxTokenBytes)
	return (&Result{Challenge: ChallengeNone, PoPMethod: hdrs.mode}).withUnverified(hdrs.attestation)
}

// withUnverified fills ClientID and InstanceJKT from the unverified attestation when
// verification stopped before they were known: for the audit record (profile §7 "when it could
// be read"), never for a decision.
func (r *Result) withUnverified(token string) *Result {
	if token == "" || (r.ClientID != "" && r.InstanceJKT != "") {
		return r
	}
	claims, err := unverifiedClaims(token)
	if err != nil {
		return r
	}
	if r.ClientID == "" {
		r.ClientID, _ = jsonString(claims["sub"])
	}
	if r.InstanceJKT == "" {
		if _, jkt, err := checkCnfKey(claims["cnf"]); err == nil {
			r.InstanceJKT = jkt
		}
	}
	return r
}
