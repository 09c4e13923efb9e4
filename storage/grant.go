package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Grant is everything one issued token writes (profile §5 and §7): the replay keys of the
// proofs it consumed, the token rows fosite created while minting (collected by
// WithDeferredWrites) and the accepted audit decision. CommitGrant writes all of it or nothing.
type Grant struct {
	Replay   []ReplayKey
	Rows     *Deferred
	Decision *Decision
}

// ReplayKey is one key for the replay table (see MarkReplay).
type ReplayKey struct {
	Key       string
	ExpiresAt time.Time
}

// ReplayedError is returned by CommitGrant when Grant.Replay[Index] is already recorded and
// not yet expired; it matches ErrReplayed with errors.Is. Nothing of the grant was written.
type ReplayedError struct{ Index int }

func (e *ReplayedError) Error() string {
	return "storage: commit grant: replay key " + strconv.Itoa(e.Index) + " already used"
}

// Is makes errors.Is(err, ErrReplayed) true.
func (e *ReplayedError) Is(target error) bool { return target == ErrReplayed }

type deferredKey struct{}

// Deferred collects the token rows fosite creates while minting instead of writing them at
// once, so the token is signed and its session encoded outside any database transaction; the
// rows are written by CommitGrant together with the replay keys and the decision.
type Deferred struct {
	mu   sync.Mutex
	rows []*requestModel
}

// WithDeferredWrites returns a context in which the Create*Session calls of the store are
// collected by the returned Deferred instead of written.
func WithDeferredWrites(ctx context.Context) (context.Context, *Deferred) {
	d := &Deferred{}
	return context.WithValue(ctx, deferredKey{}, d), d
}

func deferredFrom(ctx context.Context) *Deferred {
	d, _ := ctx.Value(deferredKey{}).(*Deferred)
	return d
}

func (d *Deferred) add(m *requestModel) {
	d.mu.Lock()
	d.rows = append(d.rows, m)
	d.mu.Unlock()
}

func (d *Deferred) take() []*requestModel {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rows
}

// maxGroup bounds how many grants one group transaction commits.
const maxGroup = 128

// grantUnit is one caller's grant waiting for the group writer.
type grantUnit struct {
	ctx  context.Context // the request's: a grant whose client gave up before its batch is dropped
	g    *Grant
	keys []string // hashSignature of each g.Replay key, computed by the caller, not the writer
	rows []*requestModel
	now  time.Time
	done chan error
}

// grantWriter commits the grants of many concurrent requests in shared transactions (group
// commit). A database has one writer (SQLite) or charges a commit and several round trips per
// transaction (PostgreSQL); grouped, BEGIN, COMMIT and the WAL flush are paid once per batch
// instead of once per token. The statements are prepared once and run through database/sql
// directly: the hot path builds no ORM statements.
type grantWriter struct {
	once  sync.Once
	ch    chan *grantUnit
	stop  chan struct{} // closed by Store.Close
	stopO sync.Once
	stmts grantStmts // SQLite; prepared by the writer on first use (PostgreSQL: pgx caches the batch statements)
	err   error      // errClosed once the store closed before any grant

	batches, grants atomic.Int64
}

type grantStmts struct {
	replay, unreplay, token, decision *sql.Stmt
}

// Column lists of the hot-path inserts; they must match requestModel and decisionModel.
const (
	tokenColumns = "kind, signature, request_id, client_id, requested_at, scopes, granted_scopes, audiences, " +
		"granted_audiences, form, session, subject, active, access_signature, instance_jkt, dpop_jkt, expires_at"
	decisionColumns = "time, endpoint, client_id, verified_client_id, attester, resolution, instance_jkt, pop_method, " +
		"pop_aud, challenge, decision, reason, token_request_id"
)

// prepareGrantStmts prepares the SQLite statements of the group writer (PostgreSQL uses the
// batch statements of grant_pg.go).
func (s *Store) prepareGrantStmts(ctx context.Context) (grantStmts, error) {
	sqlDB, err := s.db.DB()
	if err != nil {
		return grantStmts{}, fmt.Errorf("storage: prepare grant statements: %w", err)
	}
	placeholders := func(n int) string { return strings.Repeat("?, ", n-1) + "?" }
	var st grantStmts
	all := []struct {
		dst   **sql.Stmt
		query string
	}{
		{&st.replay, markReplaySQL},
		{&st.unreplay, "DELETE FROM replay WHERE key_hash = ?"},
		{&st.token, "INSERT INTO oauth2_requests (" + tokenColumns + ") VALUES (" + placeholders(17) + ")"},
		{&st.decision, "INSERT INTO audit_decisions (" + decisionColumns + ") VALUES (" + placeholders(13) + ")"},
	}
	for i, p := range all {
		if *p.dst, err = sqlDB.PrepareContext(ctx, p.query); err != nil {
			for _, prepared := range all[:i] {
				_ = (*prepared.dst).Close()
			}
			return grantStmts{}, mapError("prepare grant statement", err)
		}
	}
	return st, nil
}

// CommitGrant writes g atomically: its replay keys (ABCA-09 §11.1; profile §5: written only
// after every other check passed), its token rows and its decision (profile §7: the decision
// commits with the token). A live replay key gives *ReplayedError and nothing is written. It
// joins the next group transaction; a batch that fails as a whole is retried grant by grant, so
// one faulty grant never fails the others. Inside InTx it writes through that transaction.
func (s *Store) CommitGrant(ctx context.Context, g *Grant) error {
	u := &grantUnit{ctx: ctx, g: g, rows: g.Rows.take(), now: s.now()}
	for _, k := range g.Replay {
		if k.Key == "" {
			return errEmptyReplayKey
		}
		u.keys = append(u.keys, hashSignature(k.Key))
	}
	if s.txFrom(ctx) != nil {
		return s.InTx(ctx, func(ctx context.Context) error { return s.writeGrantInTx(ctx, u) })
	}
	s.grants.once.Do(func() {
		s.grants.ch = make(chan *grantUnit, maxGroup)
		s.grants.stop = make(chan struct{})
		go s.grantLoop()
	})
	if s.grants.err != nil {
		return s.grants.err
	}
	u.done = make(chan error, 1)
	select {
	case s.grants.ch <- u:
	case <-s.grants.stop:
		return fmt.Errorf("storage: commit grant: %w", errClosed)
	case <-ctx.Done():
		return fmt.Errorf("storage: commit grant: %w", ctx.Err())
	}
	// Once queued, the grant is dropped only if the request ends before its batch is written
	// (dropAbandoned); wait for the outcome (or for Close, which answers what it did not write).
	select {
	case err := <-u.done:
		return err
	case <-s.grants.stop:
		select {
		case err := <-u.done:
			return err
		case <-time.After(5 * time.Second):
			return fmt.Errorf("storage: commit grant: %w", errClosed)
		}
	}
}

// grantLoop is the group writer: it takes every grant queued (up to maxGroup) and commits them
// in one transaction.
func (s *Store) grantLoop() {
	batch := make([]*grantUnit, 0, maxGroup)
	results := make([]error, maxGroup)
	for {
		var u *grantUnit
		select {
		case u = <-s.grants.ch:
		case <-s.grants.stop:
			s.failQueued()
			return
		}
		batch = append(batch[:0], u)
		for yield := 0; yield < 3 && len(batch) < maxGroup; yield++ {
			// Let the requests that are about to queue their grant run first: a bigger batch
			// shares BEGIN, COMMIT and the pages every grant touches. Stop as soon as a
			// yield brought nothing: waiting longer would only delay the grants in hand.
			runtime.Gosched()
			before := len(batch)
		drain:
			for len(batch) < maxGroup {
				select {
				case more := <-s.grants.ch:
					batch = append(batch, more)
				default:
					break drain
				}
			}
			if len(batch) == before {
				break
			}
		}
		batch = s.dropAbandoned(batch)
		if len(batch) == 0 {
			continue
		}
		s.grants.batches.Add(1)
		if n := s.grants.grants.Add(int64(len(batch))); n/checkpointEveryGrants != (n-int64(len(batch)))/checkpointEveryGrants {
			s.ckpt.request()
		}
		err := s.writeBatch(batch, results)
		if err != nil && len(batch) > 1 && !errors.Is(err, ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
			// One grant broke the batch: retry each alone, so only the faulty one fails. Not
			// when the database is unreachable or hung: every grant would wait again.
			for i := range batch {
				if err := s.writeBatch(batch[i:i+1], results[i:i+1]); err != nil {
					results[i] = err
				}
			}
			err = nil
		}
		for i, u := range batch {
			if err != nil {
				u.done <- err
			} else {
				u.done <- results[i]
			}
		}
		s.ckpt.wrote(len(batch))
		if s.ckpt.due() {
			if sqlDB, err := s.db.DB(); err == nil {
				s.ckpt.catchUp(context.Background(), sqlDB)
			}
		}
	}
}

// dropAbandoned answers, and removes from batch, the grants whose request ended (client gone,
// deadline passed) before their batch was written: nobody would receive the token, so neither it
// nor its decision is stored. Once a batch is being written, its grants commit regardless.
func (s *Store) dropAbandoned(batch []*grantUnit) []*grantUnit {
	kept := batch[:0]
	for _, u := range batch {
		if err := u.ctx.Err(); err != nil {
			u.done <- fmt.Errorf("storage: commit grant: request ended before its grant was written: %w", err)
			continue
		}
		kept = append(kept, u)
	}
	return kept
}

// failQueued answers the grants still queued when the store closes.
func (s *Store) failQueued() {
	for {
		select {
		case u := <-s.grants.ch:
			u.done <- fmt.Errorf("storage: commit grant: %w", errClosed)
		default:
			return
		}
	}
}

// stopGrants ends the group writer (Close).
func (s *Store) stopGrants() {
	s.grants.once.Do(func() { s.grants.err = errClosed; s.grants.stop = make(chan struct{}) })
	s.grants.stopO.Do(func() { close(s.grants.stop) })
}

// GrantStats returns how many group transactions the writer ran and how many grants they
// carried (their ratio is the mean batch size; exported as metrics).
func (s *Store) GrantStats() (batches, grants int64) {
	return s.grants.batches.Load(), s.grants.grants.Load()
}

var errEmptyReplayKey = fmt.Errorf("%w: replay key is empty", ErrInvalid)

var errClosed = errors.New("storage: store closed")

// writeBatch commits batch in one transaction; results[i] is the outcome of batch[i] (nil or
// *ReplayedError) when the transaction committed. A non-nil return means nothing committed.
func (s *Store) writeBatch(batch []*grantUnit, results []error) error {
	// SQLite: a context that is never done. mattn/go-sqlite3 runs every statement of a
	// cancellable context on a goroutine of its own to watch for the cancellation, and
	// database/sql watches the transaction with another; the busy timeout bounds lock waits
	// anyway. PostgreSQL: a deadline, so a lost server cannot hold the writer forever.
	ctx := context.Background()
	if s.driver == DriverPostgres {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("storage: commit grant: %w", err)
	}
	if s.driver == DriverSQLite && s.grants.stmts.replay == nil {
		// Prepared by the writer alone, before its transaction takes SQLite's only connection;
		// a failure (say, a database not yet migrated) fails this batch and the next one tries
		// again.
		if s.grants.stmts, err = s.prepareGrantStmts(ctx); err != nil {
			return err
		}
	}
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		return mapError("commit grant: begin", err)
	}
	defer func() { _ = tx.Rollback() }()
	if s.driver == DriverPostgres {
		if err := s.writeBatchPostgres(ctx, tx, batch, results); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return mapError("commit grant: commit", err)
		}
		return nil
	}
	w := grantTx{ctx: ctx,
		replay: tx.StmtContext(ctx, s.grants.stmts.replay), unreplay: tx.StmtContext(ctx, s.grants.stmts.unreplay),
		token: tx.StmtContext(ctx, s.grants.stmts.token), decision: tx.StmtContext(ctx, s.grants.stmts.decision)}
	for i, u := range batch {
		replayed, err := w.write(u)
		if err != nil {
			return err
		}
		results[i] = nil
		if replayed != nil {
			results[i] = replayed
		}
	}
	if err := tx.Commit(); err != nil {
		return mapError("commit grant: commit", err)
	}
	return nil
}

// grantTx writes grants through the statements of one transaction.
type grantTx struct {
	ctx                               context.Context
	replay, unreplay, token, decision *sql.Stmt
}

// write writes one grant. The first return is the grant's own outcome (a *ReplayedError, after
// removing the keys this grant had inserted before it); the second means the transaction is
// broken.
func (w grantTx) write(u *grantUnit) (*ReplayedError, error) {
	now := dbTime(u.now)
	for i, k := range u.g.Replay {
		res, err := w.replay.ExecContext(w.ctx, u.keys[i], dbTime(k.ExpiresAt), now)
		if err != nil {
			return nil, mapError("mark replay", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, mapError("mark replay", err)
		} else if n == 0 {
			for _, prev := range u.keys[:i] {
				if _, err := w.unreplay.ExecContext(w.ctx, prev); err != nil {
					return nil, mapError("mark replay", err)
				}
			}
			return &ReplayedError{Index: i}, nil
		}
	}
	for _, m := range u.rows {
		if _, err := w.token.ExecContext(w.ctx, m.Kind, m.Signature, m.RequestID, m.ClientID, m.RequestedAt, m.Scopes,
			m.GrantedScopes, m.Audiences, m.GrantedAudiences, m.Form, m.Session, m.Subject, m.Active,
			m.AccessSignature, m.InstanceJKT, m.DPoPJKT, m.ExpiresAt); err != nil {
			return nil, mapError("create "+m.Kind+" session", err)
		}
	}
	if d := u.g.Decision; d != nil {
		d.stampTime(u.now)
		if _, err := w.decision.ExecContext(w.ctx, d.Time, d.Endpoint, d.ClientID, d.VerifiedClientID, d.Attester,
			d.Resolution, d.InstanceJKT, d.PoPMethod, d.PoPAud, d.Challenge, d.Decision, d.Reason,
			d.TokenRequestID); err != nil {
			return nil, mapError("record decision", err)
		}
	}
	return nil, nil
}

// writeGrantInTx is CommitGrant inside the caller's transaction (a failing grant makes it
// roll back).
func (s *Store) writeGrantInTx(ctx context.Context, u *grantUnit) error {
	for i, k := range u.g.Replay {
		if err := s.MarkReplay(ctx, k.Key, k.ExpiresAt); err != nil {
			if errors.Is(err, ErrReplayed) {
				return &ReplayedError{Index: i}
			}
			return err
		}
	}
	for _, m := range u.rows {
		if err := s.conn(ctx).Create(m).Error; err != nil {
			return mapError("create "+m.Kind+" session", err)
		}
	}
	return s.RecordDecision(ctx, u.g.Decision)
}

// stampTime sets the decision's time to now unless the caller chose one, at the database's
// precision (dbTime).
func (d *Decision) stampTime(now time.Time) {
	if d.Time.IsZero() {
		d.Time = now
	}
	d.Time = dbTime(d.Time)
}
