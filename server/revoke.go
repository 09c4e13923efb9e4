package server

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

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
