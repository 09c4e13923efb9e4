package reliability

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// subprocessConfig is the `authz serve` configuration of the subprocess tests: the attester's
// JWK set in a file, the attested client "agent" and the introspecting client "svc".
func subprocessConfig(t *testing.T, dir, addr, driver, dsn string, att *Attester) (ServerConfig, string) {
	t.Helper()
	jwks, err := att.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := filepath.Join(dir, "attester-jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := ServerConfig{
		Addr: addr, Driver: driver, DSN: dsn,
		Attesters: []map[string]any{{"id": att.ID, "jwks_file": jwksFile}},
		Clients: []map[string]any{
			{"client_id": agentID, "token_endpoint_auth_method": "attest_jwt_client_auth", "grant_types": []string{"client_credentials"}, "scopes": []string{"read"}, "attesters": []string{att.ID}},
			{"client_id": secretClientID, "token_endpoint_auth_method": "client_secret_basic", "grant_types": []string{"client_credentials"}, "scopes": []string{"read"}, "client_secret": secretValue},
		},
	}
	path := filepath.Join(dir, "authz.yaml")
	if err := cfg.Write(path); err != nil {
		t.Fatal(err)
	}
	return cfg, path
}

// buildAuthz compiles cmd/authz for a subprocess test. Without the race detector: under -race,
// bcrypt at introspection costs about a second a token.
func buildAuthz(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := BuildAuthz(ctx, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// startAuthz starts the binary and kills it at the end of the test if it still runs.
func startAuthz(t *testing.T, bin, cfgPath, url string) *Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := Start(ctx, bin, cfgPath, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.Kill()
		}
	})
	return p
}

// loadResult is what the load goroutines saw.
type loadResult struct {
	mu       sync.Mutex
	tokens   []string    // every access token whose response arrived whole
	unwanted []*Response // any answer other than 200 while the server ran
}

// driveLoad runs workers goroutines, each an attested instance of agentID sending
// client_credentials requests with fresh PoPs until ctx ends or the connection fails (the kill).
// It signals reached once want tokens have arrived.
func driveLoad(ctx context.Context, t *testing.T, att *Attester, issuer string, workers, want int, reached chan<- struct{}) (*loadResult, *sync.WaitGroup) {
	t.Helper()
	res := &loadResult{}
	var count atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		g, err := NewAgent(att, agentID, issuer, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			postLoop(ctx, g, issuer, func(r *Response, err error) bool {
				if err != nil {
					return false // the server is gone (or ctx ended): stop
				}
				res.mu.Lock()
				if r.Status == http.StatusOK && r.AccessToken != "" {
					res.tokens = append(res.tokens, r.AccessToken)
				} else {
					res.unwanted = append(res.unwanted, r)
				}
				res.mu.Unlock()
				if count.Add(1) >= int64(want) {
					once.Do(func() { close(reached) })
				}
				return true
			})
		}()
	}
	return res, &wg
}

// crashCycles is how many times the server is killed under load before the final checks; each
// kill lands on whatever commits are in flight at that instant.
const crashCycles = 3

// TestCrashSafety_KillDuringLoad is issue 7 "Crash safety": the real binary on a SQLite file is
// killed with SIGKILL while four attested clients obtain tokens, three times over; restarted on
// the same file it serves again, every token a client received is active at introspection, and
// the database holds exactly one accepted decision per issued grant and no accepted decision
// without its token (profile §7; the replay keys, token and decision commit in one transaction).
func TestCrashSafety_KillDuringLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the authz binary")
	}
	bin := buildAuthz(t)
	dir := t.TempDir()
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	att := newAttester(t)
	dbPath := filepath.Join(dir, "authz.db")
	cfg, cfgPath := subprocessConfig(t, dir, addr, "sqlite", dbPath, att)
	issuer := cfg.Issuer()

	var tokens []string
	var crashed []*Process
	for cycle := range crashCycles {
		p := startAuthz(t, bin, cfgPath, issuer)
		crashed = append(crashed, p)
		ctx, cancel := context.WithCancel(context.Background())
		reached := make(chan struct{})
		load, wg := driveLoad(ctx, t, att, issuer, 4, 20, reached)
		select {
		case <-reached:
		case <-time.After(2 * time.Minute):
			cancel()
			wg.Wait()
			t.Fatalf("cycle %d: load did not reach 20 answers; server log:\n%s", cycle, p.Tail())
		}
		if err := p.Kill(); err != nil { // mid-load: the workers have requests in flight
			t.Fatal(err)
		}
		cancel()
		wg.Wait()
		for _, r := range load.unwanted {
			t.Errorf("cycle %d: answer before the crash: %d %s %s", cycle, r.Status, r.Error, r.Description)
		}
		if len(load.tokens) == 0 {
			t.Fatalf("cycle %d: no token was received before the crash", cycle)
		}
		t.Logf("cycle %d: %d tokens received before kill -9", cycle, len(load.tokens))
		tokens = append(tokens, load.tokens...)
	}

	final := startAuthz(t, bin, cfgPath, issuer)
	resp, err := http.Get(issuer + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("restarted server not ready: %d\n%s", resp.StatusCode, final.Tail())
	}

	t.Run("received_tokens_active", func(t *testing.T) {
		for i, tok := range tokens {
			r, err := PostForm(context.Background(), http.DefaultClient, issuer+"/oauth2/introspect", url.Values{"token": {tok}}, nil, secretClientID, secretValue)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != http.StatusOK || !r.Active || r.ClientID != agentID {
				t.Errorf("token %d after restart: %d active=%v client_id=%q %s", i, r.Status, r.Active, r.ClientID, r.Body)
			}
		}
	})

	t.Run("one_accepted_decision_per_grant", func(t *testing.T) {
		if rep := checkAudit(t, "sqlite", dbPath, tokens); rep.Grants < len(tokens) {
			t.Errorf("%d grants stored, but clients received %d tokens", rep.Grants, len(tokens))
		}
	})

	t.Run("restart_clean", func(t *testing.T) {
		// The restarted server still issues tokens, and neither start logged an error.
		g, err := NewAgent(att, agentID, issuer, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		h, _, err := g.Headers("", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		r, err := PostForm(context.Background(), http.DefaultClient, issuer+"/oauth2/token", ccForm, h, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusOK {
			t.Errorf("token after restart: %d %s %s", r.Status, r.Error, r.Description)
		}
		if err := final.Stop(30 * time.Second); err != nil {
			t.Errorf("%v\n%s", err, final.Tail())
		}
		for _, p := range append(crashed, final) {
			for _, line := range p.ErrorLines() {
				t.Errorf("error logged: %s", line)
			}
		}
	})
}
