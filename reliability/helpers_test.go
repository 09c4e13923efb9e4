package reliability

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/authz/authz/config"
	"github.com/authz/authz/internal/testkit"
	"github.com/authz/authz/server"
	"github.com/authz/authz/storage"
)

// Clients of the base configuration.
const (
	agentID        = "agent"  // attest_jwt_client_auth
	otherAgentID   = "agent2" // attest_jwt_client_auth, a second attested client
	secretClientID = "svc"    // client_secret_basic, introspects
	secretValue    = "svc-secret-0123456789"
	attesterID     = "test-attester"
)

var ccForm = url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}

// formFor is a client_credentials form naming clientID.
func formFor(clientID string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}, "client_id": {clientID}}
}

// testEnv is authz in this process over a real SQLite file: Handler for direct ServeHTTP (with a
// chosen RemoteAddr), and URL when it also listens on a loopback port.
type testEnv struct {
	t        testing.TB
	URL      string // the issuer; also where it listens when started with listen
	Handler  http.Handler
	Store    *storage.Store
	Config   *config.Config
	Attester *Attester
}

func newAttester(tb testing.TB) *Attester {
	tb.Helper()
	a, err := NewAttester(attesterID)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// baseConfig is the configuration every in-process test starts from: one attester, two attested
// clients, a secret client, rate limits off (the rate-limit tests turn them on).
func baseConfig(tb testing.TB, issuer string, att *Attester) config.Config {
	tb.Helper()
	jwks, err := att.JWKS()
	if err != nil {
		tb.Fatal(err)
	}
	cfg := config.Default()
	cfg.Issuer = issuer
	cfg.Listen = issuer[len("http://"):]
	cfg.Attesters = []config.Attester{{ID: attesterID, JWKS: string(jwks)}}
	cfg.Clients = []config.Client{
		{ClientID: agentID, TokenEndpointAuthMethod: config.AuthMethodAttestJWT, GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}, Attesters: []string{attesterID}},
		{ClientID: otherAgentID, TokenEndpointAuthMethod: config.AuthMethodAttestJWT, GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}},
		{ClientID: secretClientID, TokenEndpointAuthMethod: config.AuthMethodClientSecretBasic, GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}, ClientSecret: secretValue},
	}
	cfg.RateLimit = config.RateLimit{}
	cfg.Log.Level = "error"
	return cfg
}

// newTestServer builds authz over a fresh SQLite file (unless mutate picks another database)
// with the base configuration changed by mutate. With listen it also serves on a loopback port (URL); otherwise URL is a loopback
// issuer nothing listens on and requests go through Handler.
func newTestServer(tb testing.TB, listen bool, mutate func(*config.Config)) *testEnv {
	tb.Helper()
	var ln net.Listener
	issuer := "http://127.0.0.1:9"
	if listen {
		ln = testkit.Listen(tb)
		issuer = "http://" + ln.Addr().String()
	}
	att := newAttester(tb)
	cfg := baseConfig(tb, issuer, att)
	cfg.Database.DSN = filepath.Join(tb.TempDir(), "authz.db")
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		tb.Fatalf("test config: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logOut io.Writer = io.Discard
	if os.Getenv("AUTHZ_TEST_LOG") != "" { // debugging: the server's log on stderr
		logOut = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := storage.Open(ctx, storage.Options{Driver: cfg.Database.Driver, DSN: cfg.Database.DSN, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	srv, err := server.New(ctx, &cfg, st, log)
	if err != nil {
		tb.Fatalf("server.New: %v", err)
	}
	env := &testEnv{t: tb, URL: issuer, Handler: srv.Handler(), Store: st, Config: &cfg, Attester: att}
	if !listen {
		tb.Cleanup(func() { cancel(); st.Close() })
		return env
	}
	tb.Cleanup(func() { st.Close() })
	testkit.Serve(tb, func() error { return srv.Serve(ctx, ln) }, cancel)
	return env
}

// agent returns a fresh attested instance of clientID.
func (e *testEnv) agent(clientID string) *Agent {
	e.t.Helper()
	g, err := NewAgent(e.Attester, clientID, e.URL, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return g
}

// headers returns g's attestation headers with a fresh PoP.
func (e *testEnv) headers(g *Agent, challenge string) map[string]string {
	e.t.Helper()
	h, _, err := g.Headers(challenge, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

// post sends a form to the listening server.
func (e *testEnv) post(path string, form url.Values, headers map[string]string) *Response {
	e.t.Helper()
	r, err := PostForm(context.Background(), http.DefaultClient, e.URL+path, form, headers, "", "")
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// checkAudit opens the database the server wrote, fails the test for every violation of profile
// §7 among agentID's decisions and for every received token without a row, and returns the
// report.
func checkAudit(t *testing.T, driver, dsn string, tokens []string) *AuditReport {
	t.Helper()
	db, err := OpenDB(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep, err := CheckAudit(context.Background(), db, agentID)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Violations {
		t.Error(v)
	}
	for i, tok := range tokens {
		ok, err := AccessTokenStored(context.Background(), db, driver, tok)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Errorf("received token %d has no row", i)
		}
	}
	return rep
}

// postLoop sends g's client_credentials requests to issuer's token endpoint with fresh PoPs, one
// after the other on its own connections, until ctx ends or answer, which sees each response or
// transport error, returns false.
func postLoop(ctx context.Context, g *Agent, issuer string, answer func(*Response, error) bool) {
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	for ctx.Err() == nil {
		h, _, err := g.Headers("", time.Now())
		if err != nil {
			return
		}
		if !answer(PostForm(ctx, client, issuer+"/oauth2/token", ccForm, h, "", "")) {
			return
		}
	}
}
