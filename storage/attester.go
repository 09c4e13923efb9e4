package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm/clause"
)

// Attester is a trusted client attester (ABCA-09 §9.7, profile §4 and §8): the keys that verify
// Client Attestation JWTs it issues, and the policy attached to it.
type Attester struct {
	ID, Description      string
	JWKS                 []byte // raw JSON JWK set (public keys), may be nil
	JWKSURI              string
	X5CRoots             string // PEM
	JKUAllowlist         []string
	RequiredClaims       []byte // raw JSON object, may be nil
	HMACSecret           string
	Enabled              bool
	Source               string
	CreatedAt, UpdatedAt time.Time
}

// attesterColumns are the columns an upsert replaces (created_at is kept).
var attesterColumns = []string{
	"description", "jwks", "jwks_uri", "x5c_roots", "jku_allowlist", "required_claims",
	"hmac_secret", "enabled", "source", "updated_at",
}

// UpsertAttester creates or replaces the attester a.ID and bumps the generation in the same
// transaction. a.CreatedAt and a.UpdatedAt are set from the stored row.
func (s *Store) UpsertAttester(ctx context.Context, a *Attester) error {
	return s.writeAttester(ctx, a, "upsert attester", func(ctx context.Context, row *attesterModel) error {
		return s.conn(ctx).Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "id"}},
			DoUpdates: clause.AssignmentColumns(attesterColumns),
		}).Create(row).Error
	})
}

// CreateAttester stores the new attester a.ID (ErrConflict if it exists) and bumps the
// generation in one transaction.
func (s *Store) CreateAttester(ctx context.Context, a *Attester) error {
	return s.writeAttester(ctx, a, "create attester", func(ctx context.Context, row *attesterModel) error {
		return s.conn(ctx).Create(row).Error
	})
}

// UpdateAttester replaces the stored attester a.ID (created_at is kept) and bumps the generation
// in one transaction; an attester that is gone is ErrNotFound (an update racing a delete does
// not bring it back).
func (s *Store) UpdateAttester(ctx context.Context, a *Attester) error {
	return s.writeAttester(ctx, a, "update attester", func(ctx context.Context, row *attesterModel) error {
		res := s.conn(ctx).Model(&attesterModel{}).Where("id = ?", row.ID).Select(attesterColumns).Updates(row)
		if res.Error == nil && res.RowsAffected == 0 {
			return fmt.Errorf("attester %q: %w", row.ID, ErrNotFound)
		}
		return res.Error
	})
}

// writeAttester checks a, runs write with its row in a transaction that also reads back the
// timestamps and bumps the generation.
func (s *Store) writeAttester(ctx context.Context, a *Attester, op string, write func(context.Context, *attesterModel) error) error {
	if a == nil || a.ID == "" {
		return fmt.Errorf("%w: attester id is empty", ErrInvalid)
	}
	if len(a.JWKS) > 0 && !json.Valid(a.JWKS) {
		return fmt.Errorf("%w: attester %q: jwks is not JSON", ErrInvalid, a.ID)
	}
	if len(a.RequiredClaims) > 0 && !json.Valid(a.RequiredClaims) {
		return fmt.Errorf("%w: attester %q: required_claims is not JSON", ErrInvalid, a.ID)
	}
	now := dbTime(s.now())
	row := &attesterModel{
		ID: a.ID, Description: a.Description, JWKS: a.JWKS, JWKSURI: a.JWKSURI, X5CRoots: a.X5CRoots,
		JKUAllowlist: encodeList(a.JKUAllowlist), RequiredClaims: a.RequiredClaims, HMACSecret: a.HMACSecret,
		Enabled: a.Enabled, Source: a.Source, CreatedAt: now, UpdatedAt: now,
	}
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := write(ctx, row); err != nil {
			return mapError(op, err)
		}
		var stored attesterModel
		if err := s.conn(ctx).Where("id = ?", a.ID).Take(&stored).Error; err != nil {
			return mapError(op, err)
		}
		a.CreatedAt, a.UpdatedAt = stored.CreatedAt.UTC(), stored.UpdatedAt.UTC()
		return s.bumpGeneration(ctx)
	})
}

// GetAttester returns the attester id, or ErrNotFound.
func (s *Store) GetAttester(ctx context.Context, id string) (*Attester, error) {
	var row attesterModel
	if err := s.conn(ctx).Where("id = ?", id).Take(&row).Error; err != nil {
		return nil, mapError(fmt.Sprintf("attester %q", id), err)
	}
	return attesterFromModel(&row)
}

// ListAttesters returns every attester (enabled or not) ordered by id.
func (s *Store) ListAttesters(ctx context.Context) ([]Attester, error) {
	var rows []attesterModel
	if err := s.conn(ctx).Order("id").Find(&rows).Error; err != nil {
		return nil, mapError("list attesters", err)
	}
	out := make([]Attester, 0, len(rows))
	for i := range rows {
		a, err := attesterFromModel(&rows[i])
		if err != nil {
			return nil, err
		}
		out = append(out, *a)
	}
	return out, nil
}

// DeleteAttester removes the attester and bumps the generation; a missing one is ErrNotFound.
func (s *Store) DeleteAttester(ctx context.Context, id string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		res := s.conn(ctx).Where("id = ?", id).Delete(&attesterModel{})
		if res.Error != nil {
			return mapError("delete attester", res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("storage: attester %q: %w", id, ErrNotFound)
		}
		return s.bumpGeneration(ctx)
	})
}

func attesterFromModel(m *attesterModel) (*Attester, error) {
	jku, err := decodeList(m.JKUAllowlist)
	if err != nil {
		return nil, fmt.Errorf("attester %q: jku_allowlist: %w", m.ID, err)
	}
	return &Attester{
		ID: m.ID, Description: m.Description, JWKS: m.JWKS, JWKSURI: m.JWKSURI, X5CRoots: m.X5CRoots,
		JKUAllowlist: jku, RequiredClaims: m.RequiredClaims, HMACSecret: m.HMACSecret, Enabled: m.Enabled,
		Source: m.Source, CreatedAt: m.CreatedAt.UTC(), UpdatedAt: m.UpdatedAt.UTC(),
	}, nil
}
