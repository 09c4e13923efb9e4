package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/authz/authz/clientauth"
	"github.com/authz/authz/storage"
)

// Decision values of profile §7.
const (
	decisionAccepted = "accepted"
	decisionRejected = "rejected"
)

// decisionFor builds the profile §7 record of the attestation outcome of one request: accepted
// when attestation verified (even if the grant then failed for another reason), rejected
// otherwise. authErr overrides the outcome's error (a replay detected at insert time).
func decisionFor(out *outcome, authErr error, tokenRequestID string) *storage.Decision {
	d := &storage.Decision{
		Time:      time.Now().UTC(),
		Endpoint:  out.endpoint,
		ClientID:  out.claimedClientID,
		Challenge: "none",
	}
	if res := out.attestation; res != nil {
		if d.ClientID == "" {
			d.ClientID = res.ClientID
		}
		d.Attester = res.Attester
		d.Resolution = res.Resolution
		d.InstanceJKT = res.InstanceJKT
		d.PoPMethod = res.PoPMethod
		d.PoPAud = res.PoPAud
		if res.Challenge != "" {
			d.Challenge = res.Challenge
		}
	}
	if authErr == nil {
		authErr = out.authErr
	}
	switch {
	case authErr != nil:
		d.Decision, d.Reason = decisionRejected, clientauth.Reason(authErr)
	case out.attestation == nil || out.attestation.ClientID == "":
		// The request never reached attestation: another method failed first, or the
		// client requires attestation and did not get that far.
		d.Decision, d.Reason = decisionRejected, "client_authentication_failed"
	default:
		d.Decision, d.Reason = decisionAccepted, "ok"
		d.VerifiedClientID = out.attestation.ClientID
		d.TokenRequestID = tokenRequestID
	}
	return d
}

// recordDecision writes the decision in its own short transaction; used for every request that
// did not issue anything (the issuing path writes it inside the token's transaction instead).
func (s *Server) recordDecision(ctx context.Context, out *outcome, authErr error) {
	if out == nil || !out.auditDue {
		return
	}
	d := decisionFor(out, authErr, "")
	// The request may already be cancelled; the record must still be written.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.store.RecordDecision(ctx, d); err != nil {
		s.log.ErrorContext(ctx, "writing the audit decision failed", "endpoint", d.Endpoint, "client_id", d.ClientID, "decision", d.Decision, "reason", d.Reason, "error", err)
		return
	}
	s.metrics.decision(d.Decision, d.Reason)
}

// commitGrant records the replay keys and the accepted decision inside the caller's transaction
// (profile §5: replay keys written only after every other check passed, one atomic insert each;
// profile §7: the decision commits with the token). A replayed key fails the transaction.
func (s *Server) commitGrant(ctx context.Context, out *outcome, tokenRequestID string) error {
	for _, e := range out.replayEntries() {
		if err := s.store.MarkReplay(ctx, e.Key, e.ExpiresAt); err != nil {
			if errors.Is(err, storage.ErrReplayed) {
				return &replayError{err: errors.Join(clientauth.ErrReplay, err)}
			}
			return err
		}
	}
	if out.dpopProof != nil {
		key := "dpop:" + out.dpopProof.JKT + ":" + out.dpopProof.JTI
		if err := s.store.MarkReplay(ctx, key, s.dpopReplayExpiry(out.dpopProof.IssuedAt)); err != nil {
			if errors.Is(err, storage.ErrReplayed) {
				return &replayError{err: errors.Join(errDPoPReplay, err), dpop: true}
			}
			return err
		}
	}
	if out.auditDue {
		d := decisionFor(out, nil, tokenRequestID)
		if err := s.store.RecordDecision(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// replayError marks a transaction that failed because a PoP or DPoP jti was already used.
type replayError struct {
	err  error
	dpop bool
}

func (e *replayError) Error() string { return e.err.Error() }
func (e *replayError) Unwrap() error { return e.err }

func equalJKT(a, b string) bool {
	return a != "" && len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
