package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"

	"github.com/authz/authz/storage"
)

// Evidence is the client_attestation claim of profile §6.
type Evidence struct {
	Attester    string `json:"attester"`
	InstanceJKT string `json:"instance_jkt"`
	PoPMethod   string `json:"pop_method"`
}

// mintingStrategy decorates fosite's JWT access-token strategy. It is the only point that runs
// after every re-hydration of the session (fosite.md §5), so it sets what fosite leaves out of an
// RFC 9068 token: typ at+jwt (§2.1), a jti that is stored (§2.2), iat of this issuance, sub and
// client_id (§2.2), cnf.jkt for DPoP-bound tokens (RFC 9449 §6.1) and the attestation evidence
// (profile §6). The session is stored after minting, so introspection and refresh see the same.
type mintingStrategy struct {
	oauth2.CoreStrategy
	issuer   string
	audience string // default aud (tokens.default_audience, else the issuer)
}

func (m *mintingStrategy) GenerateAccessToken(ctx context.Context, req fosite.Requester) (string, string, error) {
	sess, ok := req.GetSession().(*storage.Session)
	if !ok {
		return "", "", fmt.Errorf("server: unexpected session type %T", req.GetSession())
	}
	if sess.JWTClaims == nil {
		sess.JWTClaims = &jwt.JWTClaims{}
	}
	if sess.JWTClaims.Extra == nil {
		sess.JWTClaims.Extra = map[string]interface{}{}
	}
	if sess.JWTHeader == nil {
		sess.JWTHeader = &jwt.Headers{}
	}
	if sess.JWTHeader.Extra == nil {
		sess.JWTHeader.Extra = map[string]interface{}{}
	}
	jti, err := randomID()
	if err != nil {
		return "", "", err
	}
	clientID := req.GetClient().GetID()
	if sess.Subject == "" {
		sess.Subject = clientID // client_credentials: the client is the subject (RFC 9068 §2.2)
	}
	if sess.AuthMethod == "" {
		if c, ok := req.GetClient().(*storage.Client); ok {
			sess.AuthMethod = c.TokenEndpointAuthMethod
		}
	}

	// Evidence of this request's authentication. On refresh the stored values were checked
	// against the presented key by bindingHandler, so they stay equal.
	if out := outcomeFrom(ctx); out.verified() {
		sess.InstanceJKT = out.attestation.InstanceJKT
		sess.Attester = out.attestation.Attester
		sess.PoPMethod = out.attestation.PoPMethod
	}
	sess.DPoPJKT = dpopJKT(outcomeFrom(ctx))

	// RFC 9068 §3: without a resource indicator the token names a default audience.
	if len(req.GetGrantedAudience()) == 0 && m.audience != "" {
		req.GrantAudience(m.audience)
	}
	claims := sess.JWTClaims
	claims.JTI = jti
	claims.IssuedAt = time.Now().UTC()
	claims.Issuer = m.issuer
	claims.Subject = sess.Subject
	claims.Extra["client_id"] = clientID
	// Maps merge on re-hydration (fosite.md §3.3 item 1): remove what this token does not carry.
	delete(claims.Extra, "cnf")
	delete(claims.Extra, "client_attestation")
	if sess.DPoPJKT != "" {
		claims.Extra["cnf"] = map[string]interface{}{"jkt": sess.DPoPJKT}
	}
	if sess.InstanceJKT != "" {
		claims.Extra["client_attestation"] = map[string]interface{}{
			"attester":     sess.Attester,
			"instance_jkt": sess.InstanceJKT,
			"pop_method":   sess.PoPMethod,
		}
	}
	sess.JWTHeader.Extra["typ"] = "at+jwt"
	return m.CoreStrategy.GenerateAccessToken(ctx, req)
}

// dpopJKT is the thumbprint the access token is bound to: the combined-mode proof's key, or a
// plain DPoP proof's key (RFC 9449 §5).
func dpopJKT(out *outcome) string {
	if out == nil {
		return ""
	}
	if out.verified() && out.attestation.DPoP != nil {
		return out.attestation.DPoP.JKT
	}
	if out.dpopProof != nil {
		return out.dpopProof.JKT
	}
	return ""
}

func randomID() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("server: random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
