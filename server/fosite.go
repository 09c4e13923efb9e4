package server

import (
	"context"
	"fmt"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/token/jwt"

	"github.com/authz/authz/storage"
)

// parRequestURIPrefix is RFC 9126 §2.2's recommended request_uri form.
const parRequestURIPrefix = "urn:ietf:params:oauth:request_uri:"

// clientSecretCost is the bcrypt cost of client secrets: fosite's default (12) costs ~180 ms a
// comparison on this hardware (fosite.md §5); 10 keeps ~45 ms while staying above OWASP's floor.
const clientSecretCost = 10

// fositeStore is the storage fosite sees. It only changes one thing: while the authorization
// endpoint renders its login and consent pages it must read a pushed authorization request
// without consuming it (fosite deletes it on every NewAuthorizeRequest), so DeletePARSession is a
// no-op for contexts marked with peekPAR.
type fositeStore struct {
	*storage.Store
	audience string
	clients  *clientCache
}

// GetClient adds the default audience (RFC 9068 §3) to what every client may hold, so fosite's
// audience checks on refresh accept tokens minted with it.
func (f fositeStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := f.clients.get(ctx, f.Store, id, f.audience)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func withAudience(c *storage.Client, aud string) *storage.Client {
	for _, a := range c.Audience {
		if a == aud {
			return c
		}
	}
	cp := *c
	cp.Audience = append(append([]string(nil), c.Audience...), aud)
	return &cp
}

type peekPARKey struct{}

func withPeekPAR(ctx context.Context) context.Context {
	return context.WithValue(ctx, peekPARKey{}, true)
}

// maxAssertionLifetime bounds how far in the future an RFC 7523 client assertion may expire.
const maxAssertionLifetime = time.Hour

// ClientAssertionJWTValid implements fosite.ClientManager. At the token endpoint the check is
// left to the grant's commit, where the jti is inserted atomically with the token (a live
// duplicate fails it), so it is not read twice.
func (f fositeStore) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	if out := outcomeFrom(ctx); out != nil && out.deferAssertion {
		return nil
	}
	return f.Store.ClientAssertionJWTValid(ctx, jti)
}

// SetClientAssertionJWT implements fosite.ClientManager (RFC 7523 §3 item 7). At the token
// endpoint the jti joins the grant's replay keys (storage.CommitGrant), so a private_key_jwt
// token costs one transaction like an attested one; elsewhere it is recorded at once.
func (f fositeStore) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	// RFC 7523 §3 item 4: an exp unreasonably far in the future may be refused. Its jti would
	// be kept until then (decision S23).
	if exp.After(time.Now().Add(maxAssertionLifetime)) {
		return fosite.ErrInvalidClient.WithHintf("The client assertion expires more than %s from now.", maxAssertionLifetime)
	}
	if out := outcomeFrom(ctx); out != nil && out.deferAssertion {
		out.assertionKey = &storage.ReplayKey{Key: storage.ClientAssertionReplayKey(jti), ExpiresAt: exp}
		return nil
	}
	return f.Store.SetClientAssertionJWT(ctx, jti, exp)
}

func (f fositeStore) DeletePARSession(ctx context.Context, requestURI string) error {
	if peek, _ := ctx.Value(peekPARKey{}).(bool); peek {
		return nil
	}
	return f.Store.DeletePARSession(ctx, requestURI)
}

// composeFosite builds the OAuth 2.0 engine with only the factories authz serves (fosite.md §3.1,
// §10): client credentials, authorization code + PKCE, refresh, PAR, introspection, revocation.
// Access tokens are RFC 9068 JWTs signed with the shared ES256 key; codes and refresh tokens are
// HMAC tokens under the shared global secret.
func (s *Server) composeFosite(globalSecret []byte) error {
	issuer := s.cfg.Issuer
	fc := &fosite.Config{
		AccessTokenLifespan:             s.cfg.Tokens.AccessTokenTTL,
		RefreshTokenLifespan:            s.cfg.Tokens.RefreshTokenTTL,
		AuthorizeCodeLifespan:           s.cfg.Tokens.CodeTTL,
		TokenURL:                        s.endpointURL("/oauth2/token"),
		AccessTokenIssuer:               issuer,
		IDTokenIssuer:                   issuer,
		GlobalSecret:                    globalSecret,
		HashCost:                        clientSecretCost,
		EnforcePKCEForPublicClients:     true,
		EnablePKCEPlainChallengeMethod:  false,
		RefreshTokenScopes:              []string{},
		JWTScopeClaimKey:                jwt.JWTScopeFieldString,
		ScopeStrategy:                   fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:        fosite.DefaultAudienceMatchingStrategy,
		PushedAuthorizeRequestURIPrefix: parRequestURIPrefix,
		PushedAuthorizeContextLifespan:  90 * time.Second,
		SendDebugMessagesToClients:      false,
		UseLegacyErrorFormat:            false,
		// The code row keeps only these form members; redirect_uri must stay or the token
		// endpoint's redirect_uri check silently disappears (fosite.md §3.3 item 6).
		SanitationWhiteList: []string{"code", "redirect_uri", "dpop_jkt"},
	}
	// Set eagerly: fosite writes these defaults lazily, which is a data race (fosite.md §6).
	secrets, err := newSecretCache(&fosite.BCrypt{Config: fc})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	fc.ClientSecretsHasher = secrets
	fc.JWKSFetcherStrategy = fosite.NewDefaultJWKSFetcherStrategy()

	hmacStrategy := compose.NewOAuth2HMACStrategy(fc)
	jwtStrategy := &oauth2.DefaultJWTStrategy{Signer: s.keys, HMACSHAStrategy: hmacStrategy, Config: fc}
	strategy := &compose.CommonStrategy{
		CoreStrategy: &mintingStrategy{CoreStrategy: jwtStrategy, issuer: issuer, audience: s.defaultAudience()},
		Signer:       s.keys,
	}

	provider, ok := compose.Compose(fc, fositeStore{Store: s.store, audience: s.defaultAudience(), clients: s.clients}, strategy,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2PKCEFactory,
		compose.PushedAuthorizeHandlerFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
	).(*fosite.Fosite)
	if !ok {
		return fmt.Errorf("server: fosite compose returned an unexpected provider type")
	}
	// grantParams runs first, before a grant handler can answer a missing parameter itself.
	fc.TokenEndpointHandlers = append(fosite.TokenEndpointHandlers{grantParams{}}, fc.TokenEndpointHandlers...)
	// bindingHandler runs after the grant handlers, which have loaded the stored session by then
	// (fosite.md §4), but before fosite's PKCE handler, which deletes the code's PKCE session
	// while validating: a code refused for its key binding stays redeemable by the right key.
	binding := &bindingHandler{store: s.store, codeSignature: hmacStrategy.AuthorizeCodeSignature}
	handlers := make(fosite.TokenEndpointHandlers, 0, len(fc.TokenEndpointHandlers)+1)
	for _, h := range fc.TokenEndpointHandlers {
		if _, isPKCE := h.(*pkce.Handler); isPKCE {
			handlers = append(handlers, binding)
		}
		handlers = append(handlers, h)
	}
	if len(handlers) == len(fc.TokenEndpointHandlers) {
		return fmt.Errorf("server: fosite composition has no PKCE handler")
	}
	fc.TokenEndpointHandlers = handlers
	for i, h := range fc.TokenEndpointHandlers {
		fc.TokenEndpointHandlers[i] = onlyOwnGrant{h}
	}
	// Installed after composing so it can fall back to fosite's default strategy (fosite.md §1.1).
	fc.ClientAuthenticationStrategy = s.authenticateClient
	s.provider = provider
	s.fositeConfig = fc
	return nil
}

var _ oauth2.CoreStrategy = (*mintingStrategy)(nil)

// onlyOwnGrant calls a token endpoint handler's PopulateTokenEndpointResponse only for requests
// it handles. fosite calls every handler for every token response, and each one that does not
// handle the grant answers fosite.ErrUnknownRequest wrapped with a stack trace (runtime.Callers,
// about 2 % of the CPU of an attested token); the bare sentinel means the same to fosite.
type onlyOwnGrant struct{ fosite.TokenEndpointHandler }

func (h onlyOwnGrant) PopulateTokenEndpointResponse(ctx context.Context, req fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, req) {
		return fosite.ErrUnknownRequest
	}
	return h.TokenEndpointHandler.PopulateTokenEndpointResponse(ctx, req, resp)
}

// defaultAudience is tokens.default_audience, or the issuer.
func (s *Server) defaultAudience() string {
	if s.cfg.Tokens.DefaultAudience != "" {
		return s.cfg.Tokens.DefaultAudience
	}
	return s.cfg.Issuer
}
