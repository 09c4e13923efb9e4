package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/ory/fosite"

	"github.com/authz/authz/clientauth"
	"github.com/authz/authz/config"
	"github.com/authz/authz/dpop"
	"github.com/authz/authz/storage"
)

var errDPoPReplay = errors.New("dpop: proof jti already used")

// handleToken is the token endpoint (RFC 6749 §3.2). Order: client authentication and grant
// validation by fosite (our strategy verifies attestation), then one transaction with the replay
// keys, the token rows and the audit decision (profile §5, §7), then the response with a fresh
// challenge when challenges are enabled (profile §5).
func (s *Server) handleToken(c echo.Context) error {
	r, rw := c.Request(), c.Response()
	ctx, out := withOutcome(r.Context(), "/oauth2/token")
	out.deferAssertion = true
	defer s.consumeAssertion(ctx, out)
	if err := formSyntaxError(r); err != nil {
		s.refuseForm(ctx, rw, r, out, err)
		return nil
	}

	// A plain DPoP proof is checked first. When it fails, the grant is not looked at:
	// fosite's PKCE handler deletes a code's PKCE session inside NewAccessRequest, and a client
	// that retries with the server's nonce (RFC 9449 §8) must find its code intact. The client is
	// still authenticated, so an attested client's request gets its audit record (profile §7).
	if plainDPoP(r.Header) {
		var dpopErr error
		if out.dpopProof, dpopErr = s.verifyPlainDPoP(r, ""); dpopErr != nil {
			_, _ = s.authenticateClient(ctx, r, r.PostForm)
			s.recordDecision(ctx, out, nil)
			s.metrics.token(r.PostForm.Get("grant_type"), methodOf(out), "error")
			s.writeOAuthError(rw, r, out, dpopErr)
			return nil
		}
	}

	ar, err := s.provider.NewAccessRequest(ctx, r, storage.NewSession())
	if err != nil {
		if !out.authRan && s.attestationOutcomeDue(ctx, r) {
			// fosite refused the request before it authenticated the client (no grant_type, an
			// empty body): the attestation's outcome is still due on record (profile §7).
			// Authentication here writes nothing but the outcome (replay keys go with grants).
			_, _ = s.authenticateClient(ctx, r, r.PostForm)
		}
		s.recordDecision(ctx, out, nil)
		s.metrics.token(grantOf(ar), methodOf(out), "error")
		if gt := r.PostForm.Get("grant_type"); gt != "" && !known(config.GrantTypes, gt) && errors.Is(err, fosite.ErrInvalidRequest) {
			// fosite answers an unknown grant type with invalid_request; RFC 6749 §5.2 names it.
			err = fosite.ErrUnsupportedGrantType.WithHint("Supported grant types: authorization_code, client_credentials, refresh_token.")
		}
		s.writeOAuthError(rw, r, out, err)
		return nil
	}
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		// A new grant: its id is a time-ordered UUID (RFC 9562 §5.7) instead of fosite's random
		// one, so the request_id index grows at its end instead of dirtying a random page per
		// token (make bench: 14 % fewer WAL pages per token).
		if id, err := uuid.NewV7(); err == nil {
			ar.SetID(id.String())
		}
		// fosite validated the requested scopes and audiences against the client but grants
		// nothing itself (fosite.md §5).
		for _, scope := range ar.GetRequestedScopes() {
			ar.GrantScope(scope)
		}
		for _, aud := range ar.GetRequestedAudience() {
			ar.GrantAudience(aud)
		}
	}

	var resp fosite.AccessResponder
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		// client_credentials consumes nothing stored: mint first (the ES256 signature and the
		// session encoding hold no database connection), then write the replay keys, the token
		// row and the decision together through the group writer.
		mintCtx, rows := storage.WithDeferredWrites(ctx)
		resp, err = s.provider.NewAccessResponse(mintCtx, ar)
		if err == nil {
			err = s.commitGrant(ctx, out, ar.GetID(), rows)
		}
	} else {
		// Codes and refresh tokens are consumed by conditional updates that must commit with
		// the new tokens: one transaction around fosite.
		err = s.store.InTx(ctx, func(ctx context.Context) error {
			if err := s.commitGrant(ctx, out, ar.GetID(), nil); err != nil {
				return err
			}
			var err error
			resp, err = s.provider.NewAccessResponse(ctx, ar)
			return err
		})
	}
	if err != nil {
		var replay *replayError
		if errors.As(err, &replay) {
			if replay.dpop {
				err = fmt.Errorf("%w: %w", dpop.ErrInvalid, replay)
				s.recordDecision(ctx, out, nil)
				s.writeOAuthError(rw, r, out, invalidDPoPProof(err))
				return nil
			}
			out.authErr = replay
			s.recordDecision(ctx, out, replay)
		} else {
			s.recordDecision(ctx, out, nil)
		}
		s.metrics.token(grantOf(ar), methodOf(out), "error")
		s.writeOAuthError(rw, r, out, err)
		return nil
	}
	out.assertionDone = true // written with the grant
	s.metrics.token(grantOf(ar), methodOf(out), "issued")
	if out.auditDue {
		s.metrics.decision(decisionAccepted, "ok")
	}
	s.log.InfoContext(ctx, "token issued", "client_id", ar.GetClient().GetID(), "grant_type", grantOf(ar),
		"grant_id", ar.GetID(), "attester", attesterOf(out), "instance_jkt", instanceOf(out), "dpop_bound", dpopJKT(out) != "")
	if s.verifier.ChallengesEnabled() {
		s.setChallengeHeaders(rw, s.dpopNonceDue(r, out))
	}
	s.provider.WriteAccessResponse(ctx, rw, ar, resp)
	return nil
}

// plainDPoP reports whether a DPoP header is an ordinary RFC 9449 proof rather than the
// attestation proof of combined mode (profile §1: a PoP header means normal mode and the DPoP
// proof is plain; no attestation at all means plain DPoP).
func plainDPoP(h http.Header) bool {
	if len(h.Values(dpop.Header)) == 0 {
		return false
	}
	return len(h.Values(clientauth.HeaderClientAttestationPoP)) > 0 || len(h.Values(clientauth.HeaderClientAttestation)) == 0
}

// verifyPlainDPoP checks an RFC 9449 §4.3 proof for this request; accessToken is set at
// resource-style uses (ath).
func (s *Server) verifyPlainDPoP(r *http.Request, accessToken string) (*dpop.Proof, error) {
	raw, err := dpop.ExtractHeader(r.Header, s.maxTokenBytes())
	if err != nil {
		if errors.Is(err, dpop.ErrMultiple) || errors.Is(err, dpop.ErrTooLarge) {
			return nil, fosite.ErrInvalidRequest.WithHint("Send exactly one DPoP header of at most 16 KiB.").WithWrap(err)
		}
		return nil, invalidDPoPProof(err)
	}
	proof, err := dpop.Verify(raw, dpop.Expect{Method: r.Method, URL: s.endpointURL(r.URL.Path), AccessToken: accessToken}, s.dpopConfig())
	if err != nil {
		return nil, invalidDPoPProof(err)
	}
	if s.cfg.DPoP.NonceRequired {
		// RFC 9449 §8: the nonce is a challenge of this server (stateless, shared by replicas,
		// valid for challenge_ttl), the same value combined mode uses.
		if proof.Nonce == "" {
			return nil, useDPoPNonce(errors.New("the DPoP proof has no nonce"))
		}
		if err := s.verifier.CheckChallenge(proof.Nonce); err != nil {
			return nil, useDPoPNonce(fmt.Errorf("the DPoP nonce is not current: %w", err))
		}
	}
	return proof, nil
}

// useDPoPNonce is the RFC 9449 §8 answer to a proof without a current server nonce; the
// response carries a fresh one in DPoP-Nonce (writeOAuthError).
func useDPoPNonce(err error) *fosite.RFC6749Error {
	return dpopError("use_dpop_nonce", "Authorization server requires nonce in DPoP proof (RFC 9449 §8).", err)
}

// dpopNonceDue reports whether a response should carry a fresh DPoP-Nonce: in combined mode,
// and for plain DPoP requests while dpop.nonce_required is set.
func (s *Server) dpopNonceDue(r *http.Request, out *outcome) bool {
	return combinedMode(out) || (s.cfg.DPoP.NonceRequired && plainDPoP(r.Header))
}

func invalidDPoPProof(err error) *fosite.RFC6749Error {
	return dpopError("invalid_dpop_proof", "The DPoP proof is invalid (RFC 9449 §4.3): "+dpopFailure(err)+".", err)
}

// dpopFailures name the check a proof failed, in fixed words: the description never echoes
// the proof. Checked in order; the first match wins.
var dpopFailures = []struct {
	err  error
	text string
}{
	{dpop.ErrTooLarge, "it is too large"},
	{dpop.ErrMultiple, "more than one proof was sent"},
	{dpop.ErrMalformed, "it is not a compact JWS"},
	{dpop.ErrDuplicateMember, "a JSON member appears twice"},
	{dpop.ErrCrit, "crit is not supported"},
	{dpop.ErrTyp, "typ must be dpop+jwt"},
	{dpop.ErrAlg, "alg is not allowed or does not fit the key"},
	{dpop.ErrJWK, "jwk is not an allowed public key"},
	{dpop.ErrSignature, "the signature does not verify with jwk"},
	{dpop.ErrHTM, "htm is not the request method"},
	{dpop.ErrHTU, "htu is not this endpoint's URL"},
	{dpop.ErrIAT, "iat is outside the accepted window"},
	{dpop.ErrATH, "ath does not match the access token"},
	{dpop.ErrClaims, "jti, htm, htu or iat is missing or not valid"},
	{storage.ErrReplayed, "its jti was used before"},
	{errDPoPJKTMismatch, "dpop_jkt names another key"},
}

var errDPoPJKTMismatch = errors.New("dpop_jkt does not match the DPoP proof key")

func dpopFailure(err error) string {
	for _, f := range dpopFailures {
		if errors.Is(err, f.err) {
			return f.text
		}
	}
	return "see RFC 9449 §4.3"
}

// dpopError is a 400 with one of RFC 9449's error codes (§5, §8).
func dpopError(code, description string, err error) *fosite.RFC6749Error {
	return (&fosite.RFC6749Error{ErrorField: code, DescriptionField: description, CodeField: http.StatusBadRequest}).
		WithWrap(err).WithDebug(err.Error())
}

func (s *Server) dpopConfig() dpop.Config {
	return dpop.Config{
		Algorithms: s.verifier.DPoPAlgorithms(),
		MaxAge:     s.cfg.Attestation.PoPMaxAge,
		ClockSkew:  dpop.Skew(s.cfg.Attestation.ClockSkew),
		MaxBytes:   s.maxTokenBytes(),
	}
}

// dpopReplayExpiry keeps a DPoP jti until its iat can no longer pass the window.
func (s *Server) dpopReplayExpiry(iat time.Time) time.Time {
	exp := iat.Add(s.cfg.Attestation.PoPMaxAge + 2*s.cfg.Attestation.ClockSkew)
	if min := time.Now().Add(s.cfg.Attestation.ClockSkew); exp.Before(min) {
		exp = min
	}
	return exp
}

func (s *Server) maxTokenBytes() int { return 16 << 10 }

func grantOf(ar fosite.AccessRequester) string {
	if ar == nil || len(ar.GetGrantTypes()) != 1 {
		return "unknown"
	}
	return ar.GetGrantTypes()[0]
}

func methodOf(out *outcome) string {
	if out == nil || out.client == nil {
		return "unknown"
	}
	return out.client.TokenEndpointAuthMethod
}

func attesterOf(out *outcome) string {
	if out.verified() {
		return out.attestation.Attester
	}
	return ""
}

func instanceOf(out *outcome) string {
	if out.verified() {
		return out.attestation.InstanceJKT
	}
	return ""
}
