package storage

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// migrateLockID is the PostgreSQL advisory lock key that serialises schema migrations of
// replicas starting at once ("authz" in ASCII, then "mig").
const migrateLockID int64 = 0x617574687a6d6967

// Migrate creates or upgrades the schema and seeds the generation counter. It is idempotent and
// safe when several replicas start at once on an empty database (profile §8): everything runs in
// one transaction, which on PostgreSQL first takes a transaction-scoped advisory lock (DDL is
// transactional there, so the second replica waits and then finds the schema in place) and on
// SQLite is a BEGIN IMMEDIATE that holds the file's write lock.
func (s *Store) Migrate(ctx context.Context) error {
	if s.txFrom(ctx) != nil {
		return fmt.Errorf("%w: Migrate inside a transaction", ErrInvalid)
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if s.driver == DriverPostgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", migrateLockID).Error; err != nil {
				return fmt.Errorf("advisory lock: %w", err)
			}
		}
		if err := tx.AutoMigrate(allModels...); err != nil {
			return fmt.Errorf("auto-migrate: %w", err)
		}
		if err := tx.Exec("INSERT INTO generation (id, value) VALUES (1, 0) ON CONFLICT (id) DO NOTHING").Error; err != nil {
			return fmt.Errorf("seed generation: %w", err)
		}
		return nil
	})
	if err != nil {
		return mapError("migrate", err)
	}
	s.log.DebugContext(ctx, "storage: schema migrated", "driver", s.driver)
	return nil
}
