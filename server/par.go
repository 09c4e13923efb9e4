package server

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/labstack/echo/v4"
	"github.com/ory/fosite"

	"github.com/authz/authz/dpop"
	"github.com/authz/authz/storage"
)

// maxPARFormBytes bounds what one pushed request stores (names and values of its parameters):
// anyone may push for a public client, and without a bound the stored requests fill the disk at
// the rate limit (a 1 MiB form per push grew an SQLite database by 300 MB in 3 s).
const maxPARFormBytes = 16 << 10

// formBytes is the size of a form's names and values.
func formBytes(form url.Values) int {
	n := 0
	for k, vs := range form {
		for _, v := range vs {
			n += len(k) + len(v)
		}
	}
	return n
}

// handlePAR is the pushed authorization request endpoint (RFC 9126 §2). Client authentication
// (attestation included, ABCA-09 §7.1 step 7: client_id must equal the attestation sub) runs in
// our strategy; fosite would re-wrap its errors as invalid_client (fosite.md §1.4), so errors are
// written from the outcome.
func (s *Server) handlePAR(c echo.Context) error {
	r, rw := c.Request(), c.Response()
	ctx, out := withOutcome(r.Context(), "/oauth2/par")
	if err := formSyntaxError(r); err != nil {
		s.refuseForm(ctx, rw, r, out, err)
		return nil
	}
	var dpopErr error
	if plainDPoP(r.Header) {
		out.dpopProof, dpopErr = s.verifyPlainDPoP(r, "")
	}
	ar, err := s.provider.NewPushedAuthorizeRequest(ctx, r)
	if dpopErr != nil {
		s.recordDecision(ctx, out, nil)
		s.writeOAuthError(rw, r, out, dpopErr)
		return nil
	}
	if err != nil {
		s.recordDecision(ctx, out, nil)
		s.writeOAuthError(rw, r, out, err)
		return nil
	}
	// RFC 9449 §10.1: a proof at PAR — plain, or combined mode's, verified with the client's
	// authentication — binds the code to its key (the stored dpop_jkt); a dpop_jkt sent beside
	// it must name the same key.
	if jkt := dpopJKT(out); jkt != "" {
		form := ar.GetRequestForm()
		if sent := form.Get("dpop_jkt"); sent != "" && !equalJKT(sent, jkt) {
			s.recordDecision(ctx, out, nil)
			s.writeOAuthError(rw, r, out, invalidDPoPProof(errDPoPJKTMismatch))
			return nil
		}
		form.Set("dpop_jkt", jkt)
	}
	// RFC 9126 §2.1: a pushed request is validated as an authorization request would be, PKCE
	// included (fosite checks PKCE only when the code is issued).
	client, _ := ar.GetClient().(*storage.Client)
	if err := redirectURIProblem(ar, client); err != nil {
		s.recordDecision(ctx, out, nil)
		s.writeOAuthError(rw, r, out, err)
		return nil
	}
	if err := checkAuthorizeRequest(ar, client); err != nil {
		s.recordDecision(ctx, out, nil)
		s.writeOAuthError(rw, r, out, err)
		return nil
	}
	if n := formBytes(r.PostForm); n > maxPARFormBytes {
		s.recordDecision(ctx, out, nil)
		s.writeOAuthError(rw, r, out, fosite.ErrInvalidRequest.WithHintf("The pushed authorization request has %d bytes of parameters; at most %d are stored.", n, maxPARFormBytes))
		return nil
	}
	var resp fosite.PushedAuthorizeResponder
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.commitGrant(ctx, out, "", nil); err != nil {
			return err
		}
		var err error
		// The pushed request remembers which attested instance pushed it: the consent page
		// names the attester, and the code is redeemable only by the same instance key.
		sess := storage.NewSession()
		if out.verified() {
			sess.InstanceJKT = out.attestation.InstanceJKT
			sess.Attester = out.attestation.Attester
			sess.PoPMethod = out.attestation.PoPMethod
		}
		resp, err = s.provider.NewPushedAuthorizeResponse(ctx, ar, sess)
		return err
	})
	if err != nil {
		var replay *replayError
		if errors.As(err, &replay) {
			if replay.dpop { // RFC 9449 §11.1, profile §2: as at the token endpoint
				s.recordDecision(ctx, out, nil)
				s.writeOAuthError(rw, r, out, invalidDPoPProof(fmt.Errorf("%w: %w", dpop.ErrInvalid, replay)))
				return nil
			}
			out.authErr = replay
		}
		s.recordDecision(ctx, out, nil)
		s.writeOAuthError(rw, r, out, err)
		return nil
	}
	if s.verifier.ChallengesEnabled() {
		s.setChallengeHeaders(rw, s.dpopNonceDue(r, out))
	}
	rw.Header().Set("Cache-Control", "no-store")
	s.provider.WritePushedAuthorizeResponse(ctx, rw, ar, resp)
	return nil
}
