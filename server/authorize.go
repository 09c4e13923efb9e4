package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/ory/fosite"
	"golang.org/x/crypto/bcrypt"

	"github.com/authz/authz/config"
	"github.com/authz/authz/storage"
	"github.com/authz/authz/templates"
)

const (
	csrfCookie   = "authz_csrf"
	loginCookie  = "authz_login"
	loginTTL     = 30 * time.Minute
	csrfField    = "csrf"
	consentField = "consent"
)

// repeatedParam returns the name of a parameter that appears more than once, or "".
func repeatedParam(q url.Values) string {
	for name, values := range q {
		if len(values) > 1 && !repeatableParams[name] {
			return name
		}
	}
	return ""
}

// writeAuthorizeError answers an authorization error through fosite in the query response
// mode, the only one authz supports (metadata response_modes_supported): fosite would answer an
// unsupported response_mode=form_post with a self-submitting page, which the console's CSP
// blocks, so the client never learned of the error. It is the one place every authorization
// error goes through, so a redirect URI that redirectURIProblem refuses is never redirected to,
// whatever fosite found wrong first (an error page instead).
func (s *Server) writeAuthorizeError(ctx context.Context, rw http.ResponseWriter, ar fosite.AuthorizeRequester, err error) {
	if ar != nil {
		if client, ok := ar.GetClient().(*storage.Client); ok {
			if problem := redirectURIProblem(ar, client); problem != nil {
				_ = writeErrorPage(rw, http.StatusBadRequest, "Invalid request", problem.GetDescription())
				return
			}
		}
	}
	if errors.Is(err, fosite.ErrInvalidState) {
		// fosite's invalid_state is not an RFC 6749 §4.1.2.1 code; the rule stays (decision S27).
		err = fosite.ErrInvalidRequest.WithHint("The state parameter is required and must be at least 8 characters long.")
	}
	if req, ok := ar.(*fosite.AuthorizeRequest); ok && req.ResponseMode != fosite.ResponseModeDefault && req.ResponseMode != fosite.ResponseModeQuery {
		req.ResponseMode = fosite.ResponseModeQuery
	}
	s.provider.WriteAuthorizeError(ctx, rw, ar, err)
}

// dummyHashFor returns a hash to compare an unknown user's password with, at the highest bcrypt
// cost among the configured users, so a failed login takes as long whether or not the username
// exists (at MinCost an unknown user answered in 2 ms, a known one in 70 ms).
func dummyHashFor(users map[string][]byte) ([]byte, error) {
	cost := bcrypt.DefaultCost
	if len(users) > 0 {
		cost = bcrypt.MinCost
	}
	for _, h := range users {
		if c, err := bcrypt.Cost(h); err == nil && c > cost {
			cost = c
		}
	}
	h, err := bcrypt.GenerateFromPassword([]byte("authz-dummy-password"), cost)
	if err != nil {
		return nil, fmt.Errorf("server: login dummy hash: %w", err)
	}
	return h, nil
}

// handleAuthorize is the authorization endpoint (RFC 6749 §3.1, RFC 7636, RFC 9126 §4): a login
// page, then a consent page, then the code. fosite sees only the authorization request in the
// query; our form fields (username, password, csrf, consent) stay ours. While pages are shown a
// pushed request is read without being consumed; it is consumed when the user decides.
func (s *Server) handleAuthorize(c echo.Context) error {
	r, rw := c.Request(), c.Response()
	ctx := r.Context()
	setPageHeaders(rw)
	csrf := s.ensureCSRF(c)

	oauthReq := r.Clone(ctx)
	oauthReq.Method = http.MethodGet
	oauthReq.Body = http.NoBody
	oauthReq.ContentLength = 0
	oauthReq.Form, oauthReq.PostForm = nil, nil
	oauthReq.Header = r.Header.Clone()
	oauthReq.Header.Del("Content-Type")
	if name := repeatedParam(r.URL.Query()); name != "" {
		// RFC 6749 §3.1: parameters MUST NOT be included more than once. When the client or the
		// redirect URI is ambiguous the error cannot be redirected (§4.1.2.1).
		if name == "client_id" || name == "redirect_uri" || name == "request_uri" {
			return s.renderError(c, http.StatusBadRequest, "Invalid request", "The parameter "+name+" appears more than once in the request.")
		}
		ar, err := s.provider.NewAuthorizeRequest(withPeekPAR(ctx), oauthReq)
		if err == nil {
			err = fosite.ErrInvalidRequest.WithHintf("The parameter %q appears more than once (RFC 6749 §3.1).", name)
		}
		s.writeAuthorizeError(ctx, rw, ar, err)
		return nil
	}

	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil || !validCSRF(csrf, r.PostForm.Get(csrfField)) {
			return s.renderError(c, http.StatusForbidden, "Request refused", "The form expired or did not come from this site. Go back and try again.")
		}
	}
	user := s.loggedInUser(r)
	decision := ""
	if r.Method == http.MethodPost {
		decision = r.PostForm.Get(consentField)
	}

	if decision == "" {
		ar, client, ok := s.validAuthorizeRequest(withPeekPAR(ctx), rw, oauthReq)
		if !ok {
			return nil
		}
		action := "/oauth2/authorize?" + r.URL.RawQuery
		if user == "" && r.Method == http.MethodPost {
			user = s.login(c, r.PostForm.Get("username"), r.PostForm.Get("password"))
			if user == "" {
				rw.WriteHeader(http.StatusUnauthorized)
				return templates.RenderLogin(rw, templates.LoginData{
					Action: action, ClientID: client.ID, ClientDescription: client.Description,
					Username: r.PostForm.Get("username"), Error: "Wrong username or password.", CSRF: csrf,
				})
			}
		}
		if user == "" {
			return templates.RenderLogin(rw, templates.LoginData{
				Action: action, ClientID: client.ID, ClientDescription: client.Description, CSRF: csrf,
			})
		}
		data := templates.ConsentData{
			Action: action, ClientID: client.ID, ClientDescription: client.Description, Username: user,
			Scopes: ar.GetRequestedScopes(), Attested: isAttestationMethod(client.TokenEndpointAuthMethod) || client.RequireAttestation,
			AttestationMethodNote: isAttestationMethod(client.TokenEndpointAuthMethod) || client.RequireAttestation, CSRF: csrf,
		}
		if pushed := pushedEvidence(ar); pushed != nil {
			data.Attested, data.AttestationMethodNote = true, false
			data.Attestation = &templates.AttestationInfo{Attester: pushed.Attester, KeyHint: keyHint(pushed.InstanceJKT)}
			if a, err := s.store.GetAttester(ctx, pushed.Attester); err == nil {
				data.Attestation.AttesterDescription = a.Description
			}
		}
		return templates.RenderConsent(rw, data)
	}

	if user == "" {
		return s.renderError(c, http.StatusForbidden, "Sign in first", "Your sign-in expired. Start again from the application.")
	}
	// The same checks as when the pages were shown: the query can be changed before the POST.
	ar, _, ok := s.validAuthorizeRequest(ctx, rw, oauthReq)
	if !ok {
		return nil
	}
	if decision != "allow" {
		s.log.InfoContext(ctx, "consent denied", "client_id", ar.GetClient().GetID(), "user", user)
		s.writeAuthorizeError(ctx, rw, ar, fosite.ErrAccessDenied.WithHint("The user denied the request."))
		return nil
	}
	for _, scope := range ar.GetRequestedScopes() {
		ar.GrantScope(scope)
	}
	for _, aud := range ar.GetRequestedAudience() {
		ar.GrantAudience(aud)
	}
	sess := storage.NewSession()
	sess.Subject, sess.Username = user, user
	if pushed := pushedEvidence(ar); pushed != nil {
		// Bind the code to the instance that pushed the request (checked at the token endpoint).
		sess.InstanceJKT, sess.Attester, sess.PoPMethod = pushed.InstanceJKT, pushed.Attester, pushed.PoPMethod
	}
	resp, err := s.provider.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		s.writeAuthorizeError(ctx, rw, ar, err)
		return nil
	}
	s.log.InfoContext(ctx, "authorization code issued", "client_id", ar.GetClient().GetID(), "user", user, "scopes", strings.Join(ar.GetGrantedScopes(), " "))
	s.provider.WriteAuthorizeResponse(ctx, rw, ar, resp)
	return nil
}

// setPageHeaders forbids framing and caching of the login and consent pages.
func setPageHeaders(rw http.ResponseWriter) {
	h := rw.Header()
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
}

func (s *Server) renderError(c echo.Context, status int, title, msg string) error {
	return writeErrorPage(c.Response(), status, title, msg)
}

// writeErrorPage answers with the HTML error page.
func writeErrorPage(rw http.ResponseWriter, status int, title, msg string) error {
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	rw.WriteHeader(status)
	return templates.RenderError(rw, templates.ErrorData{Title: title, Message: msg, Status: status})
}

// ensureCSRF returns the double-submit CSRF token, setting its cookie when missing.
func (s *Server) ensureCSRF(c echo.Context) string {
	if ck, err := c.Cookie(csrfCookie); err == nil && len(ck.Value) == 43 {
		return ck.Value
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	c.SetCookie(&http.Cookie{Name: csrfCookie, Value: v, Path: "/oauth2/authorize", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secureCookies()})
	return v
}

func validCSRF(cookie, field string) bool {
	return cookie != "" && subtle.ConstantTimeCompare([]byte(cookie), []byte(field)) == 1
}

func (s *Server) secureCookies() bool { return strings.HasPrefix(s.cfg.Issuer, "https://") }

// login checks a username and password against the configured bcrypt hashes and sets the login
// cookie; it returns the user, or "" when they do not match.
func (s *Server) login(c echo.Context, username, password string) string {
	hash, ok := s.users[username]
	if !ok {
		hash = s.dummyHash
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !ok {
		s.log.InfoContext(c.Request().Context(), "login failed", "user", username)
		return ""
	}
	exp := time.Now().Add(loginTTL).Unix()
	payload := base64.RawURLEncoding.EncodeToString([]byte(username)) + "." + strconv.FormatInt(exp, 10)
	c.SetCookie(&http.Cookie{
		Name: loginCookie, Value: payload + "." + s.cookieMAC(payload), Path: "/oauth2/authorize",
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.secureCookies(), MaxAge: int(loginTTL.Seconds()),
	})
	return username
}

// loggedInUser returns the user of a valid, unexpired login cookie.
func (s *Server) loggedInUser(r *http.Request) string {
	ck, err := r.Cookie(loginCookie)
	if err != nil || len(ck.Value) > 512 {
		return ""
	}
	i := strings.LastIndexByte(ck.Value, '.')
	if i < 0 {
		return ""
	}
	payload, mac := ck.Value[:i], ck.Value[i+1:]
	if !hmac.Equal([]byte(mac), []byte(s.cookieMAC(payload))) {
		return ""
	}
	userB64, expStr, ok := strings.Cut(payload, ".")
	if !ok {
		return ""
	}
	exp, err := strconv.ParseInt(expStr, 10, 64)
	if err != nil || time.Now().Unix() > exp {
		return ""
	}
	user, err := base64.RawURLEncoding.DecodeString(userB64)
	if err != nil {
		return ""
	}
	if _, known := s.users[string(user)]; !known {
		return ""
	}
	return string(user)
}

func (s *Server) cookieMAC(payload string) string {
	m := hmac.New(sha256.New, s.cookieSecret)
	m.Write([]byte("login\x00"))
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkAuthorizeRequest refuses, before any page is shown (and when a request is pushed), what
// fosite would accept or only notice later: PKCE's shape (requirePKCE), a request object (RFC
// 9101 is not supported; fosite ignores `request` without the openid scope, and PAR would store
// it unread), and a dpop_jkt that is not an RFC 7638 SHA-256 thumbprint (RFC 9449 §10: such a
// code could never be redeemed).
func checkAuthorizeRequest(ar fosite.AuthorizeRequester, client *storage.Client) error {
	form := ar.GetRequestForm()
	if form.Has("request") {
		return errRequestNotSupported
	}
	if jkt := form.Get("dpop_jkt"); form.Has("dpop_jkt") && !validJKT(jkt) {
		return fosite.ErrInvalidRequest.WithHint("dpop_jkt must be an RFC 7638 SHA-256 JWK thumbprint (43 base64url characters, RFC 9449 §10).")
	}
	return requirePKCE(ar, client)
}

var errRequestNotSupported = &fosite.RFC6749Error{
	ErrorField:       "request_not_supported",
	DescriptionField: "Request objects (the request parameter, RFC 9101) are not supported.",
	CodeField:        http.StatusBadRequest,
}

// requirePKCE refuses, before any page is shown (and when a request is pushed), what fosite
// would refuse only after consent: a public client without an S256 code challenge (RFC 7636;
// OAuth 2.1 §4.1.1), the plain method for anyone (an omitted method means plain), a method
// without a challenge, and a challenge that is not 43-128 unreserved characters (RFC 7636 §4.2).
func requirePKCE(ar fosite.AuthorizeRequester, client *storage.Client) error {
	form := ar.GetRequestForm()
	challenge, method := form.Get("code_challenge"), form.Get("code_challenge_method")
	switch {
	case challenge == "" && client != nil && client.Public:
		return fosite.ErrInvalidRequest.WithHint("Public clients must use PKCE with S256 (code_challenge).")
	case challenge == "" && method != "":
		return fosite.ErrInvalidRequest.WithHint("code_challenge_method without code_challenge.")
	case challenge == "":
		return nil
	case method != "S256":
		return fosite.ErrInvalidRequest.WithHint("Only the S256 code_challenge_method is supported.")
	case len(challenge) < 43 || len(challenge) > 128 || strings.Trim(challenge, pkceChallengeChars) != "":
		return fosite.ErrInvalidRequest.WithHint("code_challenge must be 43 to 128 characters of [A-Za-z0-9-._~] (RFC 7636 §4.2).")
	}
	return nil
}

// validAuthorizeRequest runs fosite's validation of an authorization request and authz's own
// (redirectURIProblem, checkAuthorizeRequest); on a failure it has answered (writeAuthorizeError)
// and ok is false.
func (s *Server) validAuthorizeRequest(ctx context.Context, rw http.ResponseWriter, oauthReq *http.Request) (ar fosite.AuthorizeRequester, client *storage.Client, ok bool) {
	ar, err := s.provider.NewAuthorizeRequest(ctx, oauthReq)
	if err == nil {
		client, _ = ar.GetClient().(*storage.Client)
		if problem := redirectURIProblem(ar, client); problem != nil {
			err = problem // writeAuthorizeError shows it as a page, never a redirect
		} else {
			err = checkAuthorizeRequest(ar, client)
		}
	}
	if err != nil {
		s.writeAuthorizeError(ctx, rw, ar, err)
		return nil, nil, false
	}
	return ar, client, true
}

// redirectURIProblem refuses a redirect URI the code must not be sent to, with an error that
// must be shown, never redirected to that URI: for a confidential client, one that is not a
// registered URI byte for byte (fosite also accepts a registered loopback URI with any port, RFC
// 8252 §7.3, which is for native apps, i.e. public clients; RFC 9700 §4.1.3 wants exact matching
// otherwise, decision S26); for any client, one that config.ValidateRedirectURI refuses (a
// javascript: or cleartext URI registered before that rule existed).
func redirectURIProblem(ar fosite.AuthorizeRequester, client *storage.Client) *fosite.RFC6749Error {
	if client == nil {
		return nil
	}
	if raw := ar.GetRequestForm().Get("redirect_uri"); raw != "" && !client.IsPublic() && !slices.Contains(client.GetRedirectURIs(), raw) {
		return fosite.ErrInvalidRequest.WithHint("The redirect_uri is not one of the client's registered redirect URIs (exact match).")
	}
	if u := ar.GetRedirectURI(); u != nil {
		if err := config.ValidateRedirectURI(u.String(), client.IsPublic()); err != nil {
			return fosite.ErrInvalidRequest.WithHint("The redirect URI is not allowed: " + err.Error() + ".")
		}
	}
	return nil
}

// pkceChallengeChars is RFC 7636 §4.1's unreserved set.
const pkceChallengeChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"

// pushedEvidence returns the attestation evidence recorded when the request was pushed (PAR
// with attestation), or nil.
func pushedEvidence(ar fosite.AuthorizeRequester) *storage.Session {
	sess, ok := ar.GetSession().(*storage.Session)
	if !ok || sess == nil || sess.InstanceJKT == "" {
		return nil
	}
	return sess
}

// keyHint is the last four characters of a thumbprint, enough for a person to compare.
func keyHint(jkt string) string {
	if len(jkt) <= 4 {
		return jkt
	}
	return jkt[len(jkt)-4:]
}
