package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/authz/authz/attestclient"
	"github.com/authz/authz/config"
	"github.com/authz/authz/resource"
	"github.com/authz/authz/server"
	"github.com/authz/authz/storage"
)

// TestEndToEnd is the README's story: attestation -> token -> API call that succeeds; the same
// token replayed from another key fails.
func TestEndToEnd(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	attester, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: attester.Public(), KeyID: "a1", Algorithm: "ES256"}}})
	cfg := config.Default()
	cfg.Issuer, cfg.Listen = issuer, ln.Addr().String()
	cfg.Database.DSN = filepath.Join(t.TempDir(), "authz.db")
	cfg.Attesters = []config.Attester{{ID: "acme-attester", JWKS: string(jwks)}}
	cfg.Clients = []config.Client{{ClientID: "agent-dpop", TokenEndpointAuthMethod: config.AuthMethodAttestJWTDPoP, GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := storage.Open(ctx, storage.Options{Driver: "sqlite", DSN: cfg.Database.DSN, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(ctx, &cfg, st, log)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ctx, ln) }()

	rs := httptest.NewUnstartedServer(nil)
	v, err := resource.New(resource.Config{Issuer: issuer, Audience: issuer, BaseURL: "http://" + rs.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	rs.Config.Handler = Handler(v)
	rs.Start()
	defer rs.Close()

	source := func(_ context.Context, clientID string, key jose.JSONWebKey) (string, error) {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: attester}, (&jose.SignerOptions{}).WithType("oauth-client-attestation+jwt").WithHeader("kid", "a1"))
		return jwt.Signed(s).Claims(map[string]any{"sub": clientID, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(), "cnf": map[string]any{"jwk": key}}).Serialize()
	}
	agent, err := attestclient.New(ctx, attestclient.Config{Issuer: issuer, ClientID: "agent-dpop", Scopes: []string{"read"}, Attestation: source, CombinedMode: true})
	if err != nil {
		t.Fatal(err)
	}
	ts := agent.TokenSource(ctx)
	resp, err := (&http.Client{Transport: agent.Transport(ts, nil)}).Get(rs.URL + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	var who map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&who)
	resp.Body.Close()
	att, _ := who["attestation"].(map[string]any)
	if resp.StatusCode != 200 || who["client_id"] != "agent-dpop" || who["dpop_bound"] != true || att["attester"] != "acme-attester" || att["instance_jkt"] != agent.Thumbprint() {
		t.Fatalf("whoami: %d %v", resp.StatusCode, who)
	}

	// Replayed from another key: refused.
	tok, _ := ts.Token()
	other, err := attestclient.New(ctx, attestclient.Config{Issuer: issuer, ClientID: "agent-dpop", Attestation: source, CombinedMode: true})
	if err != nil {
		t.Fatal(err)
	}
	stolen := &http.Client{Transport: other.Transport(staticSource{tok}, nil)}
	resp, err = stolen.Get(rs.URL + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token from another key: %d, want 401", resp.StatusCode)
	}
	// No token at all.
	resp, err = http.Get(rs.URL + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

type staticSource struct{ tok *oauth2.Token }

func (s staticSource) Token() (*oauth2.Token, error) { return s.tok, nil }
