package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"gorm.io/gorm/clause"
)

// Token endpoint authentication methods the client defaults refer to (RFC 7591 §2).
const (
	authMethodNone        = "none"
	authMethodSecretBasic = "client_secret_basic"
	// defaultSigningAlg is the private_key_jwt algorithm when the client names none; fosite's
	// own default (RS256) does not match authz's ES256-first profile.
	defaultSigningAlg = "ES256"
)

// Client is a registered OAuth 2.0 client. It implements fosite.Client and
// fosite.OpenIDConnectClient.
type Client struct {
	ID                          string
	Description                 string
	SecretHash                  []byte // bcrypt; never the clear secret
	RedirectURIs                []string
	GrantTypes                  []string
	ResponseTypes               []string
	Scopes                      []string
	Audience                    []string
	Public                      bool // token_endpoint_auth_method none
	TokenEndpointAuthMethod     string
	TokenEndpointAuthSigningAlg string
	JWKS                        []byte // raw JSON JWK set (private_key_jwt), may be nil
	JWKSURI                     string
	Attesters                   []string // allowed attesters, empty = any
	RequireAttestation          bool
	Source                      string // "config" | "cli" | "api"
	CreatedAt, UpdatedAt        time.Time
}

// GetID implements fosite.Client.
func (c *Client) GetID() string { return c.ID }

// GetHashedSecret implements fosite.Client.
func (c *Client) GetHashedSecret() []byte { return c.SecretHash }

// GetRedirectURIs implements fosite.Client.
func (c *Client) GetRedirectURIs() []string { return c.RedirectURIs }

// GetGrantTypes implements fosite.Client; empty means authorization_code only, as in fosite's
// DefaultClient (OpenID Connect Dynamic Registration §2).
func (c *Client) GetGrantTypes() fosite.Arguments {
	if len(c.GrantTypes) == 0 {
		return fosite.Arguments{"authorization_code"}
	}
	return fosite.Arguments(c.GrantTypes)
}

// GetResponseTypes implements fosite.Client; empty means code only, as in fosite's DefaultClient.
func (c *Client) GetResponseTypes() fosite.Arguments {
	if len(c.ResponseTypes) == 0 {
		return fosite.Arguments{"code"}
	}
	return fosite.Arguments(c.ResponseTypes)
}

// GetScopes implements fosite.Client.
func (c *Client) GetScopes() fosite.Arguments { return fosite.Arguments(c.Scopes) }

// IsPublic implements fosite.Client.
func (c *Client) IsPublic() bool { return c.Public }

// GetAudience implements fosite.Client.
func (c *Client) GetAudience() fosite.Arguments { return fosite.Arguments(c.Audience) }

// GetRequestURIs implements fosite.OpenIDConnectClient (authz registers none).
func (c *Client) GetRequestURIs() []string { return nil }

// GetJSONWebKeys implements fosite.OpenIDConnectClient: the client's private_key_jwt keys as a
// go-jose v3 set (fosite's API type), or nil when none are registered or they do not parse.
func (c *Client) GetJSONWebKeys() *josev3.JSONWebKeySet {
	if len(c.JWKS) == 0 {
		return nil
	}
	var set josev3.JSONWebKeySet
	if err := json.Unmarshal(c.JWKS, &set); err != nil {
		return nil
	}
	return &set
}

// GetJSONWebKeysURI implements fosite.OpenIDConnectClient.
func (c *Client) GetJSONWebKeysURI() string { return c.JWKSURI }

// GetRequestObjectSigningAlgorithm implements fosite.OpenIDConnectClient (no request objects).
func (c *Client) GetRequestObjectSigningAlgorithm() string { return "" }

// GetTokenEndpointAuthMethod implements fosite.OpenIDConnectClient. An unset method reads as
// "none" for public clients and "client_secret_basic" otherwise (RFC 7591 §2's default), because
// fosite compares it literally and an empty value would refuse every method (fosite.md §1.2).
func (c *Client) GetTokenEndpointAuthMethod() string {
	switch {
	case c.TokenEndpointAuthMethod != "":
		return c.TokenEndpointAuthMethod
	case c.Public:
		return authMethodNone
	}
	return authMethodSecretBasic
}

// GetTokenEndpointAuthSigningAlgorithm implements fosite.OpenIDConnectClient; default ES256.
func (c *Client) GetTokenEndpointAuthSigningAlgorithm() string {
	if c.TokenEndpointAuthSigningAlg == "" {
		return defaultSigningAlg
	}
	return c.TokenEndpointAuthSigningAlg
}

// clientColumns are the columns an upsert replaces (created_at is kept).
var clientColumns = []string{
	"description", "secret_hash", "redirect_uris", "grant_types", "response_types", "scopes",
	"audience", "public", "token_endpoint_auth_method", "token_endpoint_auth_signing_alg", "jwks",
	"jwks_uri", "attesters", "require_attestation", "source", "updated_at",
}

// UpsertClient creates or replaces the client c.ID and bumps the generation in the same
// transaction. c.CreatedAt and c.UpdatedAt are set from the stored row.
func (s *Store) UpsertClient(ctx context.Context, c *Client) error {
	return s.writeClient(ctx, c, "upsert client", func(ctx context.Context, row *clientModel) error {
		return s.conn(ctx).Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "id"}},
			DoUpdates: clause.AssignmentColumns(clientColumns),
		}).Create(row).Error
	})
}

// CreateClient stores the new client c.ID and bumps the generation in one transaction; a
// client with that id is ErrConflict (never replaced: two racing creates give one client).
func (s *Store) CreateClient(ctx context.Context, c *Client) error {
	return s.writeClient(ctx, c, "create client", func(ctx context.Context, row *clientModel) error {
		return s.conn(ctx).Create(row).Error
	})
}

// UpdateClient replaces the stored client c.ID (created_at is kept) and bumps the generation in
// one transaction; a client that is gone is ErrNotFound (never re-created: an update racing a
// delete does not bring the client back). The secret hash is written only with withSecret (the
// update sets or clears the secret): otherwise an update that read the client before a
// concurrent SetClientSecret would bring the revoked secret back.
func (s *Store) UpdateClient(ctx context.Context, c *Client, withSecret bool) error {
	columns := clientColumns
	if !withSecret {
		columns = slices.DeleteFunc(slices.Clone(clientColumns), func(col string) bool { return col == "secret_hash" })
	}
	return s.writeClient(ctx, c, "update client", func(ctx context.Context, row *clientModel) error {
		res := s.conn(ctx).Model(&clientModel{}).Where("id = ?", row.ID).Select(columns).Updates(row)
		if res.Error == nil && res.RowsAffected == 0 {
			return fmt.Errorf("client %q: %w", row.ID, ErrNotFound)
		}
		return res.Error
	})
}

// SetClientSecret replaces only the client's secret hash and bumps the generation; a client that
// is gone is ErrNotFound. Other columns are left as they are, so a rotation racing an update
// loses neither.
func (s *Store) SetClientSecret(ctx context.Context, id string, hash []byte) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		res := s.conn(ctx).Model(&clientModel{}).Where("id = ?", id).
			Updates(map[string]any{"secret_hash": hash, "updated_at": dbTime(s.now())})
		if res.Error != nil {
			return mapError("set client secret", res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("storage: client %q: %w", id, ErrNotFound)
		}
		return s.bumpGeneration(ctx)
	})
}

// writeClient runs write with c's row in a transaction that also reads back the timestamps and
// bumps the generation.
func (s *Store) writeClient(ctx context.Context, c *Client, op string, write func(context.Context, *clientModel) error) error {
	if c == nil || c.ID == "" {
		return fmt.Errorf("%w: client id is empty", ErrInvalid)
	}
	row, err := clientToModel(c)
	if err != nil {
		return err
	}
	now := dbTime(s.now())
	row.CreatedAt, row.UpdatedAt = now, now
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := write(ctx, row); err != nil {
			return mapError(op, err)
		}
		var stored clientModel
		if err := s.conn(ctx).Where("id = ?", c.ID).Take(&stored).Error; err != nil {
			return mapError(op, err)
		}
		c.CreatedAt, c.UpdatedAt = stored.CreatedAt.UTC(), stored.UpdatedAt.UTC()
		return s.bumpGeneration(ctx)
	})
}

// GetClientRecord returns the client id, or ErrNotFound.
func (s *Store) GetClientRecord(ctx context.Context, id string) (*Client, error) {
	var row clientModel
	if err := s.conn(ctx).Where("id = ?", id).Take(&row).Error; err != nil {
		return nil, mapError(fmt.Sprintf("client %q", id), err)
	}
	return clientFromModel(&row)
}

// GetClient implements fosite.ClientManager with one primary-key lookup; it returns a *Client.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := s.GetClientRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ListClients returns every client ordered by id.
func (s *Store) ListClients(ctx context.Context) ([]Client, error) {
	var rows []clientModel
	if err := s.conn(ctx).Order("id").Find(&rows).Error; err != nil {
		return nil, mapError("list clients", err)
	}
	out := make([]Client, 0, len(rows))
	for i := range rows {
		c, err := clientFromModel(&rows[i])
		if err != nil {
			return nil, err
		}
		out = append(out, *c)
	}
	return out, nil
}

// DeleteClient removes the client, its tokens, codes and pushed requests, and bumps the
// generation, in one transaction. A missing client is ErrNotFound.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		res := s.conn(ctx).Where("id = ?", id).Delete(&clientModel{})
		if res.Error != nil {
			return mapError("delete client", res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("storage: client %q: %w", id, ErrNotFound)
		}
		if err := s.conn(ctx).Where("client_id = ?", id).Delete(&requestModel{}).Error; err != nil {
			return mapError("delete client tokens", err)
		}
		if err := s.conn(ctx).Where("client_id = ?", id).Delete(&parModel{}).Error; err != nil {
			return mapError("delete client pushed requests", err)
		}
		return s.bumpGeneration(ctx)
	})
}

func clientToModel(c *Client) (*clientModel, error) {
	m := &clientModel{
		ID: c.ID, Description: c.Description, SecretHash: c.SecretHash, Public: c.Public,
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, TokenEndpointAuthSigningAlg: c.TokenEndpointAuthSigningAlg,
		JWKS: c.JWKS, JWKSURI: c.JWKSURI, RequireAttestation: c.RequireAttestation, Source: c.Source,
	}
	if len(c.JWKS) > 0 && !json.Valid(c.JWKS) {
		return nil, fmt.Errorf("%w: client %q: jwks is not JSON", ErrInvalid, c.ID)
	}
	lists := []struct {
		dst *string
		src []string
	}{
		{&m.RedirectURIs, c.RedirectURIs}, {&m.GrantTypes, c.GrantTypes}, {&m.ResponseTypes, c.ResponseTypes},
		{&m.Scopes, c.Scopes}, {&m.Audience, c.Audience}, {&m.Attesters, c.Attesters},
	}
	for _, l := range lists {
		*l.dst = encodeList(l.src)
	}
	return m, nil
}

func clientFromModel(m *clientModel) (*Client, error) {
	c := &Client{
		ID: m.ID, Description: m.Description, SecretHash: m.SecretHash, Public: m.Public,
		TokenEndpointAuthMethod: m.TokenEndpointAuthMethod, TokenEndpointAuthSigningAlg: m.TokenEndpointAuthSigningAlg,
		JWKS: m.JWKS, JWKSURI: m.JWKSURI, RequireAttestation: m.RequireAttestation, Source: m.Source,
		CreatedAt: m.CreatedAt.UTC(), UpdatedAt: m.UpdatedAt.UTC(),
	}
	lists := []struct {
		name string
		dst  *[]string
		src  string
	}{
		{"redirect_uris", &c.RedirectURIs, m.RedirectURIs}, {"grant_types", &c.GrantTypes, m.GrantTypes},
		{"response_types", &c.ResponseTypes, m.ResponseTypes}, {"scopes", &c.Scopes, m.Scopes},
		{"audience", &c.Audience, m.Audience}, {"attesters", &c.Attesters, m.Attesters},
	}
	for _, l := range lists {
		v, err := decodeList(l.src)
		if err != nil {
			return nil, fmt.Errorf("client %q: %s: %w", m.ID, l.name, err)
		}
		*l.dst = v
	}
	return c, nil
}

// encodeList is the stored form of a string list: a JSON array, "[]" for none.
func encodeList(v []string) string {
	if len(v) == 0 {
		return "[]"
	}
	b, err := json.Marshal(v)
	if err != nil { // cannot happen for []string
		return "[]"
	}
	return string(b)
}

// decodeList parses a stored JSON array; empty text and "[]" give nil.
func decodeList(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if len(v) == 0 {
		return nil, nil
	}
	return v, nil
}
