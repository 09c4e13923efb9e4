package resource_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authz/authz/internal/testkit"
	"github.com/authz/authz/resource"
)

// keyRefetchInterval is how long a Verifier trusts its copy of the issuer's key set before an
// unknown kid may trigger a refetch.
const keyRefetchInterval = 30 * time.Second

func wantFetches(t *testing.T, iss *issuer, want int32) {
	t.Helper()
	if got := iss.fetches.Load(); got != want {
		t.Fatalf("JWKS fetched %d times, want %d", got, want)
	}
}

func TestKeySetFetchedOnceAndReused(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.iss, e.clk, nil)
	wantFetches(t, e.iss, 0) // New does not fetch
	for range 5 {
		if _, err := v.Verify(e.bearer(t, nil)); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}
	wantFetches(t, e.iss, 1)
	// Tokens that fail before key selection never fetch.
	e2 := newEnv(t)
	v2 := newVerifier(t, e2.iss, e2.clk, nil)
	for _, auth := range []string{"", "Basic abc", "Bearer not-a-jwt"} {
		_, _ = v2.Verify(newRequest(auth, ""))
	}
	_, _ = v2.Verify(e2.bearer(t, func(s *tokenSpec) { s.typ = "JWT" }))
	wantFetches(t, e2.iss, 0)
}

func TestUnknownKidRefetch(t *testing.T) {
	tests := []struct {
		name        string
		advance     time.Duration // clock advance after the first (warming) verification
		wantFetches int32         // after the rotated-key token is presented
		wantErr     error         // for the rotated-key token
	}{
		{name: "within_interval_no_refetch", advance: keyRefetchInterval - time.Second, wantFetches: 1, wantErr: resource.ErrInvalid},
		{name: "after_interval_refetch_finds_rotated_key", advance: keyRefetchInterval + time.Second, wantFetches: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			v := newVerifier(t, e.iss, e.clk, nil)
			long := func(s *tokenSpec) { s.claims["exp"] = e.clk.Now().Add(time.Hour).Unix() }
			if _, err := v.Verify(e.bearer(t, long)); err != nil {
				t.Fatalf("warming Verify: %v", err)
			}
			wantFetches(t, e.iss, 1)

			// The issuer rotates to a new key the verifier has not seen.
			rotated := testkit.ECKey(t)
			e.iss.publish("issuer-key-2", &rotated.PublicKey)
			raw := e.token(t, func(s *tokenSpec) {
				long(s)
				s.key, s.kid = rotated, "issuer-key-2"
			})
			e.clk.Advance(tt.advance)
			_, err := v.Verify(newRequest("Bearer "+raw, ""))
			if tt.wantErr == nil && err != nil {
				t.Errorf("rotated key: Verify: %v", err)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("rotated key: error = %v, want %v", err, tt.wantErr)
			}
			wantFetches(t, e.iss, tt.wantFetches)

			// A burst of unknown kids right after does not refetch again.
			for range 10 {
				_, err := v.Verify(e.bearer(t, func(s *tokenSpec) { long(s); s.kid = "never-published" }))
				if !errors.Is(err, resource.ErrInvalid) {
					t.Fatalf("unknown kid: error = %v, want %v", err, resource.ErrInvalid)
				}
			}
			wantFetches(t, e.iss, tt.wantFetches)
			// The original key still works.
			if _, err := v.Verify(e.bearer(t, long)); err != nil {
				t.Fatalf("original key: Verify: %v", err)
			}
		})
	}
}

func TestUnknownKidOnFirstUseFetchesOnce(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.iss, e.clk, nil)
	for range 10 {
		_, err := v.Verify(e.bearer(t, func(s *tokenSpec) { s.kid = "never-published" }))
		if !errors.Is(err, resource.ErrInvalid) {
			t.Fatalf("error = %v, want %v", err, resource.ErrInvalid)
		}
	}
	wantFetches(t, e.iss, 1)
	if _, err := v.Verify(e.bearer(t, nil)); err != nil {
		t.Fatalf("known kid: Verify: %v", err)
	}
	wantFetches(t, e.iss, 1)
}

func TestKeySetFetchFailure(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{name: "server_error_with_json_body", status: http.StatusInternalServerError, body: `{"error":"server_error"}`},
		{name: "unavailable_with_empty_key_set", status: http.StatusServiceUnavailable, body: `{"keys":[]}`},
		{name: "not_found_html", status: http.StatusNotFound, body: `<html>not found</html>`},
		{name: "ok_but_not_json", status: http.StatusOK, body: `not json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A failed first fetch rejects the token and is not cached as the issuer's key set:
			// once the issuer recovers (and the refetch interval passed), tokens verify.
			t.Run("first_fetch", func(t *testing.T) {
				e := newEnv(t)
				v := newVerifier(t, e.iss, e.clk, nil)
				long := func(s *tokenSpec) { s.claims["exp"] = e.clk.Now().Add(time.Hour).Unix() }
				e.iss.fail(tt.status, tt.body)
				if tok, err := v.Verify(e.bearer(t, long)); err == nil || tok != nil {
					t.Fatalf("Verify with the JWKS failing = %+v, %v; want an error", tok, err)
				}
				e.iss.fail(0, "")
				e.clk.Advance(keyRefetchInterval + time.Second)
				if _, err := v.Verify(e.bearer(t, long)); err != nil {
					t.Fatalf("after recovery: Verify: %v", err)
				}
			})
			// A failed refetch (triggered by an unknown kid) keeps the keys already known.
			t.Run("refetch", func(t *testing.T) {
				e := newEnv(t)
				v := newVerifier(t, e.iss, e.clk, nil)
				long := func(s *tokenSpec) { s.claims["exp"] = e.clk.Now().Add(time.Hour).Unix() }
				if _, err := v.Verify(e.bearer(t, long)); err != nil {
					t.Fatalf("warming Verify: %v", err)
				}
				e.clk.Advance(keyRefetchInterval + time.Second)
				e.iss.fail(tt.status, tt.body)
				if _, err := v.Verify(e.bearer(t, func(s *tokenSpec) { long(s); s.kid = "never-published" })); err == nil {
					t.Fatal("unknown kid verified")
				}
				wantFetches(t, e.iss, 2)
				if _, err := v.Verify(e.bearer(t, long)); err != nil {
					t.Fatalf("known kid after a failed refetch: Verify: %v", err)
				}
			})
		})
	}
}

func TestKeySetUnreachable(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.iss, e.clk, nil)
	raw := e.token(t, nil)
	e.iss.srv.Close()
	tok, err := v.Verify(newRequest("Bearer "+raw, ""))
	if tok != nil || !errors.Is(err, resource.ErrKeysUnavailable) {
		t.Fatalf("Verify with the issuer down = %+v, %v; want ErrKeysUnavailable", tok, err)
	}
	// The middleware answers 503 (not the client's fault) without the internal URL or cause.
	w := httptest.NewRecorder()
	v.Middleware(http.NotFoundHandler()).ServeHTTP(w, newRequest("Bearer "+raw, ""))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("WWW-Authenticate") != "" ||
		strings.Contains(w.Body.String(), e.iss.URL()) || strings.Contains(w.Body.String(), "dial") {
		t.Fatalf("issuer down: %d WWW-Authenticate %q body %q", w.Code, w.Header().Get("WWW-Authenticate"), w.Body.String())
	}
}

// TestKeySetExpires: a fetched key set is used for 5 minutes (authz serves it with max-age=300);
// after that it is fetched again, so a key the issuer removed is no longer trusted.
func TestKeySetExpires(t *testing.T) {
	e, v, raw := warmVerifier(t)
	e.iss.unpublish(issuerKID)
	e.clk.Advance(5*time.Minute - time.Second)
	if _, err := v.Verify(newRequest("Bearer "+raw, "")); err != nil {
		t.Fatalf("within the key set's lifetime: Verify: %v", err)
	}
	wantFetches(t, e.iss, 1)
	e.clk.Advance(2 * time.Second)
	if _, err := v.Verify(newRequest("Bearer "+raw, "")); !errors.Is(err, resource.ErrInvalid) {
		t.Fatalf("a removed key after the key set expired: Verify error = %v, want ErrInvalid", err)
	}
	wantFetches(t, e.iss, 2)
}

// TestKeySetStaleWhileIssuerDown: when the set is due but the issuer cannot be reached, the last
// set keeps serving for up to an hour, then requests fail with ErrKeysUnavailable.
func TestKeySetStaleWhileIssuerDown(t *testing.T) {
	e, v, raw := warmVerifier(t)
	e.iss.fail(http.StatusBadGateway, "")
	e.clk.Advance(10 * time.Minute)
	if _, err := v.Verify(newRequest("Bearer "+raw, "")); err != nil {
		t.Fatalf("issuer down 10 minutes after the last fetch: Verify: %v", err)
	}
	e.clk.Advance(time.Hour)
	if _, err := v.Verify(newRequest("Bearer "+raw, "")); !errors.Is(err, resource.ErrKeysUnavailable) {
		t.Fatalf("issuer down 70 minutes after the last fetch: Verify error = %v, want ErrKeysUnavailable", err)
	}
	e.iss.fail(0, "")
	e.clk.Advance(31 * time.Second) // a failed fetch is not retried for 30 s
	if _, err := v.Verify(newRequest("Bearer "+raw, "")); err != nil {
		t.Fatalf("issuer back: Verify: %v", err)
	}
}

// TestKeySetFetchBackoff: during an outage the issuer is asked at most once per 30 s, however
// many requests arrive (each would otherwise wait for its own timeout), and concurrent requests
// share one fetch.
func TestKeySetFetchBackoff(t *testing.T) {
	e, v, raw := warmVerifier(t)
	e.iss.fail(http.StatusBadGateway, "")
	e.clk.Advance(10 * time.Minute)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := v.Verify(newRequest("Bearer "+raw, "")); err != nil {
				t.Errorf("stale key set during an outage: %v", err)
			}
		}()
	}
	wg.Wait()
	wantFetches(t, e.iss, 2) // the warming fetch and one attempt for all fifty
	e.clk.Advance(31 * time.Second)
	if _, err := v.Verify(newRequest("Bearer "+raw, "")); err != nil {
		t.Fatal(err)
	}
	wantFetches(t, e.iss, 3)
}

// warmVerifier returns an env, a Verifier that has fetched the key set once, and a token of the
// issuer's key valid for three hours.
func warmVerifier(t *testing.T) (*env, *resource.Verifier, string) {
	t.Helper()
	e := newEnv(t)
	v := newVerifier(t, e.iss, e.clk, nil)
	raw := e.token(t, func(s *tokenSpec) { s.claims["exp"] = e.clk.Now().Add(3 * time.Hour).Unix() })
	if _, err := v.Verify(newRequest("Bearer "+raw, "")); err != nil {
		t.Fatalf("warming Verify: %v", err)
	}
	wantFetches(t, e.iss, 1)
	return e, v, raw
}
