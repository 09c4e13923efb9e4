package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/authz/authz/internal/testkit"
)

// envPostgresDSN names the PostgreSQL server the conformance suite creates its databases on.
const envPostgresDSN = "AUTHZ_TEST_POSTGRES_DSN"

// testStart is the fixed instant every test clock starts at.
var testStart = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)

// backend is one database engine the conformance suite runs on. fresh returns the DSN of a new,
// empty database that is dropped when the test ends.
type backend struct {
	driver string
	fresh  func(t *testing.T) string
}

// sqliteBackend creates each database as a file in the test's temporary directory.
func sqliteBackend() backend {
	return backend{driver: DriverSQLite, fresh: func(t *testing.T) string {
		t.Helper()
		return filepath.Join(t.TempDir(), "authz test #1.db") // space and '#' exercise the URI escaping
	}}
}

// postgresBackend creates each database on the server named by AUTHZ_TEST_POSTGRES_DSN as
// authz_test_<random> and drops it at the end. Unset: the test is skipped, except with CI=true,
// where a missing or unreachable server fails it.
func postgresBackend(t *testing.T) (backend, bool) {
	t.Helper()
	base := os.Getenv(envPostgresDSN)
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set and CI=true: the PostgreSQL conformance suite must run in CI", envPostgresDSN)
		}
		t.Skipf("%s is not set: PostgreSQL conformance skipped (e.g. %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", envPostgresDSN, envPostgresDSN)
		return backend{}, false
	}
	admin := openAdmin(t, base)
	sqlDB, err := admin.DB()
	if err != nil {
		t.Fatalf("PostgreSQL at %s: %v", envPostgresDSN, err)
	}
	if err := sqlDB.Close(); err != nil {
		t.Fatalf("PostgreSQL at %s: %v", envPostgresDSN, err)
	}
	return backend{driver: DriverPostgres, fresh: func(t *testing.T) string {
		t.Helper()
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		name := "authz_test_" + hex.EncodeToString(b[:])
		admin := openAdmin(t, base)
		if err := admin.Exec("CREATE DATABASE " + name).Error; err != nil {
			t.Fatalf("create database %s: %v", name, err)
		}
		closeAdmin(t, admin)
		t.Cleanup(func() {
			admin := openAdmin(t, base)
			defer closeAdmin(t, admin)
			if err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)").Error; err != nil {
				t.Errorf("drop database %s: %v", name, err)
			}
		})
		u, err := url.Parse(base)
		if err != nil {
			t.Fatalf("%s: %v", envPostgresDSN, err)
		}
		u.Path = "/" + name
		return u.String()
	}}, true
}

// openAdmin connects to the server's base database; an unreachable server fails the test (the
// DSN was set, so PostgreSQL was asked for).
func openAdmin(t *testing.T, dsn string) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err == nil {
		var sqlDB interface{ PingContext(context.Context) error }
		sqlDB, err = db.DB()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = sqlDB.PingContext(ctx)
			cancel()
		}
	}
	if err != nil {
		t.Fatalf("PostgreSQL at %s is unreachable: %v", envPostgresDSN, err)
	}
	return db
}

func closeAdmin(t *testing.T, db *gorm.DB) {
	t.Helper()
	sqlDB, err := db.DB()
	if err == nil {
		err = sqlDB.Close()
	}
	if err != nil {
		t.Errorf("close admin connection: %v", err)
	}
}

// testDB is one fresh database of a backend and the clock its stores share.
type testDB struct {
	driver, dsn string
	clock       *testkit.Clock
	now         func() time.Time // the stores' clock: clock.Now unless a test needs the real one
}

func newTestDB(t *testing.T, b backend) *testDB {
	t.Helper()
	clock := testkit.NewClock(testStart)
	return &testDB{driver: b.driver, dsn: b.fresh(t), clock: clock, now: clock.Now}
}

// open returns a Store on the database (not migrated), closed when the test ends.
func (d *testDB) open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{
		Driver: d.driver, DSN: d.dsn, Now: d.now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("Open(%s): %v", d.driver, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// migrated returns a migrated Store on the database.
func (d *testDB) migrated(t *testing.T) *Store {
	t.Helper()
	s := d.open(t)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

// newStore is the common case: a fresh migrated database and its clock.
func newStore(t *testing.T, b backend) (*Store, *testkit.Clock) {
	t.Helper()
	d := newTestDB(t, b)
	return d.migrated(t), d.clock
}

// testClient returns a confidential attestation client with every field set.
func testClient(t testing.TB, id string) *Client {
	t.Helper()
	return &Client{
		ID:                          id,
		Description:                 "test client " + id,
		SecretHash:                  []byte("$2a$10$not-a-real-bcrypt-hash"),
		RedirectURIs:                []string{"https://app.example/cb"},
		GrantTypes:                  []string{"authorization_code", "refresh_token", "client_credentials"},
		ResponseTypes:               []string{"code"},
		Scopes:                      []string{"read", "write", "offline"},
		Audience:                    []string{"https://api.example"},
		TokenEndpointAuthMethod:     "attest_jwt_client_auth",
		TokenEndpointAuthSigningAlg: "",
		JWKS:                        []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k1"}]}`),
		Attesters:                   []string{"dev-attester"},
		RequireAttestation:          true,
		Source:                      "config",
	}
}

// mustUpsertClient stores testClient(id).
func mustUpsertClient(t *testing.T, s *Store, id string) *Client {
	t.Helper()
	c := testClient(t, id)
	if err := s.UpsertClient(context.Background(), c); err != nil {
		t.Fatalf("UpsertClient(%s): %v", id, err)
	}
	return c
}

// testRequest returns a fosite request of grant requestID for client c, its session bound to
// instance key jkt, expiring an hour after now.
func testRequest(t testing.TB, c *Client, requestID, jkt string, now time.Time) *fosite.Request {
	t.Helper()
	sess := NewSession()
	sess.Subject = "alice"
	sess.Username = "alice@example"
	sess.InstanceJKT = jkt
	sess.Attester = "dev-attester"
	sess.PoPMethod = "attestation_pop_jwt"
	sess.AuthMethod = "attest_jwt_client_auth"
	sess.JWTClaims.JTI = "jti-" + requestID
	sess.JWTClaims.Subject = "alice"
	sess.JWTClaims.Extra["client_attestation"] = map[string]interface{}{"instance_jkt": jkt}
	sess.JWTHeader.Extra["typ"] = "at+jwt"
	for _, tt := range []fosite.TokenType{fosite.AccessToken, fosite.RefreshToken, fosite.AuthorizeCode} {
		sess.SetExpiresAt(tt, now.Add(time.Hour))
	}
	return &fosite.Request{
		ID:                requestID,
		RequestedAt:       now,
		Client:            c,
		RequestedScope:    fosite.Arguments{"read", "write"},
		GrantedScope:      fosite.Arguments{"read"},
		RequestedAudience: fosite.Arguments{"https://api.example"},
		GrantedAudience:   fosite.Arguments{"https://api.example"},
		Form: url.Values{
			"grant_type":    {"authorization_code"},
			"scope":         {"read write"},
			"client_id":     {c.ID},
			"redirect_uri":  {"https://app.example/cb"},
			"client_secret": {"must-not-be-stored"},
			"dpop_jkt":      {"dpop-thumb"},
		},
		Session: sess,
	}
}

// bg is the context of tests that need no deadline.
func bg() context.Context { return context.Background() }

// uniq returns a unique token signature for tests.
func uniq(prefix string, i int) string {
	return fmt.Sprintf("%s-%03d-%s", prefix, i, strings.Repeat("x", 8))
}
