package server

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/ory/fosite"
)

var errTokenOfAnotherClient = &fosite.RFC6749Error{
	ErrorField:       "unauthorized_client",
	DescriptionField: "The token was not issued to the authenticated client (RFC 7009 §2.1).",
	CodeField:        http.StatusBadRequest,
}

// handleRevoke is the RFC 7009 endpoint. fosite authenticates through our strategy, but its
// writer answers 200 to every error other than invalid_request and invalid_client (fosite.md
// §1.4), which would hide use_attestation_challenge and unauthorized_client; errors are written
// here instead. Unknown or already invalid tokens still answer 200 (RFC 7009 §2.2).
func (s *Server) handleRevoke(c echo.Context) error {
	r, rw := c.Request(), c.Response()
	ctx, out := withOutcome(r.Context(), "/oauth2/revoke")
	out.replayNow = true
	if err := formSyntaxError(r); err != nil {
		s.refuseForm(ctx, rw, r, out, err)
		return nil
	}
	err := s.provider.NewRevocationRequest(ctx, r)
	s.recordDecision(ctx, out, nil)
	if errors.Is(err, fosite.ErrUnauthorizedClient) {
		// fosite's only unauthorized_client here: the token belongs to another client. RFC 7009
		// §2.1 has the request refused; its stock description speaks of grant types.
		err = errTokenOfAnotherClient
	}
	if err == nil && r.PostForm.Get("token") == "" {
		// RFC 7009 §2.1: token is REQUIRED. Checked after client authentication, so an attested
		// request still gets its audit record; fosite found nothing to revoke.
		err = fosite.ErrInvalidRequest.WithHint("The 'token' parameter is required.")
	}
	if err != nil {
		s.writeOAuthError(rw, r, out, err)
		return nil
	}
	h := rw.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	rw.WriteHeader(http.StatusOK)
	return nil
}
