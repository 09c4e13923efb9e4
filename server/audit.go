package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/ory/fosite"

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
	case out.refusedAs != "":
		d.Decision, d.Reason = decisionRejected, out.refusedAs
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

// grantFor is what an accepted request writes (profile §5: replay keys written only after every
// other check passed, one atomic insert each; profile §7: the decision commits with the token):
// the attestation's replay keys, then the DPoP proof's, the accepted decision and the token rows
// collected in rows (nil when fosite writes them itself).
func (s *Server) grantFor(out *outcome, tokenRequestID string, rows *storage.Deferred) *storage.Grant {
	g := &storage.Grant{Rows: rows}
	for _, e := range out.replayEntries() {
		g.Replay = append(g.Replay, storage.ReplayKey{Key: e.Key, ExpiresAt: e.ExpiresAt})
	}
	if out.dpopProof != nil {
		g.Replay = append(g.Replay, storage.ReplayKey{
			Key:       "dpop:" + out.dpopProof.JKT + ":" + out.dpopProof.JTI,
			ExpiresAt: s.dpopReplayExpiry(out.dpopProof.IssuedAt),
		})
	}
	if out.assertionKey != nil && !out.assertionDone {
		g.Replay = append(g.Replay, *out.assertionKey)
	}
	if out.auditDue {
		g.Decision = decisionFor(out, nil, tokenRequestID)
	}
	return g
}

// commitGrant writes grantFor(out) through storage.CommitGrant (in the caller's transaction when
// ctx carries one); a replayed key becomes a *replayError naming the proof that was replayed.
func (s *Server) commitGrant(ctx context.Context, out *outcome, tokenRequestID string, rows *storage.Deferred) error {
	g := s.grantFor(out, tokenRequestID, rows)
	err := s.store.CommitGrant(ctx, g)
	var replayed *storage.ReplayedError
	if errors.As(err, &replayed) {
		attested := len(out.replayEntries())
		switch {
		case replayed.Index < attested:
			return &replayError{err: errors.Join(clientauth.ErrReplay, err)}
		case out.dpopProof != nil && replayed.Index == attested:
			return &replayError{err: errors.Join(errDPoPReplay, err), dpop: true}
		default: // the client assertion (RFC 7523 §3 item 7)
			out.assertionDone = true // it is in the table already
			return fosite.ErrInvalidClient.WithHint("The client assertion was already used.").WithWrap(err)
		}
	}
	return err
}

// consumeAssertion records a deferred client assertion jti that no grant wrote (the request
// failed after client authentication): a captured assertion must not be reusable with other
// parameters (RFC 7523 §3 item 7).
func (s *Server) consumeAssertion(ctx context.Context, out *outcome) {
	if out.assertionKey == nil || out.assertionDone {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := s.store.MarkReplay(ctx, out.assertionKey.Key, out.assertionKey.ExpiresAt)
	if err != nil && !errors.Is(err, storage.ErrReplayed) {
		s.log.ErrorContext(ctx, "recording a client assertion jti failed", "error", err)
	}
	out.assertionDone = true
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
