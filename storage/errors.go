package storage

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mattn/go-sqlite3"
	"github.com/ory/fosite"
	"gorm.io/gorm"
)

var (
	// ErrNotFound is returned for every miss. It is fosite's own value, so fosite maps it to
	// invalid_grant / invalid_client / inactive tokens as its storage contract requires.
	ErrNotFound = fosite.ErrNotFound
	// ErrReplayed is returned by MarkReplay when the key is already recorded and not yet expired
	// (ABCA-09 §11.1, profile §5).
	ErrReplayed = errors.New("storage: replay key already used")
	// ErrConflict is returned when a write violates a unique constraint.
	ErrConflict = errors.New("storage: already exists")
	// ErrInvalid is returned for arguments that cannot be stored (empty ids, nil requests).
	ErrInvalid = errors.New("storage: invalid argument")
	// ErrCorrupt is returned when a stored row cannot be decoded (malformed JSON, bad key bytes).
	ErrCorrupt = errors.New("storage: stored data is malformed")
	// ErrRolledBack is returned by InTx and Commit when a nested call failed or rolled back, so
	// the outer transaction was rolled back although its own function succeeded.
	ErrRolledBack = errors.New("storage: transaction rolled back by a nested call")
	// ErrUnavailable marks a failure to reach the database (connection refused or reset, server
	// starting or shutting down): the caller answers 503 and may retry.
	ErrUnavailable = errors.New("storage: database unavailable")
)

// PostgreSQL SQLSTATEs that mean "retry": serialization_failure and deadlock_detected.
const (
	sqlStateSerializationFailure = "40001"
	sqlStateDeadlockDetected     = "40P01"
)

// mapError is the one place that turns driver and GORM errors into this package's sentinels:
// not found → ErrNotFound (fosite.ErrNotFound), unique violations → ErrConflict, lost races
// (PostgreSQL 40001/40P01, SQLite BUSY/LOCKED) → fosite.ErrSerializationFailure. Everything is
// wrapped with %w so the driver error stays inspectable. op names the operation for the message.
func mapError(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound), errors.Is(err, fosite.ErrNotFound):
		return fmt.Errorf("storage: %s: %w", op, ErrNotFound)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return fmt.Errorf("storage: %s: %w: %w", op, ErrConflict, err)
	case isSerializationFailure(err):
		return fmt.Errorf("storage: %s: %w: %w", op, fosite.ErrSerializationFailure, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// Before isUnavailable: context.DeadlineExceeded satisfies net.Error.
		return fmt.Errorf("storage: %s: %w", op, err)
	case isUnavailable(err):
		return fmt.Errorf("storage: %s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("storage: %s: %w", op, err)
}

// isUnavailable reports whether err means the database cannot be reached: PostgreSQL
// connection exceptions (class 08), admin/crash shutdown and "starting up" (57P01-57P03), too
// many connections (53300), or a broken connection at the network level.
func isUnavailable(err error) bool {
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		state := pg.SQLState()
		if strings.HasPrefix(state, "08") || state == "57P01" || state == "57P02" || state == "57P03" || state == "53300" {
			return true
		}
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connErr) || errors.As(err, &netErr) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// isSerializationFailure reports whether err is a concurrency conflict the caller may retry.
func isSerializationFailure(err error) bool {
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		switch pg.SQLState() {
		case sqlStateSerializationFailure, sqlStateDeadlockDetected:
			return true
		}
	}
	var lite sqlite3.Error
	if errors.As(err, &lite) {
		return lite.Code == sqlite3.ErrBusy || lite.Code == sqlite3.ErrLocked
	}
	return false
}
