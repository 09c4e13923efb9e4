package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/authz/authz/clientauth"
)

// maxBodyBytes bounds every request body (forms, JSON); fosite itself parses at most 1 MiB.
// The OAuth endpoints take far less: their largest legitimate parameter is a client assertion
// or a token of a few KiB (maxOAuthBodyBytes), and PAR stores what it is sent (maxPARFormBytes
// in handlePAR).
const (
	maxBodyBytes      = "1M"
	maxOAuthBodyBytes = "64K"
)

// routes is the one route table of interface.md "HTTP endpoints".
func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.httpError
	e.Use(s.requestContext)
	e.Use(middleware.BodyLimit(maxBodyBytes))
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.log.ErrorContext(c.Request().Context(), "panic recovered", "error", err, "stack", string(stack))
			return err
		},
	}))

	// RFC 9110 §9.3.2: HEAD wherever GET (net/http sends the headers without the body).
	get := func(path string, h echo.HandlerFunc) {
		e.GET(path, h)
		e.HEAD(path, h)
	}
	get("/.well-known/oauth-authorization-server", s.handleMetadata)
	if u, err := url.Parse(s.cfg.Issuer); err == nil && u.Path != "" {
		// RFC 8414 §3.1: for an issuer with a path, the well-known segment goes between host
		// and path (the other endpoints sit under the issuer, behind a proxy that strips it).
		get("/.well-known/oauth-authorization-server"+u.EscapedPath(), s.handleMetadata)
	}
	get("/jwks.json", s.handleJWKS)
	oauthBody := middleware.BodyLimit(maxOAuthBodyBytes)
	limited := []echo.MiddlewareFunc{s.cors, oauthBody, parseForm, s.rateLimit}
	backChannel := []echo.MiddlewareFunc{s.cors, oauthBody, parseForm}
	e.POST("/oauth2/token", s.handleToken, limited...)
	e.POST("/oauth2/par", s.handlePAR, limited...)
	e.POST("/oauth2/challenge", s.handleChallenge, limited...)
	e.POST("/oauth2/introspect", s.handleIntrospect, backChannel...)
	e.POST("/oauth2/revoke", s.handleRevoke, backChannel...)
	for _, p := range []string{"/oauth2/token", "/oauth2/par", "/oauth2/challenge", "/oauth2/introspect", "/oauth2/revoke"} {
		e.OPTIONS(p, func(echo.Context) error { return nil }, backChannel...)
	}
	e.GET("/oauth2/challenge", methodNotAllowed(http.MethodPost))
	get("/oauth2/authorize", s.handleAuthorize)
	e.POST("/oauth2/authorize", s.handleAuthorize, oauthBody)
	get("/healthz", s.handleHealth)
	get("/readyz", s.handleReady)
	get("/metrics", echo.WrapHandler(s.metrics.handler()))
	s.mountAdmin(e)
	return e
}

// requestContext gives every request an id (X-Request-Id, echoed back), a logger carrying it,
// security headers, and a metrics observation by route and status.
func (s *Server) requestContext(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		r := c.Request()
		id := r.Header.Get(echo.HeaderXRequestID)
		if id == "" || len(id) > 64 {
			id = newRequestID()
		}
		h := c.Response().Header()
		h.Set(echo.HeaderXRequestID, id)
		h.Set("X-Content-Type-Options", "nosniff")
		ctx := withLogAttrs(r.Context(), slog.String("request_id", id))
		c.SetRequest(r.WithContext(ctx))
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		status := c.Response().Status
		s.metrics.request(route, r.Method, status, time.Since(start))
		s.log.DebugContext(ctx, "request", "method", r.Method, "path", r.URL.Path, "status", status, "duration", time.Since(start))
		return nil
	}
}

// authenticatesClients reports whether path is an endpoint that authenticates clients
// (profile §7: token, PAR, introspection, revocation).
func authenticatesClients(path string) bool {
	switch path {
	case "/oauth2/token", "/oauth2/par", "/oauth2/introspect", "/oauth2/revoke":
		return true
	}
	return false
}

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// httpError renders echo's own errors (404, 405, 413) as RFC 6749-style JSON.
func (s *Server) httpError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, code := http.StatusInternalServerError, "server_error"
	var he *echo.HTTPError
	if errors.As(err, &he) {
		status = he.Code
		switch status {
		case http.StatusNotFound:
			code = "not_found"
		case http.StatusMethodNotAllowed:
			code = "method_not_allowed"
		case http.StatusRequestEntityTooLarge:
			code = "invalid_request"
		default:
			if status < 500 {
				code = "invalid_request"
			}
		}
	}
	if status >= 500 {
		s.log.ErrorContext(c.Request().Context(), "internal error", "path", c.Request().URL.Path, "error", err)
	}
	// Profile §5: every token and PAR response carries a fresh challenge, these included
	// (a body over the limit is refused before the handler runs).
	r := c.Request()
	if p := r.URL.Path; r.Method == http.MethodPost && (p == "/oauth2/token" || p == "/oauth2/par") {
		s.setChallengeHeaders(c.Response(), false)
	}
	// Profile §7: a request carrying attestation leaves one record, also when its body was too
	// large to be read (what the headers tell, unverified, and reason request_too_large).
	if status == http.StatusRequestEntityTooLarge && r.Method == http.MethodPost && authenticatesClients(r.URL.Path) && clientauth.HasAttestation(r.Header) {
		ctx, out := withOutcome(r.Context(), r.URL.Path)
		out.auditDue = true
		out.attestation = clientauth.Unverified(r.Header)
		out.claimedClientID = out.attestation.ClientID
		out.refusedAs = "request_too_large"
		s.recordDecision(ctx, out, nil)
	}
	writeJSON(c.Response(), status, errorBody{Error: code, Description: http.StatusText(status)})
}

func methodNotAllowed(allow string) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Allow", allow)
		writeJSON(c.Response(), http.StatusMethodNotAllowed, errorBody{Error: "method_not_allowed", Description: "Use " + allow + "."})
		return nil
	}
}
