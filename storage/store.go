package storage

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
	fositestorage "github.com/ory/fosite/storage"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// The fosite storage interfaces *Store serves (fosite.md §3.1).
var (
	_ fosite.ClientManager              = (*Store)(nil)
	_ oauth2.CoreStorage                = (*Store)(nil)
	_ oauth2.TokenRevocationStorage     = (*Store)(nil)
	_ pkce.PKCERequestStorage           = (*Store)(nil)
	_ fosite.PARStorage                 = (*Store)(nil)
	_ fositestorage.Transactional       = (*Store)(nil)
	_ fosite.Client                     = (*Client)(nil)
	_ fosite.OpenIDConnectClient        = (*Client)(nil)
	_ oauth2.JWTSessionContainer        = (*Session)(nil)
	_ fosite.ExtraClaimsSession         = (*Session)(nil)
	_ interface{ SetSubject(string) }   = (*Session)(nil)
	_ interface{ GetSubject() string }  = (*Session)(nil)
	_ interface{ GetUsername() string } = (*Session)(nil)
)

// Driver names accepted in Options.Driver.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Connection pool defaults. SQLite has one writer anyway; one connection serialises every
// statement in process, so the file lock is never contended and SQLITE_BUSY cannot happen
// within one process (busy_timeout still covers a second process such as the CLI).
// PostgreSQL gets a pool sized for a 2-4 core replica.
const (
	defaultSQLiteConns   = 1
	defaultPostgresConns = 20
	connMaxLifetime      = 30 * time.Minute
	connMaxIdleTime      = 5 * time.Minute
)

// sqliteParams are the mattn/go-sqlite3 DSN parameters every SQLite database is opened with:
// WAL (readers do not block the writer), a 5 s busy timeout, BEGIN IMMEDIATE for every
// transaction (no SQLITE_BUSY on a read→write upgrade), foreign keys, synchronous=NORMAL
// (durable across application crashes; WAL makes it safe against corruption).
const sqliteParams = "_journal_mode=WAL&_busy_timeout=5000&_txlock=immediate&_foreign_keys=on&_synchronous=NORMAL"

// Options configure Open.
type Options struct {
	Driver       string // "sqlite" (default) | "postgres"
	DSN          string // sqlite: file path (WAL, busy_timeout=5000, foreign keys, _txlock=immediate are added); postgres: URL
	Logger       *slog.Logger
	MaxOpenConns int // 0 = default: sqlite 1, postgres 20
	// Now is the clock used for expiry decisions (PAR, replay, client assertions) and
	// timestamps; nil means time.Now. A test seam.
	Now func() time.Time
}

// Store is authz's database. It is safe for concurrent use; every method takes its connection
// from the context's transaction when one is present (see InTx).
type Store struct {
	db     *gorm.DB
	driver string
	log    *slog.Logger
	now    func() time.Time
	grants grantWriter
	ckpt   *checkpointer // SQLite files only
}

// Open connects to the database described by opts and checks it answers. It does not create
// the schema: call Migrate.
func Open(ctx context.Context, opts Options) (*Store, error) {
	driver := opts.Driver
	if driver == "" {
		driver = DriverSQLite
	}
	if opts.DSN == "" {
		return nil, fmt.Errorf("%w: database dsn is empty", ErrInvalid)
	}
	s := &Store{driver: driver, log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	var (
		dialector gorm.Dialector
		conns     = opts.MaxOpenConns
	)
	switch driver {
	case DriverSQLite:
		version, number, _ := sqlite3.Version()
		if err := checkSQLiteVersion(number, version); err != nil {
			return nil, fmt.Errorf("storage: open sqlite: %w", err)
		}
		dsn, err := sqliteDSN(opts.DSN)
		if err != nil {
			return nil, err
		}
		dialector = sqlite.New(sqlite.Config{DriverName: sqliteDriver(), DSN: dsn})
		if path := opts.DSN; path != ":memory:" {
			if s.ckpt, err = startCheckpointer(dsn, s.log); err != nil {
				return nil, err
			}
		}
		if conns <= 0 {
			conns = defaultSQLiteConns
		}
	case DriverPostgres:
		dialector = postgres.Open(opts.DSN)
		if conns <= 0 {
			conns = defaultPostgresConns
		}
	default:
		return nil, fmt.Errorf("%w: database driver %q is not %q or %q", ErrInvalid, driver, DriverSQLite, DriverPostgres)
	}
	db, err := gorm.Open(dialector, &gorm.Config{
		SkipDefaultTransaction: true,
		TranslateError:         true,
		// No GORM statement cache: it prepares a statement on a pool connection while another
		// goroutine's transaction waits for that same statement, which deadlocks when the
		// transaction holds the last connection (SQLite has one). pgx caches statements itself.
		PrepareStmt: false,
		// Name columns explicitly instead of SELECT *: a replica's cached PostgreSQL plans then
		// survive another replica adding a column.
		QueryFields: true,
		Logger:      logger.Discard,
		NowFunc:     func() time.Time { return dbTime(s.now()) },
	})
	if err != nil {
		_ = s.ckpt.close()
		return nil, fmt.Errorf("storage: open %s: %w", driver, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		_ = s.ckpt.close()
		return nil, fmt.Errorf("storage: open %s: %w", driver, err)
	}
	sqlDB.SetMaxOpenConns(conns)
	sqlDB.SetMaxIdleConns(conns)
	sqlDB.SetConnMaxLifetime(connMaxLifetime)
	sqlDB.SetConnMaxIdleTime(connMaxIdleTime)
	s.db = db
	if err := s.Ping(ctx); err != nil {
		_ = sqlDB.Close()
		_ = s.ckpt.close()
		return nil, err
	}
	return s, nil
}

// sqliteDSN turns a file path into a mattn/go-sqlite3 URI with sqliteParams. A DSN that is
// already a "file:" URI with parameters is used unchanged (the caller chose them); ":memory:"
// opens a private in-memory database (tests; WAL does not apply).
func sqliteDSN(path string) (string, error) {
	switch {
	case path == ":memory:":
		return "file::memory:?_busy_timeout=5000&_txlock=immediate&_foreign_keys=on", nil
	case strings.HasPrefix(path, "file:") && strings.Contains(path, "?"):
		return path, nil
	case strings.HasPrefix(path, "file:"):
		return path + "?" + sqliteParams, nil
	}
	// In a URI filename '%', '?' and '#' are syntax; escape them so any path works.
	escaped := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path)
	return "file:" + escaped + "?" + sqliteParams, nil
}

// Driver returns "sqlite" or "postgres".
func (s *Store) Driver() string { return s.driver }

// Ping checks the database answers (readiness). Inside a transaction it asks through it.
func (s *Store) Ping(ctx context.Context) error {
	if s.txFrom(ctx) != nil {
		return mapError("ping", s.conn(ctx).Exec("SELECT 1").Error)
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("storage: ping: %w", err)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("storage: ping %s: %w", s.driver, err)
	}
	return nil
}

// Close releases the prepared statements and the connection pool.
func (s *Store) Close() error {
	s.stopGrants()
	defer func() { _ = s.ckpt.close() }()
	if p, ok := s.db.ConnPool.(*gorm.PreparedStmtDB); ok {
		p.Close()
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	if err := sqlDB.Close(); err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	return nil
}

// dbTime normalises a time for storage: UTC (SQLite compares timestamps as text, so every
// stored and compared value must carry the same offset) truncated to the microsecond
// (PostgreSQL's precision, so both backends round-trip identical values).
func dbTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// dbTimePtr is dbTime for nullable columns: the zero time means "never" and is stored as NULL.
func dbTimePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	v := dbTime(t)
	return &v
}
