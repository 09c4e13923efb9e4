package clientauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/internal/strictjson"
)

// Fetch policy for jwks_uri and jku key sets (profile §8).
const (
	jwksCacheTTL       = 5 * time.Minute
	jwksRefreshMinimum = time.Minute
	maxJWKSBytes       = 512 << 10
	maxJWKSKeys        = 100
)

var errRedirect = errors.New("redirects are not followed for key set fetches")

// jwksFetcher fetches and caches remote JWK sets. An entry is fresh for five minutes; an
// unknown kid forces a refetch at most once a minute; a failed fetch is retried at most once a
// minute; stale keys are never used after a failed refresh.
type jwksFetcher struct {
	client *http.Client
	now    func() time.Time
	report func(url string, err error) // Config.OnKeySetFetch; nil: nobody listens

	mu      sync.Mutex
	entries map[string]*jwksEntry
}

type jwksEntry struct {
	mu        sync.Mutex // serialises fetches of one URL
	keys      []jose.JSONWebKey
	fetchedAt time.Time // last success
	attempt   time.Time // last attempt
	err       error     // last failure
}

func newJWKSFetcher(client *http.Client, now func() time.Time) *jwksFetcher {
	return &jwksFetcher{client: client, now: now, entries: map[string]*jwksEntry{}}
}

// get returns the key set at url. refresh asks for a refetch because a kid was not found.
// The URL must already have been checked against the configuration (allow-list, scheme).
func (f *jwksFetcher) get(ctx context.Context, url string, refresh bool) ([]jose.JSONWebKey, error) {
	f.mu.Lock()
	e := f.entries[url]
	if e == nil {
		e = &jwksEntry{}
		f.entries[url] = e
	}
	f.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	now := f.now()
	fresh := !e.fetchedAt.IsZero() && now.Before(e.fetchedAt.Add(jwksCacheTTL))
	recent := !e.attempt.IsZero() && now.Before(e.attempt.Add(jwksRefreshMinimum))
	if (fresh && !refresh) || recent {
		if fresh {
			return e.keys, nil
		}
		return nil, e.err
	}
	previous := e.attempt
	e.attempt = now
	keys, err := f.fetch(ctx, url)
	if f.report != nil && ctx.Err() == nil {
		f.report(url, err)
	}
	if err != nil {
		if ctx.Err() != nil {
			e.attempt = previous // the caller gave up: not the key set's fault
		} else {
			e.err = err
		}
		if fresh {
			return e.keys, nil
		}
		return nil, err
	}
	e.keys, e.fetchedAt, e.err = keys, now, nil
	return keys, nil
}

// fetch GETs a JWK set (RFC 7517 §5) with the verifier's client (timeout, no redirects) and a
// size cap, and keeps only usable public signature keys.
func (f *jwksFetcher) fetch(ctx context.Context, url string) ([]jose.JSONWebKey, error) {
	if err := checkFetchURL(url); err != nil {
		return nil, fmt.Errorf("key set URL refused: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("key set request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("key set fetch: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("key set fetch: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("key set read: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("key set larger than %d bytes", maxJWKSBytes)
	}
	return parseJWKS(body)
}

// parseJWKS decodes a JWK set, skipping keys that are not public asymmetric signature keys
// (a key set may carry keys for other uses; a private or symmetric one is never used).
func parseJWKS(body []byte) ([]jose.JSONWebKey, error) {
	if err := strictjson.CheckObject(body); err != nil {
		return nil, fmt.Errorf("key set: %w", err)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("key set: %w", err)
	}
	if len(set.Keys) > maxJWKSKeys {
		return nil, fmt.Errorf("key set has more than %d keys", maxJWKSKeys)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if hasPrivateMembers(raw) || checkPublicVerificationKey(&k) != nil {
			continue
		}
		keys = append(keys, k)
	}
	return keys, nil
}
