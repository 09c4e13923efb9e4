// Command authz-soak is the soak test of issue 7 (`make soak`, not part of `make test`). It
// starts the real authz binary on a loopback port over a fresh SQLite file, drives mixed good and
// hostile client_credentials traffic for a bounded time (good ABCA-09 §5 requests, replayed and
// concurrently replayed PoPs, bad PoP signatures, wrong PoP audiences, oversized headers, garbage
// forms and JWTs), then checks and prints: no 5xx, resident memory flat within a bound, every
// issued token stored with exactly one accepted audit decision (profile §7), one decision per
// attested request, and no replayed PoP ever accepted (ABCA-09 §11.1, profile §5). It exits 1 on
// any violation and 2 on a bad flag. Nothing leaves the loopback interface.
//
// Usage:
//
//	authz-soak [--duration 60s] [--bin bin/authz] [--workers 8] [--max-rss-growth-mib 64] [--keep] [--race]
//
// The memory bound compares the median anonymous RSS (heap and stacks: RssAnon) of the run's
// second quarter (after warm-up) with that of its last quarter. File-backed pages are left out:
// on SQLite they are mostly the database's memory map, which grows with the data, not a leak. Rate limits are off in the soak's server so every request reaches the
// handlers; the rate limiter has its own tests in reliability/.
package main
