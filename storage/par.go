package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/ory/fosite"
)

// defaultPARLifespan bounds a pushed request whose session carries no expiry; it is fosite's
// default PushedAuthorizeContextLifespan (config_default.go).
const defaultPARLifespan = 5 * time.Minute

// parPayload is the stored form of a pushed authorization request: everything fosite's
// authorizeRequestFromPAR reads back (ID, client, scopes, audiences, form, session, redirect_uri,
// response types, state, response mode).
type parPayload struct {
	ID                   string          `json:"id"`
	RequestedAt          time.Time       `json:"requested_at"`
	RequestedScope       []string        `json:"scopes"`
	GrantedScope         []string        `json:"granted_scopes"`
	RequestedAudience    []string        `json:"audiences"`
	GrantedAudience      []string        `json:"granted_audiences"`
	Form                 url.Values      `json:"form"`
	Session              json.RawMessage `json:"session"`
	ResponseTypes        []string        `json:"response_types"`
	RedirectURI          string          `json:"redirect_uri,omitempty"`
	State                string          `json:"state"`
	HandledResponseTypes []string        `json:"handled_response_types"`
	ResponseMode         string          `json:"response_mode"`
	DefaultResponseMode  string          `json:"default_response_mode"`
}

// CreatePARSession implements fosite.PARStorage (RFC 9126 §2.2). The row expires at the
// session's PushedAuthorizeRequestContext expiry (fosite sets it from
// PushedAuthorizeContextLifespan), else after defaultPARLifespan.
func (s *Store) CreatePARSession(ctx context.Context, requestURI string, req fosite.AuthorizeRequester) error {
	if req == nil || req.GetClient() == nil {
		return fmt.Errorf("%w: pushed request without client", ErrInvalid)
	}
	sess := req.GetSession()
	data, err := encodeSession(sess)
	if err != nil {
		return err
	}
	p := parPayload{
		ID:                req.GetID(),
		RequestedAt:       dbTime(req.GetRequestedAt()),
		RequestedScope:    req.GetRequestedScopes(),
		GrantedScope:      req.GetGrantedScopes(),
		RequestedAudience: req.GetRequestedAudience(),
		GrantedAudience:   req.GetGrantedAudience(),
		Form:              sanitizeForm(kindCode, req.GetRequestForm()),
		Session:           json.RawMessage(data),
		ResponseTypes:     req.GetResponseTypes(),
		State:             req.GetState(),
	}
	if u := req.GetRedirectURI(); u != nil {
		p.RedirectURI = u.String()
	}
	if ar, ok := req.(*fosite.AuthorizeRequest); ok {
		p.HandledResponseTypes = ar.HandledResponseTypes
		p.ResponseMode = string(ar.ResponseMode)
		p.DefaultResponseMode = string(ar.DefaultResponseMode)
	} else {
		p.ResponseMode = string(req.GetResponseMode())
		p.DefaultResponseMode = string(req.GetDefaultResponseMode())
	}
	body, err := json.Marshal(&p)
	if err != nil {
		return fmt.Errorf("%w: pushed request: %w", ErrInvalid, err)
	}
	var expires time.Time
	if sess != nil {
		expires = sess.GetExpiresAt(fosite.PushedAuthorizeRequestContext)
	}
	if expires.IsZero() {
		expires = s.now().Add(defaultPARLifespan)
	}
	row := &parModel{
		Signature: hashSignature(requestURI),
		ClientID:  req.GetClient().GetID(),
		Request:   string(body),
		ExpiresAt: dbTime(expires),
	}
	if err := s.conn(ctx).Create(row).Error; err != nil {
		return mapError("create pushed request", err)
	}
	return nil
}

// GetPARSession implements fosite.PARStorage. An expired pushed request is ErrNotFound: fosite
// never checks the expiry itself (fosite.md §3.3 item 9, RFC 9126 §2.2).
func (s *Store) GetPARSession(ctx context.Context, requestURI string) (fosite.AuthorizeRequester, error) {
	var row parModel
	err := s.conn(ctx).
		Where("signature = ? AND expires_at > ?", hashSignature(requestURI), dbTime(s.now())).
		Take(&row).Error
	if err != nil {
		return nil, mapError("get pushed request", err)
	}
	var p parPayload
	if err := json.Unmarshal([]byte(row.Request), &p); err != nil {
		return nil, fmt.Errorf("storage: pushed request: %w: %w", ErrCorrupt, err)
	}
	client, err := s.GetClientRecord(ctx, row.ClientID)
	if err != nil {
		return nil, err
	}
	sess, err := hydrateSession(string(p.Session), nil)
	if err != nil {
		return nil, fmt.Errorf("storage: pushed request: %w", err)
	}
	ar := fosite.NewAuthorizeRequest()
	ar.ID = p.ID
	ar.RequestedAt = p.RequestedAt.UTC()
	ar.Client = client
	ar.Session = sess
	ar.RequestedScope = fosite.Arguments(nonNil(p.RequestedScope))
	ar.GrantedScope = fosite.Arguments(nonNil(p.GrantedScope))
	ar.RequestedAudience = fosite.Arguments(nonNil(p.RequestedAudience))
	ar.GrantedAudience = fosite.Arguments(nonNil(p.GrantedAudience))
	if p.Form != nil {
		ar.Form = p.Form
	}
	ar.ResponseTypes = fosite.Arguments(nonNil(p.ResponseTypes))
	ar.HandledResponseTypes = fosite.Arguments(nonNil(p.HandledResponseTypes))
	ar.State = p.State
	ar.ResponseMode = fosite.ResponseModeType(p.ResponseMode)
	ar.DefaultResponseMode = fosite.ResponseModeType(p.DefaultResponseMode)
	if p.RedirectURI != "" {
		u, err := url.Parse(p.RedirectURI)
		if err != nil {
			return nil, fmt.Errorf("storage: pushed request: %w: redirect_uri: %w", ErrCorrupt, err)
		}
		ar.RedirectURI = u
	}
	return ar, nil
}

// DeletePARSession implements fosite.PARStorage; a missing request is not an error.
func (s *Store) DeletePARSession(ctx context.Context, requestURI string) error {
	err := s.conn(ctx).Where("signature = ?", hashSignature(requestURI)).Delete(&parModel{}).Error
	return mapError("delete pushed request", err)
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}
