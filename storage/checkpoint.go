package storage

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3"
)

// sqliteDriverName is mattn/go-sqlite3 with a connect hook that sets, on every connection:
//   - wal_autocheckpoint=0: an automatic checkpoint runs inside whichever COMMIT crosses the
//     threshold (1,000 pages), copying every page back to the database file and calling fsync
//     while the single writer, and every token waiting on it, stands still. The checkpointer
//     below does that work on a connection of its own instead.
//   - mmap_size=256 MiB: B-tree pages are read through a memory map instead of one pread system
//     call per page-cache miss (inserts at random keys miss a lot once the file outgrows the
//     2 MiB page cache). make bench: about 6 % less CPU per token. Writes still go through the
//     WAL; docs/decisions.md records the trade-off (an I/O error on a mapped page is a SIGBUS,
//     not an error return).
const sqliteDriverName = "sqlite3_authz"

var registerSQLiteDriver sync.Once

func sqliteDriver() string {
	registerSQLiteDriver.Do(func() {
		sql.Register(sqliteDriverName, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
			if _, err := c.Exec("PRAGMA wal_autocheckpoint=0; PRAGMA mmap_size=268435456; PRAGMA journal_size_limit="+strconv.Itoa(walSizeLimit), nil); err != nil {
				return fmt.Errorf("storage: sqlite: connection settings: %w", err)
			}
			return nil
		}})
	})
	return sqliteDriverName
}

// Checkpoint cadence: after every checkpointEveryGrants grants (a few hundred WAL pages: a
// small WAL keeps the WAL index and the checkpoint cheap; make bench measured 64 against 16, 32
// and 256), and at least every checkpointInterval for other writes.
const (
	checkpointEveryGrants = 64
	checkpointInterval    = time.Second
)

// walRestartFrames bounds the WAL. SQLite starts the WAL over from its beginning only when a
// write transaction begins with every frame already copied into the database file; under
// sustained load the group writer always begins its next transaction before the checkpointer
// is done, so that never happens and the file grows without limit (make bench: 850 MiB in 10 s)
// — and with it the WAL index that every page read searches, one hash table per 4,096 frames.
// Once a checkpoint reports this many frames, the group writer checkpoints on
// its own connection between two batches (catchUp): no frame is appended meanwhile, so that
// checkpoint copies everything and the next transaction writes from the start of the file.
// A reader of an older snapshot (a long export by the CLI, say) holds the WAL until it ends;
// no RESTART checkpoint is forced, because one waiting for that reader would stop every writer
// for as long as it waits. walSizeLimit (journal_size_limit) truncates the file back after a
// restart, so a burst does not keep its disk space.
const (
	walRestartFrames = 16384 // 64 MiB of 4 KiB pages
	walSizeLimit     = 128 << 20
)

// minSQLiteVersion is the oldest SQLite authz runs on: 3.51.3 fixed the WAL-reset bug, a race
// in which a checkpoint running while another connection's commit starts the WAL over records
// frames as copied that were not, and the database is corrupted. The checkpointer below and the
// writer's catch-up are exactly that pattern; TestSQLiteWALStaysBounded met "database disk image
// is malformed" about once in 40 runs on 3.45.1.
const (
	minSQLiteVersionNumber = 3051003
	minSQLiteVersion       = "3.51.3"
)

// checkSQLiteVersion refuses a SQLite library older than minSQLiteVersion (a build with the
// libsqlite3 tag links the system's, which may be older than the one go-sqlite3 bundles).
func checkSQLiteVersion(number int, version string) error {
	if number < minSQLiteVersionNumber {
		return fmt.Errorf("%w: sqlite %s is linked; authz needs %s or newer (older releases can corrupt a WAL database under concurrent checkpoints)", ErrInvalid, version, minSQLiteVersion)
	}
	return nil
}

// checkpointer copies the WAL back into the database file with PASSIVE checkpoints (they never
// wait for and never block the writer or readers) on its own connection.
type checkpointer struct {
	db   *sql.DB
	log  *slog.Logger
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
	err  error

	restartFrames int          // walRestartFrames (tests lower it)
	catchUpDue    atomic.Bool  // the WAL reached restartFrames: the writer should catch up
	catchUps      atomic.Int64 // catch-ups that found the WAL started over (tests)

	mu                 sync.Mutex   // one checkpoint at a time from this process: the checkpointer's or the writer's
	grantsSinceRestart atomic.Int64 // written by the writer since a catch-up found the WAL started over
}

func startCheckpointer(dsn string, log *slog.Logger) (*checkpointer, error) {
	db, err := sql.Open(sqliteDriver(), dsn)
	if err != nil {
		return nil, fmt.Errorf("storage: sqlite checkpointer: %w", err)
	}
	db.SetMaxOpenConns(1)
	c := &checkpointer{db: db, log: log, restartFrames: walRestartFrames, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

// request asks for a checkpoint soon; it never blocks.
func (c *checkpointer) request() {
	if c == nil {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	tick := time.NewTicker(checkpointInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		case <-c.kick:
		}
		if _, _, err := c.checkpoint(context.Background()); err != nil {
			c.log.Warn("sqlite checkpoint failed; retrying on the next one", "error", err)
		}
	}
}

// checkpoint runs one PASSIVE checkpoint and returns the frames in the WAL and how many of
// them are now in the database file; at walRestartFrames it asks the writer to catch up. It
// keeps running meanwhile (tokens written outside the group writer, codes and refresh tokens,
// need it); the writer's catch-up waits for a checkpoint in progress instead of meeting busy.
func (c *checkpointer) checkpoint(ctx context.Context) (walFrames, checkpointed int, err error) {
	// ctx is not cancellable in practice (see writeBatch: mattn/go-sqlite3 would run the
	// statement on a watcher goroutine); a PASSIVE checkpoint never waits for locks.
	c.mu.Lock()
	_, walFrames, checkpointed, err = walCheckpoint(ctx, c.db, "PASSIVE")
	c.mu.Unlock()
	if err != nil {
		return 0, 0, err
	}
	// A complete PASSIVE checkpoint is not enough: SQLite starts the WAL over only when a write
	// transaction begins with every frame copied, which a writer that never pauses never does.
	if walFrames >= c.restartFrames {
		c.catchUpDue.Store(true)
	}
	return walFrames, checkpointed, nil
}

// due reports whether the writer should catch up (nil-safe: PostgreSQL and in-memory stores
// have no checkpointer): a checkpoint found the WAL at restartFrames, or the writer has written
// restartFrames/4 grants since the WAL was last found started over (a grant writes 4-8 frames),
// so a checkpointer starved of CPU does not decide how far the WAL grows.
func (c *checkpointer) due() bool {
	return c != nil && (c.catchUpDue.Load() || c.grantsSinceRestart.Load() >= int64(c.restartFrames/4))
}

// wrote counts grants the writer committed (see due).
func (c *checkpointer) wrote(grants int) {
	if c != nil {
		c.grantsSinceRestart.Add(int64(grants))
	}
}

// catchUp is run by the group writer between two batches while a catch-up is due: a PASSIVE
// checkpoint on the writer's connection that, with nothing written meanwhile, copies every
// frame, so the next transaction starts the WAL over.
// That restart can still be skipped (SQLite gives up when a checkpoint holds a reader lock at
// that moment), so the catch-up stays due until one finds the WAL started over.
func (c *checkpointer) catchUp(ctx context.Context, db *sql.DB) {
	if !c.due() {
		return
	}
	c.mu.Lock() // SQLite answers busy, without waiting, while another checkpoint runs
	busy, frames, _, err := walCheckpoint(ctx, db, "PASSIVE")
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("sqlite checkpoint by the writer failed; retrying after the next batch", "error", err)
		return
	}
	if busy == 0 && frames >= 0 && frames < c.restartFrames {
		c.catchUpDue.Store(false)
		c.grantsSinceRestart.Store(0)
		c.catchUps.Add(1)
	}
}

// walCheckpoint runs PRAGMA wal_checkpoint(mode): busy is 1 when it could not complete (then
// the counts may be -1).
func walCheckpoint(ctx context.Context, db *sql.DB, mode string) (busy, walFrames, checkpointed int, err error) {
	if err := db.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &walFrames, &checkpointed); err != nil {
		return 0, 0, 0, fmt.Errorf("storage: sqlite %s checkpoint: %w", mode, err)
	}
	return busy, walFrames, checkpointed, nil
}

// close stops the loop and closes the connection; the last connection to close checkpoints
// what is left (SQLite does that itself).
func (c *checkpointer) close() error {
	if c == nil {
		return nil
	}
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		c.err = c.db.Close()
	})
	return c.err
}
