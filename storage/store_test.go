package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"
	"github.com/ory/fosite"
	"gorm.io/gorm"
)

func TestSQLiteDSN(t *testing.T) {
	tests := []struct {
		name, path, want string
	}{
		{"plain_path", "authz.db", "file:authz.db?" + sqliteParams},
		{"absolute_path", "/var/lib/authz/authz.db", "file:/var/lib/authz/authz.db?" + sqliteParams},
		{"uri_syntax_escaped", "/tmp/a?b#c%d.db", "file:/tmp/a%3Fb%23c%25d.db?" + sqliteParams},
		{"file_uri_without_params", "file:authz.db", "file:authz.db?" + sqliteParams},
		{"file_uri_with_params_kept", "file:authz.db?_busy_timeout=1", "file:authz.db?_busy_timeout=1"},
		{"memory", ":memory:", "file::memory:?_busy_timeout=5000&_txlock=immediate&_foreign_keys=on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sqliteDSN(tt.path)
			if err != nil || got != tt.want {
				t.Fatalf("sqliteDSN(%q) = %q, %v; want %q", tt.path, got, err, tt.want)
			}
		})
	}
}

func TestCheckSQLiteVersion(t *testing.T) {
	tests := []struct {
		name    string
		number  int
		version string
		ok      bool
	}{
		{"wal_reset_bug", 3045001, "3.45.1", false},
		{"last_affected", 3051002, "3.51.2", false},
		{"first_fixed", 3051003, "3.51.3", true},
		{"newer", 3054001, "3.54.1", true},
		{"next_major", 4000000, "4.0.0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkSQLiteVersion(tt.number, tt.version)
			if (err == nil) != tt.ok {
				t.Fatalf("checkSQLiteVersion(%d) = %v, want ok=%v", tt.number, err, tt.ok)
			}
			if err != nil && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.version)) {
				t.Fatalf("error %q does not name %s as invalid", err, tt.version)
			}
		})
	}
	// The library this binary links passes (Open would refuse it otherwise).
	version, number, _ := sqlite3.Version()
	if err := checkSQLiteVersion(number, version); err != nil {
		t.Fatal(err)
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		opts    Options
		wantErr error
	}{
		{"empty_dsn", Options{Driver: DriverSQLite}, ErrInvalid},
		{"unknown_driver", Options{Driver: "mysql", DSN: "x"}, ErrInvalid},
		{"default_driver_is_sqlite", Options{DSN: t.TempDir() + "/a.db"}, nil},
		{"memory", Options{DSN: ":memory:"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(ctx, tt.opts)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Open = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer s.Close()
			if s.Driver() != DriverSQLite {
				t.Fatalf("Driver() = %q", s.Driver())
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.Ping(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("migrate_inside_tx_refused", func(t *testing.T) {
		s, err := Open(ctx, Options{DSN: ":memory:"})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		err = s.InTx(ctx, func(ctx context.Context) error { return s.Migrate(ctx) })
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("Migrate in a transaction = %v, want ErrInvalid", err)
		}
	})
}

func TestMapError(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantErr error
	}{
		{"nil", nil, nil},
		{"record_not_found", gorm.ErrRecordNotFound, ErrNotFound},
		{"fosite_not_found", fosite.ErrNotFound, fosite.ErrNotFound},
		{"duplicate", fmt.Errorf("x: %w", gorm.ErrDuplicatedKey), ErrConflict},
		{"duplicate_keeps_cause", gorm.ErrDuplicatedKey, gorm.ErrDuplicatedKey},
		{"canceled", context.Canceled, context.Canceled},
		{"other", errors.New("disk on fire"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mapError("op", tt.err)
			if tt.err == nil {
				if got != nil {
					t.Fatalf("mapError(nil) = %v", got)
				}
				return
			}
			if got == nil || !strings.HasPrefix(got.Error(), "storage: op") {
				t.Fatalf("mapError = %v, want a storage: op error", got)
			}
			if tt.wantErr != nil && !errors.Is(got, tt.wantErr) {
				t.Fatalf("mapError = %v, want %v", got, tt.wantErr)
			}
			if errors.Is(got, fosite.ErrSerializationFailure) {
				t.Fatalf("mapError(%v) claims a serialization failure", tt.err)
			}
		})
	}
}

// testLockConflict provokes a real lost race on each backend and checks it surfaces as
// fosite.ErrSerializationFailure (which fosite turns into "retry", not a server error):
// PostgreSQL detects a deadlock (40P01); a second SQLite connection finds the file locked (BUSY).
func testLockConflict(t *testing.T, b backend) {
	d := newTestDB(t, b)
	s := d.migrated(t)
	mustUpsertClient(t, s, "c1")
	mustUpsertClient(t, s, "c2")
	ctx, cancel := context.WithTimeout(bg(), 60*time.Second)
	defer cancel()
	touch := func(ctx context.Context, st *Store, id string) error {
		return mapError("touch "+id, st.conn(ctx).Exec("UPDATE clients SET description = 'x' WHERE id = ?", id).Error)
	}
	if b.driver == DriverSQLite {
		other, err := Open(ctx, Options{Driver: DriverSQLite, DSN: "file:" + strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(d.dsn) + "?_busy_timeout=1&_txlock=immediate"})
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		err = s.InTx(ctx, func(ctx context.Context) error {
			if err := touch(ctx, s, "c1"); err != nil {
				return err
			}
			if err := touch(bg(), other, "c2"); !errors.Is(err, fosite.ErrSerializationFailure) {
				t.Errorf("write while the file is locked = %v, want ErrSerializationFailure", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	// Two transactions lock c1 and c2 in opposite orders; PostgreSQL aborts one.
	locked := []chan struct{}{make(chan struct{}), make(chan struct{})}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, order := range [][2]string{{"c1", "c2"}, {"c2", "c1"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.InTx(ctx, func(ctx context.Context) error {
				if err := touch(ctx, s, order[0]); err != nil {
					return err
				}
				close(locked[i])
				<-locked[1-i]
				return touch(ctx, s, order[1])
			})
		}()
	}
	wg.Wait()
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			if !errors.Is(err, fosite.ErrSerializationFailure) {
				t.Errorf("deadlock victim error = %v, want ErrSerializationFailure", err)
			}
		}
	}
	if failed != 1 {
		t.Fatalf("errors = %v, want exactly one deadlock victim", errs)
	}
}
