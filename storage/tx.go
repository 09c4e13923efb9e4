package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"

	"gorm.io/gorm"
)

// txKey is the context key of the current transaction.
type txKey struct{}

// txState is one transaction scope carried in a context. The scope that began the
// transaction (InTx or a top-level BeginTX) is the root and alone commits or rolls back; a
// nested scope (InTx or BeginTX inside a transaction) joins it. A nested failure marks the root
// rollback-only, so a transaction never commits half of a unit of work whose inner part failed
// (on PostgreSQL the failed statement has aborted the transaction anyway; this makes SQLite
// behave the same).
type txState struct {
	store        *Store
	tx           *gorm.DB
	root         *txState // nil for the root itself
	rollbackOnly atomic.Bool
}

func (t *txState) rootState() *txState {
	if t.root != nil {
		return t.root
	}
	return t
}

// txFrom returns the transaction of this store carried in ctx, or nil. A transaction of another
// Store (another database) is ignored.
func (s *Store) txFrom(ctx context.Context) *txState {
	st, _ := ctx.Value(txKey{}).(*txState)
	if st == nil || st.store != s {
		return nil
	}
	return st
}

// conn is the only way methods reach the database: the context's transaction when present,
// else the pool. With SQLite's single connection a query that bypassed the transaction would
// wait for the connection the transaction holds, forever (fosite.md §3.3 item 7).
func (s *Store) conn(ctx context.Context) *gorm.DB {
	if st := s.txFrom(ctx); st != nil {
		return st.tx.WithContext(ctx)
	}
	return s.db.WithContext(ctx)
}

// InTx runs fn in one transaction carried in the context fn receives. Nested calls, and fosite's
// BeginTX through storage.Transactional, join the outer transaction. When fn returns an error
// (or panics) the transaction is rolled back; when a nested call failed or rolled back although
// fn returned nil, the transaction is rolled back and ErrRolledBack returned.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	if st := s.txFrom(ctx); st != nil {
		if err := fn(ctx); err != nil {
			st.rootState().rollbackOnly.Store(true)
			return err
		}
		return nil
	}
	tx := s.db.WithContext(ctx).Begin()
	if tx.Error != nil {
		return mapError("begin transaction", tx.Error)
	}
	st := &txState{store: s, tx: tx}
	done := false
	defer func() {
		if !done {
			// fn failed or panicked: the panic continues after the rollback.
			tx.Rollback()
		}
	}()
	if err := fn(context.WithValue(ctx, txKey{}, st)); err != nil {
		return err
	}
	if st.rollbackOnly.Load() {
		return fmt.Errorf("storage: commit: %w", ErrRolledBack)
	}
	done = true
	if err := tx.Commit().Error; err != nil {
		return mapError("commit", err)
	}
	return nil
}

// BeginTX implements fosite's storage.Transactional: it begins a transaction and returns a
// context carrying it. Inside InTx (or another BeginTX) it returns a nested context whose
// Commit is a no-op and whose Rollback marks the outer transaction rollback-only.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	if st := s.txFrom(ctx); st != nil {
		root := st.rootState()
		return context.WithValue(ctx, txKey{}, &txState{store: s, tx: root.tx, root: root}), nil
	}
	tx := s.db.WithContext(ctx).Begin()
	if tx.Error != nil {
		return ctx, mapError("begin transaction", tx.Error)
	}
	return context.WithValue(ctx, txKey{}, &txState{store: s, tx: tx}), nil
}

// errNoTx is returned by Commit and Rollback called with a context BeginTX did not return.
var errNoTx = errors.New("storage: no transaction in context")

// Commit implements fosite's storage.Transactional (no-op for a nested context).
func (s *Store) Commit(ctx context.Context) error {
	st := s.txFrom(ctx)
	switch {
	case st == nil:
		return errNoTx
	case st.root != nil:
		return nil
	case st.rollbackOnly.Load():
		st.tx.Rollback()
		return fmt.Errorf("storage: commit: %w", ErrRolledBack)
	}
	if err := st.tx.Commit().Error; err != nil {
		return mapError("commit", err)
	}
	return nil
}

// Rollback implements fosite's storage.Transactional. For a nested context it marks the outer
// transaction rollback-only; rolling back a finished transaction is not an error.
func (s *Store) Rollback(ctx context.Context) error {
	st := s.txFrom(ctx)
	switch {
	case st == nil:
		return errNoTx
	case st.root != nil:
		st.root.rollbackOnly.Store(true)
		return nil
	}
	if err := st.tx.Rollback().Error; err != nil && !errors.Is(err, sql.ErrTxDone) {
		return mapError("rollback", err)
	}
	return nil
}
