package server

import (
	"context"
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/ory/fosite"

	"github.com/authz/authz/clientauth"
)

// repeatableParams may appear more than once: RFC 8707 resource indicators, and the audience
// list fosite reads from repeated parameters.
var repeatableParams = map[string]bool{"resource": true, "audience": true}

// formSyntaxError checks what RFC 6749 §3.2 asks of a back-channel request (and RFC 7009 §2.1,
// RFC 7662 §2.1, RFC 9126 §2.1 of theirs): an application/x-www-form-urlencoded body that
// parses, with no parameter more than once (§3.1, §3.2: "MUST NOT be included more than
// once"; §5.2 names a repeated parameter invalid_request). Without it fosite read the first of
// two grant_type or client_id values, dropped a pair with bad percent-encoding silently, and
// parsed multipart bodies.
func formSyntaxError(r *http.Request) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return fosite.ErrInvalidRequest.WithHint("The request body must be application/x-www-form-urlencoded (RFC 6749 §3.2).")
	}
	err, _ = r.Context().Value(formParseErrorKey{}).(error)
	if err == nil {
		err = r.ParseForm()
	}
	if err != nil {
		return fosite.ErrInvalidRequest.WithHint("The request body is not a valid form.").WithWrap(err)
	}
	if name := repeatedParam(r.PostForm); name != "" {
		return fosite.ErrInvalidRequest.WithHintf("The parameter %q is sent more than once (RFC 6749 §3.2).", name)
	}
	return nil
}

// formParseErrorKey holds the error of the first parse of a request's form (parseForm).
type formParseErrorKey struct{}

// parseForm parses the form of a back-channel request before anything else reads it (the rate
// limiter reads client_id): net/http parses a form once and returns its error only to the
// first caller, which would let a malformed pair be dropped silently.
func parseForm(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if err := r.ParseForm(); err != nil {
			c.SetRequest(r.WithContext(context.WithValue(r.Context(), formParseErrorKey{}, err)))
		}
		return next(c)
	}
}

// refuseForm answers a request whose form is refused before the endpoint handles it. When
// profile §7 wants a record (attestation sent, or a client registered for it) the client is
// authenticated first all the same, so the attestation's outcome is on record and a failed
// authentication answers as it would anyway.
func (s *Server) refuseForm(ctx context.Context, rw http.ResponseWriter, r *http.Request, out *outcome, formErr error) {
	if s.attestationOutcomeDue(ctx, r) {
		_, _ = s.authenticateClient(ctx, r, r.PostForm)
		s.recordDecision(ctx, out, nil)
	}
	s.writeOAuthError(rw, r, out, formErr)
}

// attestationOutcomeDue reports whether profile §7 wants a decision record for a request that
// is refused before client authentication: it carries attestation, or the client it names is
// registered for an attestation method or requires attestation.
func (s *Server) attestationOutcomeDue(ctx context.Context, r *http.Request) bool {
	if clientauth.HasAttestation(r.Header) {
		return true
	}
	id := claimedClientID(r, r.PostForm)
	if id == "" {
		return false
	}
	c, err := s.clients.get(ctx, s.store, id, s.defaultAudience())
	return err == nil && (isAttestationMethod(c.TokenEndpointAuthMethod) || c.RequireAttestation)
}
