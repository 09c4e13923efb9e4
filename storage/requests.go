package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"

	"github.com/ory/fosite"
)

// Form parameters a stored access or refresh token keeps: fosite's own default allow-list
// (request.go defaultAllowedParameters; fosite.md §3.3 item 6).
var tokenFormAllowList = map[string]bool{
	"grant_type": true, "response_type": true, "scope": true, "client_id": true,
}

// Credentials never stored, whatever allow-list the caller applied: client secrets and
// assertions, PKCE verifiers, refresh tokens, passwords. Code and PKCE rows keep the rest of what
// fosite's SanitationWhiteList left (redirect_uri, code_challenge, dpop_jkt, ...).
var formDenyList = []string{
	"client_secret", "client_assertion", "client_assertion_type", "code_verifier", "refresh_token",
	"password", "assertion", "subject_token", "actor_token",
}

// sanitizeForm is the form a row of kind keeps (fosite.md §3.3 item 6).
func sanitizeForm(kind string, form url.Values) url.Values {
	out := url.Values{}
	for k, v := range form {
		if (kind == kindAccess || kind == kindRefresh) && !tokenFormAllowList[k] {
			continue
		}
		out[k] = append([]string(nil), v...)
	}
	for _, k := range formDenyList {
		delete(out, k)
	}
	return out
}

// hashSignature is the stored key of a token signature or request_uri: the SHA-256 hex digest, so
// JWT signatures of any length fit the primary key and the table never holds a usable handle
// (fosite.md §3.3 item 4).
func hashSignature(signature string) string {
	sum := sha256.Sum256([]byte(signature))
	return hex.EncodeToString(sum[:])
}

// expiryTokenType maps a row kind to the session expiry that bounds it.
func expiryTokenType(kind string) fosite.TokenType {
	switch kind {
	case kindAccess:
		return fosite.AccessToken
	case kindRefresh:
		return fosite.RefreshToken
	}
	return fosite.AuthorizeCode // code and PKCE rows live as long as the code
}

// requestToModel is Hydra's sqlSchemaFromRequest: the row storing req under (kind, signature).
func (s *Store) requestToModel(kind, signature, accessSignature string, req fosite.Requester) (*requestModel, error) {
	if req == nil {
		return nil, fmt.Errorf("%w: %s session: request is nil", ErrInvalid, kind)
	}
	client := req.GetClient()
	if client == nil {
		return nil, fmt.Errorf("%w: %s session: request has no client", ErrInvalid, kind)
	}
	sess := req.GetSession()
	data, err := encodeSession(sess)
	if err != nil {
		return nil, err
	}
	m := &requestModel{
		Kind:             kind,
		Signature:        hashSignature(signature),
		RequestID:        req.GetID(),
		ClientID:         client.GetID(),
		RequestedAt:      dbTime(req.GetRequestedAt()),
		Scopes:           encodeList(req.GetRequestedScopes()),
		GrantedScopes:    encodeList(req.GetGrantedScopes()),
		Audiences:        encodeList(req.GetRequestedAudience()),
		GrantedAudiences: encodeList(req.GetGrantedAudience()),
		Form:             sanitizeForm(kind, req.GetRequestForm()).Encode(),
		Session:          data,
		Active:           true,
	}
	if accessSignature != "" {
		m.AccessSignature = hashSignature(accessSignature)
	}
	if sess != nil {
		m.Subject = sess.GetSubject()
		m.ExpiresAt = dbTimePtr(sess.GetExpiresAt(expiryTokenType(kind)))
	}
	if as, ok := sess.(*Session); ok && as != nil {
		m.InstanceJKT, m.DPoPJKT = as.InstanceJKT, as.DPoPJKT
		if kind == kindRefresh && as.RefreshScopes != nil {
			m.GrantedScopes = encodeList(as.RefreshScopes)
		}
	}
	return m, nil
}

// modelToRequest is Hydra's toRequest: the stored request with its client loaded and the stored
// session decoded into proto (see hydrateSession).
func (s *Store) modelToRequest(ctx context.Context, m *requestModel, proto fosite.Session) (*fosite.Request, error) {
	client, err := s.GetClientRecord(ctx, m.ClientID)
	if err != nil {
		return nil, err
	}
	sess, err := hydrateSession(m.Session, proto)
	if err != nil {
		return nil, fmt.Errorf("storage: %s session: %w", m.Kind, err)
	}
	form, err := url.ParseQuery(m.Form)
	if err != nil {
		return nil, fmt.Errorf("storage: %s session: %w: form: %w", m.Kind, ErrCorrupt, err)
	}
	r := &fosite.Request{
		ID:          m.RequestID,
		RequestedAt: m.RequestedAt.UTC(),
		Client:      client,
		Form:        form,
		Session:     sess,
	}
	lists := []struct {
		name string
		dst  *fosite.Arguments
		src  string
	}{
		{"scopes", &r.RequestedScope, m.Scopes}, {"granted_scopes", &r.GrantedScope, m.GrantedScopes},
		{"audiences", &r.RequestedAudience, m.Audiences}, {"granted_audiences", &r.GrantedAudience, m.GrantedAudiences},
	}
	for _, l := range lists {
		v, err := decodeList(l.src)
		if err != nil {
			return nil, fmt.Errorf("storage: %s session: %s: %w", m.Kind, l.name, err)
		}
		*l.dst = fosite.Arguments(v)
		if *l.dst == nil {
			*l.dst = fosite.Arguments{}
		}
	}
	return r, nil
}

// createRequest stores req under (kind, signature) in one INSERT.
func (s *Store) createRequest(ctx context.Context, kind, signature, accessSignature string, req fosite.Requester) error {
	m, err := s.requestToModel(kind, signature, accessSignature, req)
	if err != nil {
		return err
	}
	if d := deferredFrom(ctx); d != nil {
		d.add(m)
		return nil
	}
	if err := s.conn(ctx).Create(m).Error; err != nil {
		return mapError("create "+kind+" session", err)
	}
	return nil
}

// getRequest loads (kind, signature). An inactive code returns the request together with
// fosite.ErrInvalidatedAuthorizeCode, an inactive refresh token with fosite.ErrInactiveToken
// (fosite.md §3.3 item 5: fosite needs the requester to revoke the grant).
func (s *Store) getRequest(ctx context.Context, kind, signature string, proto fosite.Session) (fosite.Requester, error) {
	var m requestModel
	err := s.conn(ctx).Where("kind = ? AND signature = ?", kind, hashSignature(signature)).Take(&m).Error
	if err != nil {
		return nil, mapError("get "+kind+" session", err)
	}
	r, err := s.modelToRequest(ctx, &m, proto)
	if err != nil {
		return nil, err
	}
	if !m.Active {
		switch kind {
		case kindCode:
			return r, fosite.ErrInvalidatedAuthorizeCode
		case kindRefresh:
			return r, fosite.ErrInactiveToken
		}
	}
	return r, nil
}

// deleteRequest removes (kind, signature); a missing row is not an error (memory.go).
func (s *Store) deleteRequest(ctx context.Context, kind, signature string) error {
	err := s.conn(ctx).Where("kind = ? AND signature = ?", kind, hashSignature(signature)).Delete(&requestModel{}).Error
	return mapError("delete "+kind+" session", err)
}

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, code string, req fosite.Requester) error {
	return s.createRequest(ctx, kindCode, code, "", req)
}

// GetAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage: the session is decoded into
// session; a used code returns the request and fosite.ErrInvalidatedAuthorizeCode.
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, code string, session fosite.Session) (fosite.Requester, error) {
	return s.getRequest(ctx, kindCode, code, session)
}

// InvalidateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage. It is the race guard of
// the code exchange (RFC 6749 §4.1.2: a code is used once): only an active code is
// deactivated; a code another request already invalidated gives fosite.ErrSerializationFailure, a
// missing one ErrNotFound.
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, code string) error {
	sig := hashSignature(code)
	res := s.conn(ctx).Model(&requestModel{}).
		Where("kind = ? AND signature = ? AND active = ?", kindCode, sig, true).
		Update("active", false)
	if res.Error != nil {
		return mapError("invalidate code session", res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	var n int64
	if err := s.conn(ctx).Model(&requestModel{}).Where("kind = ? AND signature = ?", kindCode, sig).Count(&n).Error; err != nil {
		return mapError("invalidate code session", err)
	}
	if n == 0 {
		return fmt.Errorf("storage: invalidate code session: %w", ErrNotFound)
	}
	return fmt.Errorf("storage: invalidate code session: code already used: %w", fosite.ErrSerializationFailure)
}

// CreateAccessTokenSession implements oauth2.AccessTokenStorage in one INSERT.
func (s *Store) CreateAccessTokenSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.createRequest(ctx, kindAccess, signature, "", req)
}

// GetAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	return s.getRequest(ctx, kindAccess, signature, session)
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return s.deleteRequest(ctx, kindAccess, signature)
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage; accessSignature links the
// refresh token to the access token issued with it.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, req fosite.Requester) error {
	return s.createRequest(ctx, kindRefresh, signature, accessSignature, req)
}

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage: a rotated or revoked refresh
// token returns the request and fosite.ErrInactiveToken.
func (s *Store) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	return s.getRequest(ctx, kindRefresh, signature, session)
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	return s.deleteRequest(ctx, kindRefresh, signature)
}

// RotateRefreshToken implements oauth2.RefreshTokenStorage and is the race guard of the refresh
// grant (fosite.md §3.3 item 8): one conditional UPDATE deactivates the presented refresh token
// only while it is still active, so of concurrent refreshes exactly one affects a row; the others
// get fosite.ErrSerializationFailure. The winner then revokes the grant's access tokens
// (memory.go: RevokeAccessToken(requestID)).
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, refreshTokenSignature string) error {
	res := s.conn(ctx).Model(&requestModel{}).
		Where("kind = ? AND signature = ? AND request_id = ? AND active = ?", kindRefresh, hashSignature(refreshTokenSignature), requestID, true).
		Update("active", false)
	if res.Error != nil {
		return mapError("rotate refresh token", res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("storage: rotate refresh token: not active any more: %w", fosite.ErrSerializationFailure)
	}
	return s.RevokeAccessToken(ctx, requestID)
}

// RevokeRefreshToken implements oauth2.TokenRevocationStorage (RFC 7009 §2.1): every refresh
// token of the grant requestID is deactivated.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	err := s.conn(ctx).Model(&requestModel{}).
		Where("kind = ? AND request_id = ?", kindRefresh, requestID).
		Update("active", false).Error
	return mapError("revoke refresh tokens", err)
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage (RFC 7009 §2.1): every access token
// of the grant requestID is deleted.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	err := s.conn(ctx).Where("kind = ? AND request_id = ?", kindAccess, requestID).Delete(&requestModel{}).Error
	return mapError("revoke access tokens", err)
}

// CreatePKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) CreatePKCERequestSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.createRequest(ctx, kindPKCE, signature, "", req)
}

// GetPKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	return s.getRequest(ctx, kindPKCE, signature, session)
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) DeletePKCERequestSession(ctx context.Context, signature string) error {
	return s.deleteRequest(ctx, kindPKCE, signature)
}
