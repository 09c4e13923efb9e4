package server

import (
	"context"
	"slices"
	"strings"

	"github.com/ory/fosite"

	"github.com/authz/authz/storage"
)

// bindingHandler is appended after fosite's grant handlers. At that point a refresh request's
// session has been replaced by the stored one (fosite.md §4), so it can enforce the bindings
// fosite does not know about:
//   - ABCA-09 §9.3: a refresh token issued to an attested instance is usable only by a request that
//     authenticates with attestation for the same instance key (RFC 7638 thumbprint, profile §3);
//   - RFC 9449 §5: a refresh token of a public client bound to a DPoP key needs a proof by that key;
//   - RFC 9449 §10: a code whose authorization request carried dpop_jkt (or was pushed with a DPoP
//     proof) is redeemed only with a proof by that key;
//   - RFC 6749 §6: a refresh request's scope parameter (which fosite v0.49 ignores) names only
//     scopes granted with the refresh token and narrows the new access token to them;
//
// and it sets token_type DPoP for DPoP-bound access tokens (RFC 9449 §5).
type bindingHandler struct {
	store *storage.Store
	// codeSignature maps an authorization code to its storage signature (fosite's strategy).
	codeSignature func(ctx context.Context, code string) string
}

var _ fosite.TokenEndpointHandler = (*bindingHandler)(nil)

func (b *bindingHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return false
}

// CanHandleTokenEndpointRequest is true only for the grants authz serves; claiming an unknown
// grant would turn unsupported_grant_type into a 500 (fosite.md §4).
func (b *bindingHandler) CanHandleTokenEndpointRequest(_ context.Context, req fosite.AccessRequester) bool {
	return req.GetGrantTypes().ExactOne("refresh_token") ||
		req.GetGrantTypes().ExactOne("client_credentials") ||
		req.GetGrantTypes().ExactOne("authorization_code")
}

func (b *bindingHandler) HandleTokenEndpointRequest(ctx context.Context, req fosite.AccessRequester) error {
	if req.GetGrantTypes().ExactOne("authorization_code") {
		if err := b.checkInstanceBinding(ctx, req, "authorization code"); err != nil {
			return err
		}
		return b.checkCodeBinding(ctx, req)
	}
	if !req.GetGrantTypes().ExactOne("refresh_token") {
		return nil
	}
	sess, ok := req.GetSession().(*storage.Session)
	if !ok {
		return fosite.ErrServerError.WithDebug("unexpected session type")
	}
	if err := b.checkInstanceBinding(ctx, req, "refresh token"); err != nil {
		return err
	}
	if err := narrowRefreshScope(req, sess); err != nil {
		return err
	}
	out := outcomeFrom(ctx)
	if sess.DPoPJKT != "" && req.GetClient().IsPublic() {
		if !equalJKT(dpopJKT(out), sess.DPoPJKT) {
			return fosite.ErrInvalidGrant.WithHint("This refresh token is bound to a different DPoP key.")
		}
	}
	return nil
}

func (b *bindingHandler) PopulateTokenEndpointResponse(ctx context.Context, _ fosite.AccessRequester, resp fosite.AccessResponder) error {
	if dpopJKT(outcomeFrom(ctx)) != "" {
		resp.SetTokenType("DPoP")
	}
	// RFC 6749 §3.3: a scope is one or more scope tokens; fosite writes "" for a token issued
	// without any, which is left out instead.
	if r, ok := resp.(*fosite.AccessResponse); ok && r.Extra["scope"] == "" {
		delete(r.Extra, "scope")
	}
	return nil
}

// narrowRefreshScope applies RFC 6749 §6 to a refresh request. fosite has replaced the request's
// scopes by those granted with the refresh token and ignores the scope parameter; here every
// scope it names must be one of them (exact, case-sensitive comparison, RFC 6749 §3.3), or the
// request fails with invalid_scope. A narrower scope limits the new access token, while the new
// refresh token keeps the presented one's scope (Session.RefreshScopes).
func narrowRefreshScope(req fosite.AccessRequester, sess *storage.Session) error {
	sess.RefreshScopes = nil
	requested := strings.Fields(req.GetRequestForm().Get("scope"))
	if len(requested) == 0 {
		return nil // RFC 6749 §6: omitted, the scope is the one originally granted
	}
	granted := req.GetGrantedScopes()
	narrowed := make(fosite.Arguments, 0, len(requested))
	for _, scope := range requested {
		if !slices.Contains(granted, scope) {
			return fosite.ErrInvalidScope.WithHintf("The scope '%s' was not granted with this refresh token (RFC 6749 §6).", scope)
		}
		if !slices.Contains(narrowed, scope) {
			narrowed = append(narrowed, scope)
		}
	}
	if len(narrowed) == len(granted) {
		return nil
	}
	ar, ok := req.(*fosite.AccessRequest)
	if !ok {
		return fosite.ErrServerError.WithDebugf("unexpected access request type %T", req)
	}
	sess.RefreshScopes = slices.Clone([]string(granted))
	ar.GrantedScope = narrowed
	return nil
}

// checkCodeBinding implements RFC 9449 §10: the code's authorization request named a DPoP key
// thumbprint (dpop_jkt), so the token request must carry a valid proof by that key.
func (b *bindingHandler) checkCodeBinding(ctx context.Context, req fosite.AccessRequester) error {
	code := req.GetRequestForm().Get("code")
	if code == "" {
		return nil
	}
	stored, err := b.store.GetAuthorizeCodeSession(ctx, b.codeSignature(ctx, code), storage.NewSession())
	if err != nil || stored == nil {
		return nil // fosite's own handler already decided on the code itself
	}
	want := stored.GetRequestForm().Get("dpop_jkt")
	if want == "" {
		return nil
	}
	if !equalJKT(dpopJKT(outcomeFrom(ctx)), want) {
		return fosite.ErrInvalidGrant.WithHint("This authorization code is bound to a DPoP key (dpop_jkt); present a DPoP proof signed by that key.")
	}
	return nil
}

// checkInstanceBinding implements ABCA-09 §9.3 for refresh tokens (and, as -10 recommends, for
// codes pushed by an attested instance): the stored session names an instance key, so the
// request must authenticate with attestation for the same key.
func (b *bindingHandler) checkInstanceBinding(ctx context.Context, req fosite.AccessRequester, what string) error {
	sess, ok := req.GetSession().(*storage.Session)
	if !ok || sess.InstanceJKT == "" {
		return nil
	}
	out := outcomeFrom(ctx)
	if !out.verified() {
		return fosite.ErrInvalidGrant.WithHintf("This %s is bound to an attested client instance; the request must authenticate with attestation.", what)
	}
	if !equalJKT(out.attestation.InstanceJKT, sess.InstanceJKT) {
		return fosite.ErrInvalidGrant.WithHintf("This %s is bound to a different client instance key.", what)
	}
	return nil
}
