package server

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/authz/authz/clientauth"
	"github.com/authz/authz/dpop"
)

// cors lets configured browser origins call the back-channel endpoints with the attestation and
// DPoP request headers, and read the challenge and DPoP-Nonce response headers (draft digest §5
// "Browser clients"). Other origins get no CORS headers at all.
func (s *Server) cors(next echo.HandlerFunc) echo.HandlerFunc {
	allowed := map[string]bool{}
	for _, o := range s.cfg.HTTP.CORSAllowedOrigins {
		allowed[o] = true
	}
	allowHeaders := strings.Join([]string{"Authorization", "Content-Type", clientauth.HeaderClientAttestation, clientauth.HeaderClientAttestationPoP, dpop.Header}, ", ")
	exposeHeaders := strings.Join([]string{clientauth.HeaderClientAttestationChallenge, dpop.HeaderNonce, "WWW-Authenticate", "Retry-After"}, ", ")
	return func(c echo.Context) error {
		origin := c.Request().Header.Get("Origin")
		h := c.Response().Header()
		h.Add("Vary", "Origin")
		if origin == "" || !allowed[origin] {
			if c.Request().Method == http.MethodOptions && origin != "" {
				return c.NoContent(http.StatusForbidden)
			}
			return next(c)
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", exposeHeaders)
		if c.Request().Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "POST")
			h.Set("Access-Control-Allow-Headers", allowHeaders)
			h.Set("Access-Control-Max-Age", "600")
			return c.NoContent(http.StatusNoContent)
		}
		return next(c)
	}
}
