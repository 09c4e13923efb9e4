package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/authz/authz/internal/strictjson"
	"github.com/authz/authz/storage"
)

// The admin JSON API (interface.md "HTTP endpoints"; issue 5): attesters, clients, audit
// decisions, client instance keys and the admin change log under /admin/, authenticated with
// "Authorization: Bearer <admin.token>" (RFC 6750 §2.1), and the web console under /admin/ui/.
// With an empty admin.token nothing under /admin/ exists (404).

// Admin actors recorded in the change log.
const (
	actorAPI     = "api"
	actorConsole = "console"
)

// adminRealm names the protection space in WWW-Authenticate (RFC 6750 §3).
const adminRealm = "authz-admin"

// queryTokenParams are query parameters that carry a bearer token in a URL (RFC 6750 §2.3 and
// common variants); any of them on an admin request is refused, as is any query value equal to
// the admin token.
var queryTokenParams = []string{"access_token", "token", "admin_token", "bearer", "auth", "authorization"}

// mountAdmin registers the admin API and the console (issue 5). With no admin.token configured
// no route is registered, so every /admin/ path answers 404.
func (s *Server) mountAdmin(e *echo.Echo) {
	if s.cfg.Admin.Token == "" {
		return
	}
	api := []echo.MiddlewareFunc{s.adminAuth, s.forgetClientsOnWrite}
	e.GET("/admin/attesters", s.adminListAttesters, api...)
	e.POST("/admin/attesters", s.adminCreateAttester, api...)
	e.GET("/admin/attesters/:id", s.adminGetAttester, api...)
	e.PUT("/admin/attesters/:id", s.adminPutAttester, api...)
	e.PATCH("/admin/attesters/:id", s.adminPatchAttester, api...)
	e.DELETE("/admin/attesters/:id", s.adminDeleteAttester, api...)

	e.GET("/admin/clients", s.adminListClients, api...)
	e.POST("/admin/clients", s.adminCreateClient, api...)
	e.GET("/admin/clients/:id", s.adminGetClient, api...)
	e.PUT("/admin/clients/:id", s.adminPutClient, api...)
	e.PATCH("/admin/clients/:id", s.adminPatchClient, api...)
	e.DELETE("/admin/clients/:id", s.adminDeleteClient, api...)
	e.POST("/admin/clients/:id/secret", s.adminRotateClientSecret, api...)

	// Profiling (issue 8), behind the admin token:
	//   curl -H "Authorization: Bearer $TOKEN" -o cpu.pprof "$ISSUER/debug/pprof/profile?seconds=20"
	// (seconds below http.Server's 30 s WriteTimeout), then go tool pprof -top cpu.pprof.
	e.GET("/debug/pprof/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)), api...)
	e.GET("/debug/pprof/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)), api...)
	e.GET("/debug/pprof/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)), api...)
	e.GET("/debug/pprof/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)), api...)
	e.GET("/debug/pprof/*", echo.WrapHandler(http.HandlerFunc(pprof.Index)), api...)

	e.GET("/admin/decisions", s.adminListDecisions, api...)
	e.GET("/admin/decisions/export", s.adminExportDecisions, api...)

	e.GET("/admin/instances", s.adminListInstances, api...)
	e.GET("/admin/instances/:jkt", s.adminGetInstance, api...)
	e.POST("/admin/instances/:jkt/revoke", s.adminRevokeInstance, api...)

	e.GET("/admin/changes", s.adminListChanges, api...)

	s.mountConsole(e)
}

// adminAuth authenticates an admin API request: the Bearer token of the Authorization header
// (RFC 6750 §2.1) compared with admin.token in constant time. A token in the URL is refused
// outright (RFC 6750 §2.3 and §5.3: URLs end up in logs and histories), whatever its value.
func (s *Server) adminAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if s.tokenInQuery(r.URL.Query()) {
			s.log.WarnContext(r.Context(), "admin request refused: token in the query string", "path", r.URL.Path, "remote", remoteOf(r))
			writeJSON(c.Response(), http.StatusBadRequest, errorBody{Error: "invalid_request",
				Description: "Send the admin token in the Authorization header (Bearer); a token in the URL is refused."})
			return nil
		}
		values := r.Header.Values(echo.HeaderAuthorization)
		if len(values) == 0 {
			return s.adminUnauthorized(c, "", "The admin API needs 'Authorization: Bearer <admin token>'.")
		}
		scheme, token, _ := strings.Cut(values[0], " ")
		switch {
		case len(values) == 1 && !strings.EqualFold(strings.TrimSpace(scheme), "Bearer"):
			// RFC 6750 §3: another authentication scheme gets the challenge without an error code.
			return s.adminUnauthorized(c, "", "The admin API needs 'Authorization: Bearer <admin token>'.")
		case len(values) != 1 || strings.TrimSpace(token) == "":
			// RFC 6750 §3.1: a malformed request is invalid_request, answered with 400.
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="`+adminRealm+`", error="invalid_request"`)
			writeJSON(c.Response(), http.StatusBadRequest, errorBody{Error: "invalid_request", Description: "The Authorization header must be exactly one 'Bearer <admin token>'."})
			return nil
		}
		if wait := s.adminThrottled(r); wait > 0 {
			return adminTooManyFailures(c, wait)
		}
		if !s.adminTokenMatches(strings.TrimSpace(token)) {
			s.adminFailed(r)
			s.log.WarnContext(r.Context(), "admin request refused: wrong token", "path", r.URL.Path, "remote", remoteOf(r))
			return s.adminUnauthorized(c, "invalid_token", "The admin token is not valid.")
		}
		return next(c)
	}
}

// Failed admin authentications (API and console sign-in) are limited per remote address: ten at
// once, then one a second. While an address is over the limit its attempts are not checked at
// all, so guessing the token from one address runs at one guess a second.
const (
	adminFailureRate  = 1.0
	adminFailureBurst = 10
)

// adminThrottled reports how long r's address must wait before its admin token is checked.
func (s *Server) adminThrottled(r *http.Request) time.Duration {
	return s.adminFailures.wait(connAddr(r), time.Now())
}

// adminFailed counts a failed admin authentication of r's address.
func (s *Server) adminFailed(r *http.Request) {
	s.adminFailures.reserve(connAddr(r), time.Now())
}

// adminTooManyFailures answers 429 with Retry-After (RFC 6585 §4).
func adminTooManyFailures(c echo.Context, wait time.Duration) error {
	c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	writeJSON(c.Response(), http.StatusTooManyRequests, errorBody{Error: "temporarily_unavailable",
		Description: "Too many failed admin authentications from this address; wait and retry."})
	return nil
}

// adminTokenMatches compares candidate with admin.token in constant time (over SHA-256
// digests, so neither the length nor a prefix of the token leaks through timing).
func (s *Server) adminTokenMatches(candidate string) bool {
	want := sha256.Sum256([]byte(s.cfg.Admin.Token))
	got := sha256.Sum256([]byte(candidate))
	return s.cfg.Admin.Token != "" && subtle.ConstantTimeCompare(want[:], got[:]) == 1
}

// tokenInQuery reports whether the query carries a bearer-token parameter or the admin token.
func (s *Server) tokenInQuery(q url.Values) bool {
	for name, values := range q {
		for _, p := range queryTokenParams {
			if strings.EqualFold(name, p) {
				return true
			}
		}
		for _, v := range values {
			if s.adminTokenMatches(v) {
				return true
			}
		}
	}
	return false
}

// adminUnauthorized answers 401 with an RFC 6750 §3 challenge; code is omitted from the
// challenge when the request carried no credentials (§3.1).
func (s *Server) adminUnauthorized(c echo.Context, code, description string) error {
	challenge := `Bearer realm="` + adminRealm + `"`
	body := errorBody{Error: "unauthorized", Description: description}
	if code != "" {
		challenge += `, error="` + code + `"`
		body.Error = code
	}
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, challenge)
	writeJSON(c.Response(), http.StatusUnauthorized, body)
	return nil
}

// problemsBody is the 400 answer to a refused admin write: every problem, listed.
type problemsBody struct {
	Error       string   `json:"error"`
	Description string   `json:"error_description"`
	Problems    []string `json:"problems"`
}

func writeProblems(c echo.Context, problems []string) error {
	n := len(problems)
	desc := "1 problem; see problems."
	if n != 1 {
		desc = strconv.Itoa(n) + " problems; see problems."
	}
	writeJSON(c.Response(), http.StatusBadRequest, problemsBody{Error: "invalid_request", Description: desc, Problems: problems})
	return nil
}

func adminNotFound(c echo.Context, what string) error {
	writeJSON(c.Response(), http.StatusNotFound, errorBody{Error: "not_found", Description: what + " does not exist."})
	return nil
}

func adminConflict(c echo.Context, what string) error {
	writeJSON(c.Response(), http.StatusConflict, errorBody{Error: "conflict", Description: what + " already exists; use PUT or PATCH to change it."})
	return nil
}

// adminStoreError answers a storage failure: 404 for a miss, 500 otherwise (logged).
func (s *Server) adminStoreError(c echo.Context, what string, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return adminNotFound(c, what)
	}
	s.log.ErrorContext(c.Request().Context(), "admin: storage failure", "what", what, "error", err)
	writeJSON(c.Response(), http.StatusInternalServerError, errorBody{Error: "server_error", Description: "The database failed; nothing was changed."})
	return nil
}

// pathParam returns a path parameter, unescaped (ids may hold any character). echo routes on
// the request's RawPath when net/http kept one (the path had escapes such as %2F that decoding
// would lose) and then hands out escaped parameters; otherwise it routes on the decoded Path,
// and decoding again would turn the id "pct%41" into "pctA".
func pathParam(c echo.Context, name string) string {
	v := c.Param(name)
	if c.Request().URL.RawPath == "" {
		return v
	}
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

// decodeAdminJSON strictly decodes a JSON request body into v: the content type must be JSON,
// unknown members and members named twice are refused (encoding/json would keep the last of
// two client_id members), and there must be exactly one value. Problems are returned in plain
// words (the caller lists them with its own).
func decodeAdminJSON(r *http.Request, v any) []string {
	if mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType)); err != nil || mt != echo.MIMEApplicationJSON {
		return []string{"the request body must be JSON (Content-Type: application/json)"}
	}
	body, err := io.ReadAll(r.Body) // bounded by the body limit of every route
	if err != nil {
		return []string{"the request body could not be read"}
	}
	switch err := strictjson.Check(body); {
	case errors.Is(err, strictjson.ErrDuplicateMember):
		return []string{"the request body names a member twice"}
	case errors.Is(err, strictjson.ErrTooDeep):
		return []string{"the request body is nested too deeply"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return []string{jsonProblem(err)}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return []string{"the request body must hold exactly one JSON object"}
	}
	return nil
}

// jsonProblem turns a decoding error into a sentence naming the member.
func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return "the request body must be a JSON object"
		}
		return fmt.Sprintf("%s: must be %s, not a JSON %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("the request body is not valid JSON (at byte %d)", syntaxErr.Offset)
	case errors.Is(err, io.EOF):
		return "the request body is empty; send a JSON object"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown member " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "the request body is not valid JSON"
}

func jsonKind(goKind string) string {
	switch goKind {
	case "bool":
		return "a boolean"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	case "int", "int64", "float64":
		return "a number"
	}
	return "another type"
}

// adminActor is who made a change: the channel, the remote address and the request id.
type adminActor struct {
	Actor, Remote, RequestID string
}

func (s *Server) actorOf(c echo.Context, actor string) adminActor {
	return adminActor{Actor: actor, Remote: remoteOf(c.Request()), RequestID: c.Response().Header().Get(echo.HeaderXRequestID)}
}

// recordChange writes the admin change record inside ctx's transaction (the change and its
// record commit together).
func (s *Server) recordChange(ctx context.Context, who adminActor, action, resource, id, detail string) error {
	return s.store.RecordAdminChange(ctx, &storage.AdminChange{
		Actor: who.Actor, Remote: who.Remote, RequestID: who.RequestID,
		Action: action, Resource: resource, ResourceID: id, Detail: detail,
	})
}

// reloadTrust makes this replica apply an attester or instance change at once; the others
// follow through the generation poll (trustPollInterval). A failure is logged: the change is
// committed and the next poll retries.
func (s *Server) reloadTrust(ctx context.Context) {
	if err := s.trust.reload(ctx, true); err != nil {
		s.log.ErrorContext(ctx, "admin: reloading the trust set failed; the next poll retries", "error", err)
	}
}

// parseCursor reads an opaque pagination cursor (a record id).
func parseCursor(v string) (int64, bool) {
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil && n > 0
}
