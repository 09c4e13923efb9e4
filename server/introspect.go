package server

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/ory/fosite"

	"github.com/authz/authz/storage"
)

// maxIntrospectedToken bounds the token parameter (an access token JWT is well under this).
const maxIntrospectedToken = 16 << 10

// handleIntrospect is the RFC 7662 endpoint. fosite's introspection request handler knows only
// Bearer and client_secret_basic (fosite.md §1.4), so the caller is authenticated here with the
// same strategy as the token endpoint (profile §8), then fosite validates the token and the
// response is written here, with token_type, cnf and the attestation evidence (profile §6).
func (s *Server) handleIntrospect(c echo.Context) error {
	r, rw := c.Request(), c.Response()
	ctx, out := withOutcome(r.Context(), "/oauth2/introspect")
	out.replayNow = true
	if err := formSyntaxError(r); err != nil {
		s.refuseForm(ctx, rw, r, out, err)
		return nil
	}
	client, err := s.authenticateClient(ctx, r, r.PostForm)
	s.recordDecision(ctx, out, nil)
	if err != nil {
		s.writeOAuthError(rw, r, out, err)
		return nil
	}
	if client.IsPublic() {
		s.writeOAuthError(rw, r, out, fosite.ErrInvalidClient.WithHint("Public clients cannot introspect tokens."))
		return nil
	}
	token := r.PostForm.Get("token")
	if token == "" || len(token) > maxIntrospectedToken {
		s.writeOAuthError(rw, r, out, fosite.ErrInvalidRequest.WithHint("The 'token' parameter is required."))
		return nil
	}
	hint := fosite.TokenUse(r.PostForm.Get("token_type_hint"))
	use, ar, err := s.provider.IntrospectToken(ctx, token, hint, storage.NewSession())
	if err == nil && use == fosite.RefreshToken && ar.GetClient().GetID() != client.GetID() {
		// A refresh token is presented only by the client it was issued to; to anyone else
		// (a resource server checking what it was sent as an access token) it is not an active
		// token (RFC 7662 §2.2, decision S25).
		err = fosite.ErrInactiveToken
	}
	if err != nil {
		writeJSON(rw, http.StatusOK, map[string]any{"active": false})
		return nil
	}
	writeJSON(rw, http.StatusOK, s.introspection(use, ar))
	return nil
}

// introspection renders RFC 7662 §2.2 members for an active token.
func (s *Server) introspection(use fosite.TokenUse, ar fosite.AccessRequester) map[string]any {
	resp := map[string]any{
		"active":    true,
		"client_id": ar.GetClient().GetID(),
		"iss":       s.cfg.Issuer,
	}
	if scopes := ar.GetGrantedScopes(); len(scopes) > 0 {
		resp["scope"] = strings.Join(scopes, " ")
	}
	if aud := ar.GetGrantedAudience(); len(aud) > 0 {
		resp["aud"] = []string(aud)
	}
	sess, _ := ar.GetSession().(*storage.Session)
	if sess == nil {
		return resp
	}
	tokenType := fosite.AccessToken
	if use == fosite.RefreshToken {
		tokenType = fosite.RefreshToken
	}
	if exp := sess.GetExpiresAt(tokenType); !exp.IsZero() {
		resp["exp"] = exp.Unix()
	}
	if sub := sess.GetSubject(); sub != "" {
		resp["sub"] = sub
	}
	if sess.Username != "" {
		resp["username"] = sess.Username
	}
	if use == fosite.AccessToken {
		resp["token_type"] = "Bearer"
		if sess.JWTClaims != nil {
			if sess.JWTClaims.JTI != "" {
				resp["jti"] = sess.JWTClaims.JTI
			}
			if !sess.JWTClaims.IssuedAt.IsZero() {
				resp["iat"] = sess.JWTClaims.IssuedAt.Unix()
			}
		}
		if sess.DPoPJKT != "" {
			resp["token_type"] = "DPoP"
			resp["cnf"] = map[string]string{"jkt": sess.DPoPJKT}
		}
	}
	if sess.InstanceJKT != "" {
		resp["client_attestation"] = Evidence{Attester: sess.Attester, InstanceJKT: sess.InstanceJKT, PoPMethod: sess.PoPMethod}
	}
	return resp
}
