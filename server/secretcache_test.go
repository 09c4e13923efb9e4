package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"
	"golang.org/x/crypto/bcrypt"
)

// countingHasher is the real bcrypt hasher, counting the comparisons that reach it.
type countingHasher struct {
	fosite.Hasher
	compares atomic.Int64
}

func (h *countingHasher) Compare(ctx context.Context, hash, data []byte) error {
	h.compares.Add(1)
	return h.Hasher.Compare(ctx, hash, data)
}

func TestSecretCache(t *testing.T) {
	ctx := context.Background()
	hashOf := func(secret string) []byte {
		t.Helper()
		h, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	hashA, hashB := hashOf("secret-a"), hashOf("secret-b")
	sameSecretOtherHash := hashOf("secret-a")

	type step struct {
		name        string
		hash        []byte
		secret      string
		advance     time.Duration
		wantOK      bool
		wantBcrypts int64 // comparisons that reached bcrypt so far
	}
	steps := []step{
		{"first match pays bcrypt", hashA, "secret-a", 0, true, 1},
		{"repeat match is cached", hashA, "secret-a", 0, true, 1},
		{"wrong secret always pays bcrypt", hashA, "secret-x", 0, false, 2},
		{"wrong secret again pays bcrypt again", hashA, "secret-x", 0, false, 3},
		{"empty secret is refused", hashA, "", 0, false, 4},
		{"right secret still cached after failures", hashA, "secret-a", 0, true, 4},
		{"another client's secret does not match", hashA, "secret-b", 0, false, 5},
		{"other hash: own entry", hashB, "secret-b", 0, true, 6},
		{"cached secret of A refused for B", hashB, "secret-a", 0, false, 7},
		{"same secret, rotated hash: bcrypt again", sameSecretOtherHash, "secret-a", 0, true, 8},
		{"secret prefix refused", hashA, "secret-", 0, false, 9},
		{"within the TTL: cached", hashA, "secret-a", secretCacheTTL - time.Second, true, 9},
		{"after the TTL: bcrypt again", hashA, "secret-a", 2 * time.Second, true, 10},
	}

	inner := &countingHasher{Hasher: &fosite.BCrypt{Config: &fosite.Config{HashCost: bcrypt.MinCost}}}
	c, err := newSecretCache(inner)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	c.now = func() time.Time { return now }
	for _, s := range steps {
		now = now.Add(s.advance)
		err := c.Compare(ctx, s.hash, []byte(s.secret))
		if (err == nil) != s.wantOK {
			t.Fatalf("%s: Compare error = %v, want ok=%v", s.name, err, s.wantOK)
		}
		if got := inner.compares.Load(); got != s.wantBcrypts {
			t.Fatalf("%s: %d bcrypt comparisons so far, want %d", s.name, got, s.wantBcrypts)
		}
	}
}

func TestSecretCacheBounded(t *testing.T) {
	inner := &countingHasher{Hasher: &fosite.BCrypt{Config: &fosite.Config{HashCost: bcrypt.MinCost}}}
	c, err := newSecretCache(inner)
	if err != nil {
		t.Fatal(err)
	}
	// Fill the cache directly (bcrypt for 10,000 hashes would be slow) and add one more match.
	for i := range secretCacheEntries {
		c.entries[string(rune(i))+"-hash"] = secretEntry{expires: c.now().Add(time.Hour)}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("s"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Compare(context.Background(), hash, []byte("s")); err != nil {
		t.Fatal(err)
	}
	if n := len(c.entries); n > secretCacheEntries {
		t.Fatalf("cache holds %d entries, bound is %d", n, secretCacheEntries)
	}
	if err := c.Compare(context.Background(), hash, []byte("s")); err != nil || inner.compares.Load() != 1 {
		t.Fatalf("newest match not cached after eviction: err=%v bcrypts=%d", err, inner.compares.Load())
	}
}

// An unknown user's password is compared with a hash as costly as the dearest configured one,
// so a failed login does not tell whether the username exists.
func TestDummyHashCost(t *testing.T) {
	hashAt := func(cost int) []byte {
		h, err := bcrypt.GenerateFromPassword([]byte("pw"), cost)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, tc := range []struct {
		name  string
		users map[string][]byte
		want  int
	}{
		{"no_users", nil, bcrypt.DefaultCost},
		{"cheapest", map[string][]byte{"a": hashAt(bcrypt.MinCost)}, bcrypt.MinCost},
		{"dearest_wins", map[string][]byte{"a": hashAt(bcrypt.MinCost), "b": hashAt(11)}, 11},
		{"unparsable_ignored", map[string][]byte{"a": []byte("$2a$xx"), "b": hashAt(6)}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := dummyHashFor(tc.users)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := bcrypt.Cost(h); err != nil || got != tc.want {
				t.Fatalf("cost %d (%v), want %d", got, err, tc.want)
			}
		})
	}
}

// blockingHasher holds every comparison until release is closed, recording the most that ran
// at once.
type blockingHasher struct {
	fosite.Hasher
	release      chan struct{}
	running, max atomic.Int64
}

func (h *blockingHasher) Compare(ctx context.Context, hash, data []byte) error {
	n := h.running.Add(1)
	for {
		m := h.max.Load()
		if n <= m || h.max.CompareAndSwap(m, n) {
			break
		}
	}
	<-h.release
	h.running.Add(-1)
	return h.Hasher.Compare(ctx, hash, data)
}

// A flood of uncached comparisons runs at most bcryptSlots() bcrypts at once; a secret already
// verified is answered from the cache without waiting for a slot, and a request that ends while
// waiting gives up.
func TestSecretCacheBoundsConcurrentBcrypt(t *testing.T) {
	ctx := context.Background()
	hash, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	inner := &blockingHasher{Hasher: &fosite.BCrypt{Config: &fosite.Config{}}, release: make(chan struct{})}
	c, err := newSecretCache(inner)
	if err != nil {
		t.Fatal(err)
	}
	// Cache the right secret first (its comparison must be released).
	go func() { inner.release <- struct{}{} }()
	if err := c.Compare(ctx, hash, []byte("right")); err != nil {
		t.Fatal(err)
	}

	const flood = 8
	var wg sync.WaitGroup
	for range flood {
		wg.Go(func() { _ = c.Compare(ctx, hash, []byte("wrong")) })
	}
	// Wait until the slots are taken.
	deadline := time.Now().Add(5 * time.Second)
	for inner.running.Load() < int64(bcryptSlots()) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := c.Compare(ctx, hash, []byte("right")); err != nil {
		t.Fatalf("cached secret while bcrypt slots are full: %v", err)
	}
	waiting, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Compare(waiting, hash, []byte("another-wrong")); !errors.Is(err, context.Canceled) {
		t.Fatalf("ended request waiting for a slot: %v, want context.Canceled", err)
	}
	close(inner.release)
	wg.Wait()
	if got := inner.max.Load(); got > int64(bcryptSlots()) || got < 1 {
		t.Fatalf("%d bcrypt comparisons ran at once, want at most %d", got, bcryptSlots())
	}
}

// Concurrent first requests with the same right secret share one verification: whoever gets
// a bcrypt slot after it finds the secret cached.
func TestSecretCacheConcurrentFirstUse(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	inner := &countingHasher{Hasher: &fosite.BCrypt{Config: &fosite.Config{}}}
	c, err := newSecretCache(inner)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() { errs <- c.Compare(context.Background(), hash, []byte("right")) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := inner.compares.Load(); got < 1 || got > int64(bcryptSlots()) {
		t.Fatalf("%d bcrypt comparisons for 16 concurrent uses of one secret, want 1..%d", got, bcryptSlots())
	}
}
