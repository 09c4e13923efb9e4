package storage

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
)

// The fosite-driven case: fosite's own handlers (authorization code + PKCE, refresh, reuse
// detection, revocation, introspection, PAR) running on the Store, so the storage contract is
// checked by its real consumer rather than by our reading of it.

const (
	fositeIssuer   = "https://as.example"
	fositeRedirect = "https://app.example/cb"
	fositeClientID = "spa"
)

// fositeEnv is a fosite provider composed over a Store, as the server composes it (fosite.md §10).
type fositeEnv struct {
	t        *testing.T
	store    *Store
	provider *fosite.Fosite
}

func newFositeEnv(t *testing.T, b backend) *fositeEnv {
	t.Helper()
	d := newTestDB(t, b)
	d.now = time.Now // fosite stamps expiries with the real clock
	s := d.migrated(t)
	ctx := bg()
	secret, err := s.SharedSecret(ctx, "global", 32)
	if err != nil {
		t.Fatal(err)
	}
	key, err := s.EnsureSigningKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &fosite.Config{
		AccessTokenLifespan:             time.Hour,
		RefreshTokenLifespan:            24 * time.Hour,
		AuthorizeCodeLifespan:           10 * time.Minute,
		GlobalSecret:                    secret,
		TokenURL:                        fositeIssuer + "/oauth2/token",
		AccessTokenIssuer:               fositeIssuer,
		EnforcePKCEForPublicClients:     true,
		RefreshTokenScopes:              []string{},
		ScopeStrategy:                   fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:        fosite.DefaultAudienceMatchingStrategy,
		PushedAuthorizeRequestURIPrefix: "urn:ietf:params:oauth:request_uri:",
		PushedAuthorizeContextLifespan:  90 * time.Second,
		SanitationWhiteList:             []string{"code", "redirect_uri", "dpop_jkt"},
	}
	cfg.ClientSecretsHasher = &fosite.BCrypt{Config: cfg}
	cfg.JWKSFetcherStrategy = fosite.NewDefaultJWKSFetcherStrategy()
	hmacStrategy := compose.NewOAuth2HMACStrategy(cfg)
	jwtStrategy := compose.NewOAuth2JWTStrategy(func(context.Context) (interface{}, error) { return key.Private, nil }, hmacStrategy, cfg)
	provider, ok := compose.Compose(cfg, s, &compose.CommonStrategy{CoreStrategy: jwtStrategy, Signer: jwtStrategy.Signer},
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2PKCEFactory,
		compose.PushedAuthorizeHandlerFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
	).(*fosite.Fosite)
	if !ok {
		t.Fatal("compose did not return *fosite.Fosite")
	}
	client := &Client{
		ID: fositeClientID, Public: true, TokenEndpointAuthMethod: "none", RedirectURIs: []string{fositeRedirect},
		GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
		Scopes: []string{"read", "offline"},
	}
	if err := s.UpsertClient(ctx, client); err != nil {
		t.Fatal(err)
	}
	return &fositeEnv{t: t, store: s, provider: provider}
}

// pkcePair returns an RFC 7636 S256 verifier and challenge.
func pkcePair(t *testing.T, seed string) (verifier, challenge string) {
	t.Helper()
	verifier = "verifier-" + seed + "-" + strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorize runs the authorization endpoint for alice (instance key jkt) and returns the code.
func (e *fositeEnv) authorize(query url.Values, jkt string) string {
	e.t.Helper()
	ctx := bg()
	r := httptest.NewRequest(http.MethodGet, fositeIssuer+"/oauth2/authorize?"+query.Encode(), nil)
	ar, err := e.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		e.t.Fatalf("NewAuthorizeRequest: %v", fosite.ErrorToRFC6749Error(err).WithExposeDebug(true).GetDescription())
	}
	for _, scope := range ar.GetRequestedScopes() {
		ar.GrantScope(scope)
	}
	sess := NewSession()
	sess.Subject, sess.InstanceJKT = "alice", jkt
	resp, err := e.provider.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		e.t.Fatalf("NewAuthorizeResponse: %v", fosite.ErrorToRFC6749Error(err).WithExposeDebug(true).GetDescription())
	}
	code := resp.GetParameters().Get("code")
	if code == "" {
		e.t.Fatal("no code issued")
	}
	return code
}

func (e *fositeEnv) authorizeQuery(challenge string) url.Values {
	return url.Values{
		"response_type": {"code"}, "client_id": {fositeClientID}, "redirect_uri": {fositeRedirect},
		"scope": {"read offline"}, "state": {"state-12345678"}, "code_challenge": {challenge},
		"code_challenge_method": {"S256"},
	}
}

// token runs the token endpoint with form inside one unit of work, as the server does.
func (e *fositeEnv) token(form url.Values) (access, refresh string, err error) {
	e.t.Helper()
	ctx := bg()
	r := httptest.NewRequest(http.MethodPost, fositeIssuer+"/oauth2/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req, err := e.provider.NewAccessRequest(ctx, r, NewSession())
	if err != nil {
		return "", "", err
	}
	var resp fosite.AccessResponder
	err = e.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		resp, err = e.provider.NewAccessResponse(ctx, req)
		return err
	})
	if err != nil {
		return "", "", err
	}
	refresh, _ = resp.ToMap()["refresh_token"].(string)
	return resp.GetAccessToken(), refresh, nil
}

func (e *fositeEnv) exchange(code, verifier string) (access, refresh string) {
	e.t.Helper()
	access, refresh, err := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {fositeRedirect}, "client_id": {fositeClientID}, "code_verifier": {verifier}})
	if err != nil {
		e.t.Fatalf("code exchange: %v", fosite.ErrorToRFC6749Error(err).WithExposeDebug(true).GetDescription())
	}
	if access == "" || refresh == "" {
		e.t.Fatalf("code exchange issued access %q refresh %q", access, refresh)
	}
	return access, refresh
}

func (e *fositeEnv) refresh(rt string) (access, refresh string, err error) {
	e.t.Helper()
	return e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {fositeClientID}})
}

// active introspects an access token and returns its session when fosite considers it active.
func (e *fositeEnv) active(token string) (*Session, bool) {
	e.t.Helper()
	_, ar, err := e.provider.IntrospectToken(bg(), token, fosite.AccessToken, NewSession())
	if err != nil {
		return nil, false
	}
	sess, ok := ar.GetSession().(*Session)
	if !ok {
		e.t.Fatalf("introspected session %T, want *Session", ar.GetSession())
	}
	return sess, true
}

func testFositeFlows(t *testing.T, b backend) {
	e := newFositeEnv(t, b)
	verifier, challenge := pkcePair(t, "one")
	code := e.authorize(e.authorizeQuery(challenge), "jkt-instance")
	at1, rt1 := e.exchange(code, verifier)

	t.Run("code_exchange_stores_hydratable_session", func(t *testing.T) {
		sess, ok := e.active(at1)
		if !ok {
			t.Fatal("access token from the code exchange is not active")
		}
		if sess.InstanceJKT != "jkt-instance" || sess.Subject != "alice" {
			t.Fatalf("introspected session = %+v", sess)
		}
		// fosite sets the token expiries on the live session and then hydrates the stored code
		// session into it again (flow_authorize_code_token.go): hydration must merge, not reset.
		checkLifespan(t, sess, fosite.AccessToken, time.Hour)
		checkLifespan(t, sess, fosite.RefreshToken, 24*time.Hour)
		e.checkStoredExpiry(at1, time.Hour)
	})
	t.Run("code_reuse_rejected", func(t *testing.T) {
		_, _, err := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {fositeRedirect}, "client_id": {fositeClientID}, "code_verifier": {verifier}})
		if !errors.Is(err, fosite.ErrInvalidGrant) {
			t.Fatalf("second use of a code = %v, want invalid_grant", err)
		}
	})
	t.Run("code_reuse_revoked_the_grant", func(t *testing.T) {
		// RFC 6749 §4.1.2: fosite revokes the tokens of a replayed code's grant; it can only
		// because GetAuthorizeCodeSession returned the requester with the error.
		if _, ok := e.active(at1); ok {
			t.Fatal("access token of a replayed code is still active")
		}
		if _, _, err := e.refresh(rt1); err == nil {
			t.Fatal("refresh token of a replayed code still works")
		}
	})

	verifier, challenge = pkcePair(t, "two")
	at2, rt2 := e.exchange(e.authorize(e.authorizeQuery(challenge), "jkt-2"), verifier)
	at3, rt3, err := e.refresh(rt2)
	if err != nil {
		t.Fatalf("refresh: %v", fosite.ErrorToRFC6749Error(err).WithExposeDebug(true).GetDescription())
	}
	t.Run("refresh_rotates", func(t *testing.T) {
		if _, ok := e.active(at2); ok {
			t.Fatal("access token of the rotated refresh token is still active")
		}
		sess, ok := e.active(at3)
		if !ok || sess.InstanceJKT != "jkt-2" {
			t.Fatalf("refreshed access token: active=%v session=%+v (Clone must keep *Session)", ok, sess)
		}
		checkLifespan(t, sess, fosite.AccessToken, time.Hour)
		e.checkStoredExpiry(at3, time.Hour)
	})
	t.Run("refresh_reuse_revokes_grant", func(t *testing.T) {
		if _, _, err := e.refresh(rt2); err == nil {
			t.Fatal("a rotated refresh token was accepted")
		}
		if _, ok := e.active(at3); ok {
			t.Fatal("reuse detection did not revoke the grant's newest access token")
		}
		if _, _, err := e.refresh(rt3); err == nil {
			t.Fatal("reuse detection did not revoke the grant's newest refresh token")
		}
	})

	verifier, challenge = pkcePair(t, "three")
	at4, rt4 := e.exchange(e.authorize(e.authorizeQuery(challenge), "jkt-3"), verifier)
	t.Run("revocation_of_refresh_token_revokes_grant", func(t *testing.T) {
		form := url.Values{"token": {rt4}, "token_type_hint": {"refresh_token"}, "client_id": {fositeClientID}}
		r := httptest.NewRequest(http.MethodPost, fositeIssuer+"/oauth2/revoke", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if err := e.provider.NewRevocationRequest(bg(), r); err != nil {
			t.Fatalf("revocation: %v", err)
		}
		if _, ok := e.active(at4); ok {
			t.Fatal("access token survived the revocation of its refresh token (RFC 7009 §2.1)")
		}
		if _, _, err := e.refresh(rt4); err == nil {
			t.Fatal("a revoked refresh token was accepted")
		}
	})

	t.Run("pushed_authorization_request", func(t *testing.T) {
		verifier, challenge := pkcePair(t, "par")
		form := e.authorizeQuery(challenge)
		r := httptest.NewRequest(http.MethodPost, fositeIssuer+"/oauth2/par", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		ar, err := e.provider.NewPushedAuthorizeRequest(bg(), r)
		if err != nil {
			t.Fatalf("PAR: %v", fosite.ErrorToRFC6749Error(err).WithExposeDebug(true).GetDescription())
		}
		resp, err := e.provider.NewPushedAuthorizeResponse(bg(), ar, NewSession())
		if err != nil {
			t.Fatalf("PAR response: %v", err)
		}
		query := url.Values{"client_id": {fositeClientID}, "request_uri": {resp.GetRequestURI()}}
		code := e.authorize(query, "jkt-par")
		if _, refresh := e.exchange(code, verifier); refresh == "" {
			t.Fatal("no refresh token through PAR")
		}
		r = httptest.NewRequest(http.MethodGet, fositeIssuer+"/oauth2/authorize?"+query.Encode(), nil)
		if _, err := e.provider.NewAuthorizeRequest(bg(), r); !errors.Is(err, fosite.ErrInvalidRequestURI) {
			t.Fatalf("second use of a request_uri = %v, want invalid_request_uri", err)
		}
	})
}

// checkLifespan checks the session's expiry of tt is about lifespan from now.
func checkLifespan(t *testing.T, sess *Session, tt fosite.TokenType, lifespan time.Duration) {
	t.Helper()
	exp := sess.GetExpiresAt(tt)
	if d := time.Until(exp); d < lifespan-time.Minute || d > lifespan+time.Minute {
		t.Fatalf("%s expires at %v (in %v), want in about %v", tt, exp, d, lifespan)
	}
}

// checkStoredExpiry checks the access token's row carries its expiry (PruneExpired relies on it).
func (e *fositeEnv) checkStoredExpiry(token string, lifespan time.Duration) {
	e.t.Helper()
	sig := token[strings.LastIndex(token, ".")+1:]
	var m requestModel
	if err := e.store.conn(bg()).Where("kind = ? AND signature = ?", kindAccess, hashSignature(sig)).Take(&m).Error; err != nil {
		e.t.Fatalf("stored access token: %v", err)
	}
	if m.ExpiresAt == nil {
		e.t.Fatal("stored access token has no expiry")
	}
	if d := time.Until(*m.ExpiresAt); d < lifespan-time.Minute || d > lifespan+time.Minute {
		e.t.Fatalf("stored access token expires in %v, want about %v", d, lifespan)
	}
}
