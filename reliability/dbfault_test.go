package reliability

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/authz/authz/config"
)

// failFast bounds how long a request may take while the database is down (issue 7: "fail fast").
const failFast = 5 * time.Second

// outageLoad records every answer one attested client got while the database went away and
// came back.
type outageLoad struct {
	mu        sync.Mutex
	statuses  map[int]int
	tokens    []string
	bad       []string // answers that break the rules: a token with a 5xx, an unexpected status or code
	transport []error
}

// runOutageLoad sends attested client_credentials requests from workers goroutines until ctx
// ends.
func runOutageLoad(ctx context.Context, t *testing.T, env *testEnv, workers int) (*outageLoad, *sync.WaitGroup) {
	t.Helper()
	l := &outageLoad{statuses: map[int]int{}}
	var wg sync.WaitGroup
	for range workers {
		g := env.agent(agentID)
		wg.Add(1)
		go func() {
			defer wg.Done()
			postLoop(ctx, g, env.URL, func(r *Response, err error) bool {
				l.mu.Lock()
				defer l.mu.Unlock()
				switch {
				case err != nil && ctx.Err() == nil:
					l.transport = append(l.transport, err)
				case err != nil:
				case r.Status == http.StatusOK && r.AccessToken != "":
					l.statuses[r.Status]++
					l.tokens = append(l.tokens, r.AccessToken)
				case r.Status == http.StatusServiceUnavailable && r.Error == "temporarily_unavailable" && r.AccessToken == "":
					l.statuses[r.Status]++
				default:
					l.statuses[r.Status]++
					l.bad = append(l.bad, string(r.Body))
				}
				return true
			})
		}()
	}
	return l, &wg
}

// TestDatabaseFault_PostgresOutage is issue 7 "Database faults": authz runs on a private
// PostgreSQL server, which is stopped under load. Requests then fail fast with 503
// temporarily_unavailable and Retry-After (never a token: the replay keys, token and audit
// decision commit together or not at all), /readyz reports the database unreachable while
// /healthz stays up; when PostgreSQL returns, service resumes with no restart of authz, and the
// database holds exactly one accepted decision for every token issued around the outage.
func TestDatabaseFault_PostgresOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a private PostgreSQL server")
	}
	pg := newPrivatePostgres(t)
	env := newTestServer(t, true, func(c *config.Config) {
		c.Database.Driver = "postgres"
		c.Database.DSN = pg.DSN()
	})
	g := env.agent(agentID)
	if r := env.post("/oauth2/token", ccForm, env.headers(g, "")); r.Status != http.StatusOK {
		t.Fatalf("token before the outage: %d %s %s", r.Status, r.Error, r.Description)
	}
	if code, _ := getStatus(t, env.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz before the outage: %d", code)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	load, wg := runOutageLoad(ctx, t, env, 2)

	pg.stop()

	tests := []struct {
		name       string
		path       string
		form       url.Values
		headers    func() map[string]string
		basic      bool
		wantStatus int
		wantError  string
	}{
		{"attested_token_request", "/oauth2/token", ccForm, func() map[string]string { return env.headers(g, "") }, false, http.StatusServiceUnavailable, "temporarily_unavailable"},
		{"secret_client_token_request", "/oauth2/token", ccForm, nil, true, http.StatusServiceUnavailable, "temporarily_unavailable"},
		{"introspection", "/oauth2/introspect", url.Values{"token": {"x"}}, nil, true, http.StatusServiceUnavailable, "temporarily_unavailable"},
	}
	for _, tt := range tests {
		t.Run("down_"+tt.name, func(t *testing.T) {
			var headers map[string]string
			if tt.headers != nil {
				headers = tt.headers()
			}
			user, pass := "", ""
			if tt.basic {
				user, pass = secretClientID, secretValue
			}
			start := time.Now()
			r, err := PostForm(context.Background(), http.DefaultClient, env.URL+tt.path, tt.form, headers, user, pass)
			if err != nil {
				t.Fatal(err)
			}
			if elapsed := time.Since(start); elapsed > failFast {
				t.Errorf("took %s with the database down, want under %s", elapsed, failFast)
			}
			if r.Status != tt.wantStatus || r.Error != tt.wantError {
				t.Fatalf("got %d %q (%s), want %d %q", r.Status, r.Error, r.Description, tt.wantStatus, tt.wantError)
			}
			if r.AccessToken != "" {
				t.Fatal("a token was issued with the database down")
			}
			if r.Header.Get("Retry-After") == "" || r.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("Retry-After %q, Cache-Control %q", r.Header.Get("Retry-After"), r.Header.Get("Cache-Control"))
			}
		})
	}
	t.Run("down_readyz_unavailable", func(t *testing.T) {
		code, body := getStatus(t, env.URL+"/readyz")
		var v struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(body, &v)
		if code != http.StatusServiceUnavailable || v.Status != "unavailable" {
			t.Fatalf("/readyz: %d %s", code, body)
		}
	})
	t.Run("down_healthz_alive", func(t *testing.T) {
		if code, body := getStatus(t, env.URL+"/healthz"); code != http.StatusOK {
			t.Fatalf("/healthz: %d %s", code, body)
		}
	})

	pg.start()

	t.Run("service_resumes_by_itself", func(t *testing.T) {
		// No restart and no operator action: the connection pool reconnects on its own.
		deadline := time.Now().Add(time.Minute)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			code, _ := getStatus(t, env.URL+"/readyz")
			if code == http.StatusOK {
				r := env.post("/oauth2/token", ccForm, env.headers(g, ""))
				if r.Status == http.StatusOK {
					return
				}
				if r.Status != http.StatusServiceUnavailable {
					t.Fatalf("token while recovering: %d %s %s", r.Status, r.Error, r.Description)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("not serving tokens a minute after PostgreSQL returned (/readyz %d)", code)
			}
			<-tick.C
		}
	})

	cancel()
	wg.Wait()
	t.Run("load_saw_only_tokens_or_503", func(t *testing.T) {
		t.Logf("answers under load: %v", load.statuses)
		for _, b := range load.bad {
			t.Errorf("unexpected answer: %s", b)
		}
		for _, err := range load.transport {
			t.Errorf("transport error: %v", err)
		}
		if load.statuses[http.StatusServiceUnavailable] == 0 {
			t.Error("the load never saw the outage")
		}
	})
	t.Run("no_token_without_its_decision", func(t *testing.T) {
		checkAudit(t, "postgres", pg.DSN(), load.tokens)
	})
}

// getStatus GETs rawURL and returns the status and body.
func getStatus(t *testing.T, rawURL string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Do(http.DefaultClient, req)
	if err != nil {
		t.Fatal(err)
	}
	return r.Status, r.Body
}
