package server

import (
	"context"

	"github.com/authz/authz/clientauth"
	"github.com/authz/authz/dpop"
	"github.com/authz/authz/storage"
)

// outcome is the per-request record of what client authentication found. The HTTP layer puts a
// mutable *outcome into the context before calling fosite, because fosite's client-authentication
// strategy cannot return anything but a client (fosite.md §1.3); handlers read it afterwards to
// write the audit record, the replay keys and the response headers.
type outcome struct {
	endpoint string
	// claimedClientID is the client the request claimed (client_id parameter, else attestation sub).
	claimedClientID string
	client          *storage.Client

	// auditDue is set when profile §7 requires a decision record for this request.
	auditDue bool
	// authRan is set once client authentication ran for this request.
	authRan bool
	// asSignal is true when attestation is an additional signal (ABCA-09 §7.6).
	asSignal bool
	// attestation is what clientauth found, possibly partial on failure.
	attestation *clientauth.Result
	// authErr is the client-authentication failure, when there was one.
	authErr error
	// refusedAs, when set, is the audit reason of a request refused before client
	// authentication could run (its body was never read): the decision is rejected.
	refusedAs string
	// replayNow makes the strategy record replay keys as soon as attestation verified, for
	// endpoints that act without issuing anything (introspection, revocation).
	replayNow bool
	// dpopProof is a verified plain RFC 9449 proof (not the combined-mode one).
	dpopProof *dpop.Proof
	// deferAssertion makes fosite's record of an RFC 7523 client assertion jti part of the
	// grant (assertionKey) instead of a transaction of its own (token endpoint only);
	// assertionDone is set once that key is written, with the grant or after a failure.
	deferAssertion bool
	assertionKey   *storage.ReplayKey
	assertionDone  bool
}

type outcomeKey struct{}

func withOutcome(ctx context.Context, endpoint string) (context.Context, *outcome) {
	out := &outcome{endpoint: endpoint}
	return context.WithValue(ctx, outcomeKey{}, out), out
}

func outcomeFrom(ctx context.Context) *outcome {
	out, _ := ctx.Value(outcomeKey{}).(*outcome)
	return out
}

// verified reports whether attestation authenticated or signalled successfully.
func (o *outcome) verified() bool {
	return o != nil && o.attestation != nil && o.authErr == nil && o.attestation.ClientID != ""
}

// replayEntries returns the replay keys that must be recorded with the grant.
func (o *outcome) replayEntries() []clientauth.ReplayEntry {
	if o == nil || o.attestation == nil || o.authErr != nil {
		return nil
	}
	return o.attestation.Replay
}
