package storage

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	josev4 "github.com/go-jose/go-jose/v4"
	"gorm.io/gorm/clause"
)

// maxSharedSecretSize bounds SharedSecret's size argument.
const maxSharedSecretSize = 1024

// SharedSecret returns the random secret name of size bytes, creating it on first use. It is
// safe for replicas starting at once: INSERT ... ON CONFLICT DO NOTHING, then SELECT, so every
// caller reads the one value that won. A stored secret of another size is an error rather than
// silently used.
func (s *Store) SharedSecret(ctx context.Context, name string, size int) ([]byte, error) {
	if name == "" || size <= 0 || size > maxSharedSecretSize {
		return nil, fmt.Errorf("%w: shared secret %q of %d bytes", ErrInvalid, name, size)
	}
	fresh := make([]byte, size)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("storage: shared secret: %w", err)
	}
	row := &sharedSecretModel{Name: name, Value: fresh, CreatedAt: dbTime(s.now())}
	if err := s.conn(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(row).Error; err != nil {
		return nil, mapError("create shared secret", err)
	}
	var stored sharedSecretModel
	if err := s.conn(ctx).Where("name = ?", name).Take(&stored).Error; err != nil {
		return nil, mapError("read shared secret", err)
	}
	if len(stored.Value) != size {
		return nil, fmt.Errorf("storage: shared secret %q: %w: has %d bytes, want %d", name, ErrCorrupt, len(stored.Value), size)
	}
	return stored.Value, nil
}

// SigningKey is an RFC 9068 access-token signing key: ES256 on P-256 (the only ECDSA curve
// fosite's jwt.DefaultSigner signs with, fosite.md §5). KID is the RFC 7638 SHA-256 thumbprint
// of the public key, base64url.
type SigningKey struct {
	KID       string
	Alg       string
	Private   *ecdsa.PrivateKey
	CreatedAt time.Time
	Active    bool
}

// signingAlg is the algorithm of every key EnsureSigningKey creates.
const signingAlg = "ES256"

// activeSlot is the ActiveSlot value of the active key.
var activeSlot = 1

// EnsureSigningKey returns the active signing key, creating one when there is none. Replicas
// racing on an empty database converge on one key: the active key holds the unique active slot,
// so every INSERT but the first is a no-op, and all read the winner back.
func (s *Store) EnsureSigningKey(ctx context.Context) (*SigningKey, error) {
	if k, err := s.activeSigningKey(ctx); err == nil {
		return k, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("storage: signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("storage: signing key: %w", err)
	}
	kid, err := thumbprint(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	slot := activeSlot
	row := &signingKeyModel{KID: kid, Alg: signingAlg, PrivateDER: der, ActiveSlot: &slot, CreatedAt: dbTime(s.now())}
	if err := s.conn(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(row).Error; err != nil {
		return nil, mapError("create signing key", err)
	}
	return s.activeSigningKey(ctx)
}

func (s *Store) activeSigningKey(ctx context.Context) (*SigningKey, error) {
	var row signingKeyModel
	if err := s.conn(ctx).Where("active_slot = ?", activeSlot).Take(&row).Error; err != nil {
		return nil, mapError("active signing key", err)
	}
	return signingKeyFromModel(&row)
}

// SigningKeys returns every published key, the active one first, then newest first.
func (s *Store) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	var rows []signingKeyModel
	err := s.conn(ctx).
		Order(clause.OrderBy{Expression: clause.Expr{SQL: "CASE WHEN active_slot IS NULL THEN 1 ELSE 0 END, created_at DESC, kid"}}).
		Find(&rows).Error
	if err != nil {
		return nil, mapError("signing keys", err)
	}
	out := make([]SigningKey, 0, len(rows))
	for i := range rows {
		k, err := signingKeyFromModel(&rows[i])
		if err != nil {
			return nil, err
		}
		out = append(out, *k)
	}
	return out, nil
}

func signingKeyFromModel(m *signingKeyModel) (*SigningKey, error) {
	parsed, err := x509.ParsePKCS8PrivateKey(m.PrivateDER)
	if err != nil {
		return nil, fmt.Errorf("storage: signing key %q: %w: %w", m.KID, ErrCorrupt, err)
	}
	priv, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("storage: signing key %q: %w: %T is not an ECDSA key", m.KID, ErrCorrupt, parsed)
	}
	return &SigningKey{KID: m.KID, Alg: m.Alg, Private: priv, CreatedAt: m.CreatedAt.UTC(), Active: m.ActiveSlot != nil}, nil
}

// thumbprint is the RFC 7638 SHA-256 JWK thumbprint of pub, base64url without padding.
func thumbprint(pub *ecdsa.PublicKey) (string, error) {
	jwk := josev4.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("storage: signing key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}
