package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// FreshDatabase creates an empty database named prefix_<random> on the PostgreSQL server of
// baseDSN (a postgres:// URL whose database the role may connect to, e.g. postgres) and returns
// its DSN and a function that drops it (WITH (FORCE): leftover connections are closed).
func FreshDatabase(ctx context.Context, baseDSN, prefix string) (dsn string, drop func() error, err error) {
	u, err := url.Parse(baseDSN)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, fmt.Errorf("bench: %q is not a postgres:// URL", baseDSN)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, fmt.Errorf("bench: random: %w", err)
	}
	name := strings.ToLower(prefix) + "_" + hex.EncodeToString(b[:])
	if err := adminExec(ctx, baseDSN, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return adminExec(ctx, baseDSN, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	return u.String(), drop, nil
}

// PostgresReachable reports whether baseDSN answers within a few seconds.
func PostgresReachable(ctx context.Context, baseDSN string) error {
	return adminExec(ctx, baseDSN, "SELECT 1")
}

func adminExec(ctx context.Context, dsn, stmt string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return fmt.Errorf("bench: postgres: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return fmt.Errorf("bench: postgres: %w", err)
	}
	defer sqlDB.Close()
	if err := db.WithContext(ctx).Exec(stmt).Error; err != nil {
		return fmt.Errorf("bench: postgres: %s: %w", strings.Fields(stmt)[0], err)
	}
	return nil
}

// walProbe reads the PostgreSQL server's WAL position, to count the WAL bytes a run writes. WAL
// is cluster-wide: other databases' writes during the window are counted too.
type walProbe struct{ db *gorm.DB }

func newWALProbe(dsn string) (*walProbe, error) {
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return nil, fmt.Errorf("bench: postgres: %w", err)
	}
	return &walProbe{db: db}, nil
}

// position is the current WAL insert position in bytes.
func (p *walProbe) position(ctx context.Context) (int64, error) {
	var pos int64
	if err := p.db.WithContext(ctx).Raw("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").Scan(&pos).Error; err != nil {
		return 0, fmt.Errorf("bench: wal position: %w", err)
	}
	return pos, nil
}

func (p *walProbe) close() {
	if sqlDB, err := p.db.DB(); err == nil {
		sqlDB.Close()
	}
}
