package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/ory/fosite"
)

// Bounds of the verified-secret cache (decision S19).
const (
	secretCacheTTL     = 10 * time.Minute
	secretCacheEntries = 10000
)

// secretCache remembers, for each stored client-secret hash, the last secret that matched it, so
// client_secret_basic and client_secret_post do not pay a bcrypt comparison (~50 ms of CPU,
// decision S10) on every token request. RFC 6749 §2.3.1 leaves the secret's storage to the
// server; what the cache holds is HMAC-SHA256 under a key drawn at start and never stored or
// logged, never the secret. Only successful comparisons are cached: a wrong secret always pays
// the full bcrypt cost, so guessing stays as slow as without the cache. A changed secret has a
// new stored hash and therefore misses the cache. Matching is hmac.Equal (constant time).
type secretCache struct {
	inner fosite.Hasher
	key   [32]byte
	now   func() time.Time
	// slots bounds the bcrypt comparisons running at once (bcryptSlots): a flood of wrong
	// secrets, each ~50 ms of CPU, then occupies at most that many cores and the rest of the
	// server (attested tokens, cached secrets) keeps the others.
	slots chan struct{}

	mu      sync.Mutex
	entries map[string]secretEntry // by stored hash
}

type secretEntry struct {
	mac     [sha256.Size]byte
	expires time.Time
}

// bcryptSlots is how many bcrypt comparisons may run at once: half the cores, at least one.
func bcryptSlots() int { return max(1, runtime.GOMAXPROCS(0)/2) }

func newSecretCache(inner fosite.Hasher) (*secretCache, error) {
	c := &secretCache{inner: inner, now: time.Now, entries: make(map[string]secretEntry), slots: make(chan struct{}, bcryptSlots())}
	if _, err := rand.Read(c.key[:]); err != nil {
		return nil, fmt.Errorf("secret cache key: %w", err)
	}
	return c, nil
}

// mac binds the presented secret to the stored hash it is checked against.
func (c *secretCache) mac(hash, secret []byte) [sha256.Size]byte {
	h := hmac.New(sha256.New, c.key[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(hash)))
	h.Write(n[:])
	h.Write(hash)
	h.Write(secret)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// Compare implements fosite.Hasher: a cached match answers at once, anything else goes to the
// inner hasher and a match is remembered.
func (c *secretCache) Compare(ctx context.Context, hash, data []byte) error {
	mac := c.mac(hash, data)
	if c.cached(hash, mac) {
		return nil
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting to compare a client secret: %w", ctx.Err())
	}
	if c.cached(hash, mac) { // verified by a request that held the slot before this one
		<-c.slots
		return nil
	}
	defer func() { <-c.slots }() // after remembering a match: the next holder finds it cached
	if err := c.inner.Compare(ctx, hash, data); err != nil {
		return err
	}
	c.remember(hash, mac)
	return nil
}

// remember caches mac as the match for hash, for secretCacheTTL.
func (c *secretCache) remember(hash []byte, mac [sha256.Size]byte) {
	now := c.now()
	c.mu.Lock()
	if len(c.entries) >= secretCacheEntries {
		for k, old := range c.entries { // drop what has expired; if nothing has, start over
			if !now.Before(old.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= secretCacheEntries {
			clear(c.entries)
		}
	}
	c.entries[string(hash)] = secretEntry{mac: mac, expires: now.Add(secretCacheTTL)}
	c.mu.Unlock()
}

// cached reports whether mac is the remembered match for hash (constant-time comparison).
func (c *secretCache) cached(hash []byte, mac [sha256.Size]byte) bool {
	c.mu.Lock()
	e, ok := c.entries[string(hash)]
	c.mu.Unlock()
	return ok && c.now().Before(e.expires) && hmac.Equal(e.mac[:], mac[:])
}

// Hash implements fosite.Hasher (not cached: hashing happens when a secret is set).
func (c *secretCache) Hash(ctx context.Context, data []byte) ([]byte, error) {
	return c.inner.Hash(ctx, data)
}
