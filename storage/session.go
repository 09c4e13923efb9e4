package storage

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mohae/deepcopy"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"
)

// Session is the one fosite session type authz stores. It round-trips through JSON (the
// embedded oauth2.JWTSession has no tags, so its fields keep their Go names) and Clone returns a
// *Session, so fosite's refresh flow keeps the concrete type (fosite.md §3.3 items 1–2).
type Session struct {
	oauth2.JWTSession        // JWT access token claims/header (RFC 9068), ExpiresAt, Subject, Username
	InstanceJKT       string `json:"instance_jkt,omitempty"` // attested Client Instance Key thumbprint (ABCA-09 §9.3 refresh binding)
	DPoPJKT           string `json:"dpop_jkt,omitempty"`     // RFC 9449 key binding
	Attester          string `json:"attester,omitempty"`
	PoPMethod         string `json:"pop_method,omitempty"`
	AuthMethod        string `json:"auth_method,omitempty"`
	// RefreshScopes is the scope of the refresh token issued with a refresh whose access token
	// was narrowed by the request's scope parameter (RFC 6749 §6: the new refresh token keeps the
	// scope of the one presented); nil when the two tokens share the request's granted scopes.
	RefreshScopes []string `json:"refresh_scopes,omitempty"`
}

// NewSession returns an empty session whose claims, header and expiry maps are non-nil, ready to
// be passed to fosite as the prototype of a request.
func NewSession() *Session {
	s := &Session{}
	s.normalize()
	return s
}

// normalize allocates the maps fosite and the token minting code write into.
func (s *Session) normalize() {
	if s.JWTClaims == nil {
		s.JWTClaims = &jwt.JWTClaims{}
	}
	if s.JWTClaims.Extra == nil {
		s.JWTClaims.Extra = map[string]interface{}{}
	}
	if s.JWTHeader == nil {
		s.JWTHeader = &jwt.Headers{}
	}
	if s.JWTHeader.Extra == nil {
		s.JWTHeader.Extra = map[string]interface{}{}
	}
	if s.ExpiresAt == nil {
		s.ExpiresAt = map[fosite.TokenType]time.Time{}
	}
}

// Clone returns a deep copy as a *Session (the embedded JWTSession.Clone would return a
// *oauth2.JWTSession and lose the attestation fields).
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c, ok := deepcopy.Copy(s).(*Session)
	if !ok {
		return nil
	}
	return c
}

// hydrateSession decodes a stored session INTO the caller's prototype and returns the session
// the request will carry (fosite.md §3.3 item 1, fosite#256). Like Hydra's toRequest it is a
// plain json.Unmarshal, so maps merge: fosite depends on it, because the code exchange sets the
// access and refresh token expiries on the live session and then hydrates the stored code session
// into it again (flow_authorize_code_token.go), which must not erase them. Struct fields present
// in the stored JSON replace the prototype's; empty omitempty fields leave them. A nil prototype
// gets a fresh NewSession().
func hydrateSession(data string, proto fosite.Session) (fosite.Session, error) {
	switch p := proto.(type) {
	case nil:
		return hydrateSession(data, NewSession())
	case *Session:
		if p == nil {
			return hydrateSession(data, NewSession())
		}
		if err := decodeSession(data, p); err != nil {
			return nil, err
		}
		p.normalize()
		return p, nil
	default:
		if err := decodeSession(data, p); err != nil {
			return nil, err
		}
		return p, nil
	}
}

func decodeSession(data string, into any) error {
	if data == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(data), into); err != nil {
		return fmt.Errorf("%w: session: %w", ErrCorrupt, err)
	}
	return nil
}

// encodeSession is the stored form of a session ("null" for none).
func encodeSession(s fosite.Session) (string, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("%w: session: %w", ErrInvalid, err)
	}
	return string(b), nil
}
