package storage

import (
	"context"
	"fmt"

	"gorm.io/gorm/clause"
)

// Generation returns the trust-set generation: a counter bumped in the same transaction as every
// client, attester and instance-revocation write. Replicas poll it to know when to reload.
func (s *Store) Generation(ctx context.Context) (int64, error) {
	var g generationModel
	if err := s.conn(ctx).Where("id = ?", 1).Take(&g).Error; err != nil {
		return 0, mapError("generation", err)
	}
	return g.Value, nil
}

// bumpGeneration increments the generation; callers run it inside their write's transaction.
func (s *Store) bumpGeneration(ctx context.Context) error {
	res := s.conn(ctx).Exec("UPDATE generation SET value = value + 1 WHERE id = 1")
	if res.Error != nil {
		return mapError("bump generation", res.Error)
	}
	if res.RowsAffected != 1 {
		return fmt.Errorf("storage: bump generation: %w (run Migrate)", ErrNotFound)
	}
	return nil
}

// RevokeInstance records the Client Instance Key thumbprint jkt as revoked (a compromised
// instance, ABCA-09 §1 and §9.3) and, in the same transaction, revokes every token bound to it:
// access tokens whose session's InstanceJKT or DPoPJKT is jkt are deleted, such refresh tokens
// and authorization codes are deactivated (so a later use is reuse and revokes the grant), and
// the generation is bumped. Revoking an already revoked key updates the reason and is not an
// error.
func (s *Store) RevokeInstance(ctx context.Context, jkt, reason string) error {
	if jkt == "" {
		return fmt.Errorf("%w: instance key thumbprint is empty", ErrInvalid)
	}
	return s.InTx(ctx, func(ctx context.Context) error {
		row := &revokedInstanceModel{JKT: jkt, Reason: reason, RevokedAt: dbTime(s.now())}
		err := s.conn(ctx).Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "jkt"}},
			DoUpdates: clause.AssignmentColumns([]string{"reason"}),
		}).Create(row).Error
		if err != nil {
			return mapError("revoke instance", err)
		}
		bound := s.conn(ctx).Where("instance_jkt = ? OR dpop_jkt = ?", jkt, jkt)
		if err := bound.Where("kind = ?", kindAccess).Delete(&requestModel{}).Error; err != nil {
			return mapError("revoke instance access tokens", err)
		}
		err = s.conn(ctx).Model(&requestModel{}).
			Where("instance_jkt = ? OR dpop_jkt = ?", jkt, jkt).
			Where("kind IN ?", []string{kindRefresh, kindCode}).
			Update("active", false).Error
		if err != nil {
			return mapError("revoke instance refresh tokens", err)
		}
		return s.bumpGeneration(ctx)
	})
}

// IsInstanceRevoked reports whether the instance key thumbprint jkt was revoked.
func (s *Store) IsInstanceRevoked(ctx context.Context, jkt string) (bool, error) {
	var n int64
	if err := s.conn(ctx).Model(&revokedInstanceModel{}).Where("jkt = ?", jkt).Count(&n).Error; err != nil {
		return false, mapError("is instance revoked", err)
	}
	return n > 0, nil
}

// RevokedInstances returns every revoked instance key thumbprint, oldest revocation first.
func (s *Store) RevokedInstances(ctx context.Context) ([]string, error) {
	var jkts []string
	err := s.conn(ctx).Model(&revokedInstanceModel{}).Order("revoked_at, jkt").Pluck("jkt", &jkts).Error
	if err != nil {
		return nil, mapError("revoked instances", err)
	}
	return jkts, nil
}
