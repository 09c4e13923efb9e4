package clientauth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// defaultCacheEntries bounds the verified-attestation cache.
const defaultCacheEntries = 10000

// verifiedCache remembers attestations whose signature, typ, claims and cnf key verified, keyed
// by the SHA-256 of the JWT, so a client reusing its attestation (ABCA-09 §9.2) costs no key
// resolution or signature check. An entry lives until the attestation expires, at most five
// minutes (the key-set cache horizon, so a key removed from a jwks_uri stops working as soon as
// for an uncached token), and only for the trust-set generation it was verified under
// (SetAttesters invalidates it). Time-dependent checks still run on every request. A nil cache
// is disabled.
type verifiedCache struct {
	mu      sync.Mutex
	max     int
	entries map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	att        *attestation
	generation uint64
	until      time.Time
}

func newVerifiedCache(max int) *verifiedCache {
	return &verifiedCache{max: max, entries: map[[sha256.Size]byte]cacheEntry{}}
}

func (c *verifiedCache) get(token string, generation uint64, now time.Time) *attestation {
	if c == nil {
		return nil
	}
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil
	}
	if e.generation != generation || !now.Before(e.until) {
		delete(c.entries, key)
		return nil
	}
	return e.att
}

func (c *verifiedCache) put(token string, generation uint64, att *attestation, now, until time.Time) {
	if c == nil {
		return
	}
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, e := range c.entries {
			if e.generation != generation || !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	c.entries[key] = cacheEntry{att: att, generation: generation, until: until}
}

func (c *verifiedCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}
