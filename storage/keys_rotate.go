package storage

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"time"
)

// RotateSigningKey creates a new ES256 signing key and makes it the active one, keeping the
// previous keys published: the server signs with a new key only after it has been published for
// a while, and verifies with any key still in the table. Bumps the generation so every replica
// reloads its key set within seconds.
func (s *Store) RotateSigningKey(ctx context.Context) (*SigningKey, error) {
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
	err = s.InTx(ctx, func(ctx context.Context) error {
		if err := s.conn(ctx).Model(&signingKeyModel{}).Where("active_slot IS NOT NULL").Update("active_slot", nil).Error; err != nil {
			return mapError("retire signing key", err)
		}
		slot := activeSlot
		row := &signingKeyModel{KID: kid, Alg: signingAlg, PrivateDER: der, ActiveSlot: &slot, CreatedAt: dbTime(s.now())}
		if err := s.conn(ctx).Create(row).Error; err != nil {
			return mapError("create signing key", err)
		}
		return s.bumpGeneration(ctx)
	})
	if err != nil {
		return nil, err
	}
	return s.activeSigningKey(ctx)
}

// PruneSigningKeys deletes retired keys whose successor has been active for longer than keep
// (the access-token lifetime plus the publish delay): no unexpired token can name them.
func (s *Store) PruneSigningKeys(ctx context.Context, keep time.Duration) (int64, error) {
	var n int64
	err := s.InTx(ctx, func(ctx context.Context) error {
		keys, err := s.SigningKeys(ctx)
		if err != nil {
			return err
		}
		// keys: active first, then newest first. A retired key may go once the key created
		// right after it is older than keep.
		cutoff := s.now().Add(-keep)
		var newest time.Time
		for i, k := range keys {
			if i == 0 {
				newest = k.CreatedAt
				continue
			}
			successor := newest
			if i > 1 {
				successor = keys[i-1].CreatedAt
			}
			if !k.Active && successor.Before(cutoff) {
				res := s.conn(ctx).Where("kid = ? AND active_slot IS NULL", k.KID).Delete(&signingKeyModel{})
				if res.Error != nil {
					return mapError("prune signing key", res.Error)
				}
				n += res.RowsAffected
			}
		}
		if n > 0 {
			return s.bumpGeneration(ctx)
		}
		return nil
	})
	return n, err
}
