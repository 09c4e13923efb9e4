package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/authz/authz/storage"
	"github.com/authz/authz/templates/console"
)

// The admin web console (issue 5) at /admin/ui/: server-rendered pages that work without
// JavaScript. Signing in takes the admin token once and sets a session cookie; every form
// carries a CSRF token bound to the session, and every POST is also checked against the Origin
// header. Pages are never framed, cached or given a referrer, and a strict
// Content-Security-Policy allows no script at all.

const (
	consoleCookie      = "authz_admin"       // the session
	consoleLoginCookie = "authz_admin_login" // double-submit CSRF token of the sign-in form
	consoleFlashCookie = "authz_admin_flash" // one notice carried across a redirect
	consolePath        = "/admin/ui"
	consoleSessionTTL  = 8 * time.Hour
	consoleCSRFKey     = "console_csrf" // echo context key
	consoleSIDKey      = "console_sid"  // echo context key
	consolePageSize    = 50
	dashboardWindow    = 24 * time.Hour
)

// consoleCSP allows inline styles (the pages carry their own CSS) and nothing else.
const consoleCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// mountConsole registers the console's routes (called by mountAdmin, only with an admin token).
func (s *Server) mountConsole(e *echo.Echo) {
	page := []echo.MiddlewareFunc{s.consoleHeaders}
	session := []echo.MiddlewareFunc{s.consoleHeaders, s.consoleSession}
	e.GET(consolePath, func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, consolePath+"/") }, page...)
	e.GET(consolePath+"/login", s.consoleLoginPage, page...)
	e.POST(consolePath+"/login", s.consoleLogin, page...)
	e.POST(consolePath+"/logout", s.consoleLogout, session...)
	e.GET(consolePath+"/", s.consoleDashboard, session...)
	e.GET(consolePath+"/attesters", s.consoleAttesters, session...)
	e.POST(consolePath+"/attesters", s.consoleAddAttester, session...)
	e.POST(consolePath+"/attesters/:id/:action", s.consoleAttesterAction, session...)
	e.GET(consolePath+"/clients", s.consoleClients, session...)
	e.POST(consolePath+"/clients", s.consoleAddClient, session...)
	e.POST(consolePath+"/clients/:id/delete", s.consoleDeleteClient, session...)
	e.GET(consolePath+"/decisions", s.consoleDecisions, session...)
	e.GET(consolePath+"/decisions/export", s.consoleExport, session...)
	e.GET(consolePath+"/instances", s.consoleInstances, session...)
	e.GET(consolePath+"/instances/:jkt", s.consoleInstance, session...)
	e.POST(consolePath+"/instances/:jkt/revoke", s.consoleRevoke, session...)
	e.GET(consolePath+"/changes", s.consoleChanges, session...)
}

// consoleHeaders sets the security headers of every console page and refuses a token in the URL.
func (s *Server) consoleHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", consoleCSP)
		h.Set("Cache-Control", "no-store")
		// same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on form
		// posts, and the Origin check below needs the real one. Nothing leaves for other sites.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if s.tokenInQuery(c.Request().URL.Query()) {
			return s.consoleError(c, http.StatusBadRequest, "Token in the address refused",
				"Never put the admin token in a URL: it ends up in logs and browser history. Sign in with the form instead, and consider rotating the token.")
		}
		return next(c)
	}
}

// consoleKey derives the console's MAC key from the shared cookie secret and the admin token,
// so rotating admin.token ends every console session.
func (s *Server) consoleKey() []byte {
	tokenHash := sha256.Sum256([]byte(s.cfg.Admin.Token))
	m := hmac.New(sha256.New, s.cookieSecret)
	m.Write([]byte("admin-console\x00"))
	m.Write(tokenHash[:])
	return m.Sum(nil)
}

func (s *Server) consoleMAC(purpose, payload string) string {
	m := hmac.New(sha256.New, s.consoleKey())
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) consoleCookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: consolePath, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: s.secureCookies(), MaxAge: maxAge}
}

// newConsoleSession returns a session cookie value: sid.expiry.mac.
func (s *Server) newConsoleSession(now time.Time) string {
	payload := randomToken() + "." + strconv.FormatInt(now.Add(consoleSessionTTL).Unix(), 10)
	return payload + "." + s.consoleMAC("session", payload)
}

// consoleSID returns the session id of a valid, unexpired session cookie, or "".
func (s *Server) consoleSID(r *http.Request, now time.Time) string {
	ck, err := r.Cookie(consoleCookie)
	if err != nil || len(ck.Value) > 256 {
		return ""
	}
	payload, mac, ok := cutLast(ck.Value, '.')
	if !ok || !hmac.Equal([]byte(mac), []byte(s.consoleMAC("session", payload))) {
		return ""
	}
	sid, expStr, ok := strings.Cut(payload, ".")
	exp, err := strconv.ParseInt(expStr, 10, 64)
	if !ok || err != nil || now.Unix() > exp {
		return ""
	}
	return sid
}

func cutLast(s string, sep byte) (string, string, bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// consoleSession admits a request with a valid session; a POST must also carry the session's
// CSRF token and, when the browser sends one, an Origin of this server.
func (s *Server) consoleSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		sid := s.consoleSID(r, time.Now())
		if sid == "" {
			if r.Method == http.MethodGet {
				return c.Redirect(http.StatusSeeOther, consolePath+"/login")
			}
			return s.consoleError(c, http.StatusForbidden, "Signed out", "Your console session expired. Sign in again.")
		}
		// A session signed out on any replica stays signed out (the replay table is shared).
		if signedOut, err := s.store.ReplayRecorded(r.Context(), consoleLogoutKey(sid)); err != nil {
			return s.consoleError(c, http.StatusServiceUnavailable, "Database unavailable", "The console cannot check your session right now. Try again shortly.")
		} else if signedOut {
			c.SetCookie(s.consoleCookie(consoleCookie, "", -1))
			if r.Method == http.MethodGet {
				return c.Redirect(http.StatusSeeOther, consolePath+"/login")
			}
			return s.consoleError(c, http.StatusForbidden, "Signed out", "This console session was signed out. Sign in again.")
		}
		csrf := s.consoleMAC("csrf", sid)
		c.Set(consoleCSRFKey, csrf)
		c.Set(consoleSIDKey, sid)
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil || subtle.ConstantTimeCompare([]byte(r.PostForm.Get(csrfField)), []byte(csrf)) != 1 || !s.sameOrigin(r) {
				s.log.WarnContext(r.Context(), "console: form refused (CSRF)", "path", r.URL.Path, "remote", remoteOf(r))
				return s.consoleError(c, http.StatusForbidden, "Form refused", "The form expired or did not come from this console. Go back, reload the page and try again.")
			}
		}
		return next(c)
	}
}

// sameOrigin checks the Origin header of a POST, when present, against the issuer's origin and
// the origin the request was addressed to.
func (s *Server) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		// Absent, or hidden by a privacy setting: the CSRF token (bound to the session, in a
		// SameSite=Strict cookie) decides alone.
		return true
	}
	if iss, err := url.Parse(s.cfg.Issuer); err == nil && origin == iss.Scheme+"://"+iss.Host {
		return true
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return origin == scheme+"://"+r.Host
}

// remoteOf is the client address for the change log: the connection's address, plus the
// X-Forwarded-For header when a proxy set one (recorded, not trusted).
func remoteOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		if len(xff) > 100 {
			xff = xff[:100]
		}
		host += " (x-forwarded-for " + xff + ")"
	}
	return host
}

func (s *Server) consoleActor(c echo.Context) adminActor { return s.actorOf(c, actorConsole) }

// common fills the parts every signed-in page shows, consuming a pending flash notice.
func (s *Server) common(c echo.Context, title, nav string) console.Common {
	csrf, _ := c.Get(consoleCSRFKey).(string)
	cm := console.Common{Title: title, Nav: nav, CSRF: csrf, Issuer: s.cfg.Issuer}
	if ck, err := c.Cookie(consoleFlashCookie); err == nil {
		if payload, mac, ok := cutLast(ck.Value, '.'); ok && hmac.Equal([]byte(mac), []byte(s.consoleMAC("flash", payload))) {
			if msg, err := base64.RawURLEncoding.DecodeString(payload); err == nil {
				cm.Notice = string(msg)
			}
		}
		c.SetCookie(s.consoleCookie(consoleFlashCookie, "", -1))
	}
	return cm
}

// redirectWithNotice answers a successful form with 303 to target, carrying notice in a signed
// cookie (Post/Redirect/Get: reloading the page does not resubmit the form).
func (s *Server) redirectWithNotice(c echo.Context, target, notice string) error {
	payload := base64.RawURLEncoding.EncodeToString([]byte(notice))
	c.SetCookie(s.consoleCookie(consoleFlashCookie, payload+"."+s.consoleMAC("flash", payload), 60))
	return c.Redirect(http.StatusSeeOther, target)
}

func (s *Server) consoleError(c echo.Context, status int, title, msg string) error {
	csrf, _ := c.Get(consoleCSRFKey).(string)
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(status)
	return console.RenderError(c.Response(), console.ErrorPage{
		Common: console.Common{Title: title, CSRF: csrf}, Status: status, Message: msg,
	})
}

func (s *Server) consoleStoreError(c echo.Context, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return s.consoleError(c, http.StatusNotFound, "Not found", "That record does not exist (any more).")
	}
	s.log.ErrorContext(c.Request().Context(), "console: storage failure", "path", c.Request().URL.Path, "error", err)
	return s.consoleError(c, http.StatusInternalServerError, "Something failed", "The database did not answer as expected; nothing was changed. Try again.")
}

// html sets the content type and status of a page about to be rendered.
func html(c echo.Context, status int) http.ResponseWriter {
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(status)
	return c.Response()
}

func (s *Server) consoleLoginPage(c echo.Context) error {
	if s.consoleSID(c.Request(), time.Now()) != "" {
		return c.Redirect(http.StatusSeeOther, consolePath+"/")
	}
	return s.renderLogin(c, http.StatusOK, "")
}

func (s *Server) renderLogin(c echo.Context, status int, msg string) error {
	token := randomToken()
	c.SetCookie(s.consoleCookie(consoleLoginCookie, token, 600))
	return console.RenderLogin(html(c, status), console.LoginPage{Action: consolePath + "/login", CSRF: token, Issuer: s.cfg.Issuer, Error: msg})
}

// consoleLogin checks the admin token (constant time) and starts a session.
func (s *Server) consoleLogin(c echo.Context) error {
	r := c.Request()
	ck, err := r.Cookie(consoleLoginCookie)
	if perr := r.ParseForm(); perr != nil || err != nil || ck.Value == "" ||
		subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostForm.Get(csrfField))) != 1 || !s.sameOrigin(r) {
		return s.renderLogin(c, http.StatusForbidden, "The sign-in form expired. Try again.")
	}
	if wait := s.adminThrottled(r); wait > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		return s.renderLogin(c, http.StatusTooManyRequests, "Too many failed sign-ins from this address. Wait a few seconds and try again.")
	}
	if !s.adminTokenMatches(r.PostForm.Get("token")) {
		s.adminFailed(r)
		s.log.WarnContext(r.Context(), "console: sign-in refused: wrong token", "remote", remoteOf(r))
		return s.renderLogin(c, http.StatusUnauthorized, "That is not the admin token of this server.")
	}
	c.SetCookie(s.consoleCookie(consoleLoginCookie, "", -1))
	c.SetCookie(s.consoleCookie(consoleCookie, s.newConsoleSession(time.Now()), int(consoleSessionTTL.Seconds())))
	s.log.InfoContext(r.Context(), "console: signed in", "remote", remoteOf(r))
	return c.Redirect(http.StatusSeeOther, consolePath+"/")
}

// consoleLogoutKey is the replay-table key that marks a console session signed out.
func consoleLogoutKey(sid string) string { return "console-logout:" + sid }

// consoleLogout ends the session for good: the cookie is stateless (its MAC is the proof), so
// clearing it in this browser is not enough against a copy of it; the session id is recorded
// as signed out until the session would have expired.
func (s *Server) consoleLogout(c echo.Context) error {
	if sid, _ := c.Get(consoleSIDKey).(string); sid != "" {
		if err := s.store.MarkReplay(c.Request().Context(), consoleLogoutKey(sid), time.Now().Add(consoleSessionTTL)); err != nil && !errors.Is(err, storage.ErrReplayed) {
			s.log.ErrorContext(c.Request().Context(), "console: recording the sign-out failed", "error", err)
			return s.consoleError(c, http.StatusServiceUnavailable, "Database unavailable", "The sign-out could not be recorded. Try again shortly.")
		}
	}
	c.SetCookie(s.consoleCookie(consoleCookie, "", -1))
	return c.Redirect(http.StatusSeeOther, consolePath+"/login")
}

// instanceURL links to an instance page when jkt is a thumbprint.
func instanceURL(jkt string) string {
	if !validJKT(jkt) {
		return ""
	}
	return consolePath + "/instances/" + jkt
}

func decisionsURL(params ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		if params[i+1] != "" {
			q.Set(params[i], params[i+1])
		}
	}
	if len(q) == 0 {
		return consolePath + "/decisions"
	}
	return consolePath + "/decisions?" + q.Encode()
}

func decisionRows(list []storage.Decision) []console.DecisionRow {
	rows := make([]console.DecisionRow, 0, len(list))
	for _, d := range list {
		row := console.DecisionRow{
			Time: d.Time, Endpoint: d.Endpoint, ClientID: d.ClientID, VerifiedClientID: d.VerifiedClientID,
			Attester: d.Attester, Resolution: d.Resolution, InstanceJKT: d.InstanceJKT, InstanceURL: instanceURL(d.InstanceJKT),
			PoPMethod: d.PoPMethod, Challenge: d.Challenge, Decision: d.Decision, Reason: d.Reason,
		}
		if d.Attester != "" {
			row.AttesterURL = decisionsURL("attester", d.Attester)
		}
		if d.ClientID != "" {
			row.ClientFilterURL = decisionsURL("client_id", d.ClientID)
		}
		rows = append(rows, row)
	}
	return rows
}

func changeRows(list []storage.AdminChange) []console.ChangeRow {
	rows := make([]console.ChangeRow, 0, len(list))
	for _, ch := range list {
		row := console.ChangeRow{Time: ch.Time, Actor: ch.Actor, Remote: ch.Remote, Action: ch.Action,
			Resource: ch.Resource, ResourceID: ch.ResourceID, Detail: ch.Detail}
		switch ch.Resource {
		case "instance":
			row.Target = instanceURL(ch.ResourceID)
		case "attester":
			row.Target = decisionsURL("attester", ch.ResourceID)
		case "client":
			row.Target = decisionsURL("client_id", ch.ResourceID)
		}
		rows = append(rows, row)
	}
	return rows
}
