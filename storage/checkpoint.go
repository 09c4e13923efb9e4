package storage

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
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
			if _, err := c.Exec("PRAGMA wal_autocheckpoint=0; PRAGMA mmap_size=268435456", nil); err != nil {
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
}

func startCheckpointer(dsn string, log *slog.Logger) (*checkpointer, error) {
	db, err := sql.Open(sqliteDriver(), dsn)
	if err != nil {
		return nil, fmt.Errorf("storage: sqlite checkpointer: %w", err)
	}
	db.SetMaxOpenConns(1)
	c := &checkpointer{db: db, log: log, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
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
// them are now in the database file.
func (c *checkpointer) checkpoint(ctx context.Context) (walFrames, checkpointed int, err error) {
	// ctx is not cancellable in practice (see writeBatch: mattn/go-sqlite3 would run the
	// statement on a watcher goroutine); a PASSIVE checkpoint never waits for locks.
	var busy int
	if err := c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &walFrames, &checkpointed); err != nil {
		return 0, 0, fmt.Errorf("storage: sqlite checkpoint: %w", err)
	}
	return walFrames, checkpointed, nil
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
