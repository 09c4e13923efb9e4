package storage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"
)

// grantOf builds a grant for test: the given replay keys, one access-token row under sig
// (collected through WithDeferredWrites, as the token endpoint does) and an accepted decision.
func grantOf(t *testing.T, s *Store, c *Client, sig string, now time.Time, keys ...string) *Grant {
	t.Helper()
	ctx, rows := WithDeferredWrites(bg())
	if err := s.CreateAccessTokenSession(ctx, sig, testRequest(t, c, "req-"+sig, "jkt-"+sig, now)); err != nil {
		t.Fatal(err)
	}
	g := &Grant{Rows: rows, Decision: &Decision{Endpoint: "/oauth2/token", ClientID: c.ID, Decision: "accepted", Reason: "ok", TokenRequestID: "req-" + sig}}
	for _, k := range keys {
		g.Replay = append(g.Replay, ReplayKey{Key: k, ExpiresAt: now.Add(time.Minute)})
	}
	return g
}

// nothingStored fails unless a grant left no trace: no token row, no decision, and its replay
// key still free (recording it now succeeds, which also uses it up).
func nothingStored(t *testing.T, s *Store, sig, key string, now time.Time) {
	t.Helper()
	if granted(t, s, sig) {
		t.Fatalf("grant %s wrote its token and decision", sig)
	}
	if err := s.MarkReplay(bg(), key, now.Add(time.Minute)); err != nil {
		t.Fatalf("grant %s left its replay key %q recorded: %v", sig, key, err)
	}
}

// granted reports whether sig's token row and decision exist, failing when only one does.
func granted(t *testing.T, s *Store, sig string) bool {
	t.Helper()
	_, err := s.GetAccessTokenSession(bg(), sig, NewSession())
	hasToken := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatalf("token %s: %v", sig, err)
	}
	var n int64
	if err := s.db.Model(&decisionModel{}).Where("token_request_id = ?", "req-"+sig).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	if hasToken != (n == 1) {
		t.Fatalf("grant %s half written: token %v, %d decisions", sig, hasToken, n)
	}
	return hasToken
}

func testCommitGrant(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	c := mustUpsertClient(t, s, "agent")
	now := clock.Now()

	t.Run("deferred_rows_are_not_written_before_commit", func(t *testing.T) {
		g := grantOf(t, s, c, "deferred", now, "k|deferred")
		if granted(t, s, "deferred") {
			t.Fatal("the token row was written before CommitGrant")
		}
		if err := s.CommitGrant(bg(), g); err != nil {
			t.Fatal(err)
		}
		if !granted(t, s, "deferred") {
			t.Fatal("CommitGrant wrote no token row")
		}
		// The batch statements store what the ORM path stores.
		want := testRequest(t, c, "req-deferred", "jkt-deferred", now)
		got, err := s.GetAccessTokenSession(bg(), "deferred", NewSession())
		if err != nil {
			t.Fatal(err)
		}
		checkRequest(t, got, want, url.Values{"grant_type": {"authorization_code"}, "scope": {"read write"}, "client_id": {c.ID}})
		if exp := got.GetSession().GetExpiresAt(fosite.AccessToken); !exp.Equal(dbTime(now.Add(time.Hour))) {
			t.Fatalf("expiry %v, want %v", exp, now.Add(time.Hour))
		}
		ds, err := s.ListDecisions(bg(), DecisionFilter{ClientID: c.ID})
		if err != nil || len(ds) != 1 || !ds[0].Time.Equal(dbTime(now)) || ds[0].TokenRequestID != "req-deferred" || ds[0].Reason != "ok" {
			t.Fatalf("decisions %+v (%v)", ds, err)
		}
	})

	t.Run("concurrent_grants_one_per_replay_key_all_or_nothing", func(t *testing.T) {
		const n = 64
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			g := grantOf(t, s, c, uniq("conc", i), now, fmt.Sprintf("k|fresh-%d", i), fmt.Sprintf("k|shared-%d", i/2))
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.CommitGrant(bg(), g)
			}()
		}
		wg.Wait()
		for pair := 0; pair < n; pair += 2 {
			winners := 0
			for _, i := range []int{pair, pair + 1} {
				switch err := errs[i]; {
				case err == nil:
					winners++
					if !granted(t, s, uniq("conc", i)) {
						t.Fatalf("grant %d succeeded but wrote nothing", i)
					}
				case errors.Is(err, ErrReplayed):
					var re *ReplayedError
					if !errors.As(err, &re) || re.Index != 1 {
						t.Fatalf("grant %d: %v, want the second key (index 1) replayed", i, err)
					}
					// Its own fresh key was removed again: nothing of the grant stays.
					nothingStored(t, s, uniq("conc", i), fmt.Sprintf("k|fresh-%d", i), now)
				default:
					t.Fatalf("grant %d: %v", i, err)
				}
			}
			if winners != 1 {
				t.Fatalf("pair %d: %d winners, want exactly 1 (%v, %v)", pair/2, winners, errs[pair], errs[pair+1])
			}
		}
	})

	t.Run("a_broken_grant_fails_alone", func(t *testing.T) {
		dup := grantOf(t, s, c, "deferred", now, "k|dup-row") // token signature already stored
		const n = 16
		errs := make([]error, n+1)
		var wg sync.WaitGroup
		for i := range n + 1 {
			g := dup
			if i < n {
				g = grantOf(t, s, c, uniq("batch", i), now, fmt.Sprintf("k|batch-%d", i))
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.CommitGrant(bg(), g)
			}()
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil || !granted(t, s, uniq("batch", i)) {
				t.Fatalf("grant %d beside a broken one: %v", i, errs[i])
			}
		}
		if errs[n] == nil || errors.Is(errs[n], ErrReplayed) {
			t.Fatalf("duplicate token row: %v, want a write error", errs[n])
		}
		if err := s.MarkReplay(bg(), "k|dup-row", now.Add(time.Minute)); err != nil {
			t.Fatalf("the failed grant's replay key stayed: %v", err)
		}
	})

	t.Run("expired_key_is_taken_over", func(t *testing.T) {
		if err := s.MarkReplay(bg(), "k|old", now.Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := s.CommitGrant(bg(), grantOf(t, s, c, "takeover", now, "k|old")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("inside_a_transaction_it_joins_it", func(t *testing.T) {
		errAbort := errors.New("abort")
		err := s.InTx(bg(), func(ctx context.Context) error {
			if err := s.CommitGrant(ctx, grantOf(t, s, c, "in-tx", now, "k|in-tx")); err != nil {
				return err
			}
			return errAbort
		})
		if !errors.Is(err, errAbort) {
			t.Fatal(err)
		}
		if granted(t, s, "in-tx") {
			t.Fatal("a rolled-back transaction kept the grant")
		}
		err = s.InTx(bg(), func(ctx context.Context) error {
			return s.CommitGrant(ctx, grantOf(t, s, c, "in-tx-replay", now, "k|in-tx-2", "k|deferred"))
		})
		var re *ReplayedError
		if !errors.As(err, &re) || re.Index != 1 {
			t.Fatalf("replay inside a transaction: %v", err)
		}
		if granted(t, s, "in-tx-replay") {
			t.Fatal("replayed grant written inside a transaction")
		}
	})

	t.Run("a_failed_batch_does_not_break_the_writer", func(t *testing.T) {
		// Before the schema exists every grant fails (the SQLite statements cannot even be
		// prepared); after Migrate the same store's writer works.
		d := newTestDB(t, b)
		s2 := d.open(t)
		g := &Grant{Replay: []ReplayKey{{Key: "k|early", ExpiresAt: now.Add(time.Minute)}},
			Decision: &Decision{Endpoint: "/oauth2/token", ClientID: "agent", Decision: "accepted", Reason: "ok"}}
		if err := s2.CommitGrant(bg(), g); err == nil || errors.Is(err, ErrReplayed) {
			t.Fatalf("grant on a database without schema: %v, want a write error", err)
		}
		if err := s2.Migrate(bg()); err != nil {
			t.Fatal(err)
		}
		c2 := mustUpsertClient(t, s2, "agent")
		if err := s2.CommitGrant(bg(), grantOf(t, s2, c2, "after-migrate", now, "k|early")); err != nil {
			t.Fatalf("grant after Migrate: %v", err)
		}
		if !granted(t, s2, "after-migrate") {
			t.Fatal("grant after Migrate not written")
		}
	})

	t.Run("empty_replay_key_is_refused_before_anything_is_written", func(t *testing.T) {
		g := grantOf(t, s, c, "empty-key", now, "k|before-empty", "")
		if err := s.CommitGrant(bg(), g); !errors.Is(err, ErrInvalid) {
			t.Fatalf("grant with an empty replay key: %v, want ErrInvalid", err)
		}
		nothingStored(t, s, "empty-key", "k|before-empty", now)
	})

	t.Run("abandoned_request_writes_nothing", func(t *testing.T) {
		ctx, cancel := context.WithCancel(bg())
		cancel()
		if err := s.CommitGrant(ctx, grantOf(t, s, c, "abandoned", now, "k|abandoned")); !errors.Is(err, context.Canceled) {
			t.Fatalf("grant of an ended request: %v, want context.Canceled", err)
		}
		nothingStored(t, s, "abandoned", "k|abandoned", now)
	})

	t.Run("closed_store_refuses", func(t *testing.T) {
		s2, _ := newStore(t, b)
		c2 := mustUpsertClient(t, s2, "agent")
		if err := s2.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s2.CommitGrant(bg(), grantOf(t, s2, c2, "closed", now, "k|closed")); err == nil {
			t.Fatal("CommitGrant on a closed store succeeded")
		}
	})
}

// TestSQLiteCheckpointsOffTheWritePath: the store's connection never checkpoints by itself
// (wal_autocheckpoint 0) and reads through a memory map, and the checkpointer's PASSIVE checkpoint moves every WAL frame the
// grants wrote back into the database file.
func TestSQLiteCheckpointsOffTheWritePath(t *testing.T) {
	s, clock := newStore(t, sqliteBackend())
	if s.ckpt == nil {
		t.Fatal("a SQLite file store has no checkpointer")
	}
	var auto int
	if err := s.db.Raw("PRAGMA wal_autocheckpoint").Scan(&auto).Error; err != nil || auto != 0 {
		t.Fatalf("wal_autocheckpoint = %d (%v), want 0 on the writer's connection", auto, err)
	}
	var mmap int64
	if err := s.db.Raw("PRAGMA mmap_size").Scan(&mmap).Error; err != nil || mmap != 256<<20 {
		t.Fatalf("mmap_size = %d (%v), want 256 MiB", mmap, err)
	}
	c := mustUpsertClient(t, s, "agent")
	for i := range 50 {
		if err := s.CommitGrant(bg(), grantOf(t, s, c, uniq("ckpt", i), clock.Now(), fmt.Sprintf("k|ckpt-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	frames, done, err := s.ckpt.checkpoint(bg())
	if err != nil {
		t.Fatal(err)
	}
	if frames == 0 || done != frames {
		t.Fatalf("checkpoint: %d of %d WAL frames in the database file", done, frames)
	}
	if !granted(t, s, uniq("ckpt", 49)) {
		t.Fatal("grant lost")
	}
}

// TestSQLiteWALStaysBounded: with grants committed back to back by many callers, the writer
// always begins its next transaction before a checkpoint has copied everything, so SQLite would
// never start the WAL over and the file would grow for as long as the load lasts (about 29 MB
// here). Once a checkpoint finds the WAL at the restart threshold, the writer catches up after
// its next batch and the following transaction writes from the start of the file again. The
// test runs checkpoints itself every millisecond during the load, so how fast the background
// checkpointer gets scheduled on a busy machine does not decide the outcome.
func TestSQLiteWALStaysBounded(t *testing.T) {
	s, clock := newStore(t, sqliteBackend())
	s.ckpt.restartFrames = 200
	c := mustUpsertClient(t, s, "agent")
	var seq int
	var name, file string
	if err := s.db.Raw("PRAGMA database_list").Row().Scan(&seq, &name, &file); err != nil || file == "" {
		t.Fatalf("database file: %q %v", file, err)
	}

	const callers, each = 16, 100
	grants := make([][]*Grant, callers)
	for w := range grants {
		for i := range each {
			sig := uniq(fmt.Sprintf("wal%02d", w), i)
			grants[w] = append(grants[w], grantOf(t, s, c, sig, clock.Now(), "k|"+sig))
		}
	}
	var maxWAL atomic.Int64
	stop := make(chan struct{})
	watched := make(chan error, 1)
	go func() { // a prompt checkpointer, and the WAL's size after each of its checkpoints
		for {
			if _, _, err := s.ckpt.checkpoint(bg()); err != nil {
				watched <- err
				return
			}
			if fi, err := os.Stat(file + "-wal"); err == nil && fi.Size() > maxWAL.Load() {
				maxWAL.Store(fi.Size())
			}
			select {
			case <-stop:
				watched <- nil
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, callers*each)
	for w := range grants {
		wg.Go(func() {
			for _, g := range grants[w] {
				if err := s.CommitGrant(bg(), g); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	if err := <-watched; err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var n int64
	if err := s.db.Model(&decisionModel{}).Count(&n).Error; err != nil || n != callers*each {
		t.Fatalf("%d decisions stored (%v), want %d", n, err, callers*each)
	}
	// SQLite before 3.51.3 could corrupt the database when a checkpoint raced a commit that
	// started the WAL over (the WAL-reset bug): this load hit it about once in 40 runs.
	var integrity string
	if err := s.db.Raw("PRAGMA integrity_check").Row().Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check: %q %v", integrity, err)
	}
	const bound = 8 << 20 // the threshold is 200 frames (0.8 MB)
	if got := maxWAL.Load(); got == 0 || got > bound {
		t.Fatalf("WAL reached %d bytes, want at most %d", got, bound)
	}
	if s.ckpt.catchUps.Load() == 0 {
		t.Fatal("the writer never caught up with the checkpoint")
	}
	t.Logf("max WAL %d KiB, %d catch-ups by the writer", maxWAL.Load()>>10, s.ckpt.catchUps.Load())
}
