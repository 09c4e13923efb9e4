package attestclient_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"golang.org/x/oauth2"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/authz/authz/attestclient"
	"github.com/authz/authz/config"
	"github.com/authz/authz/internal/testkit"
	"github.com/authz/authz/resource"
	"github.com/authz/authz/server"
	"github.com/authz/authz/storage"
)

// env is a real authz on loopback with one attester whose key the test holds.
type env struct {
	issuer   string
	attester *ecdsa.PrivateKey
	// attestations counts calls of the attestation source.
	attestations atomic.Int32
	// lifetime of issued attestations
	lifetime time.Duration
}

func start(t *testing.T, mutate func(*config.Config)) *env {
	t.Helper()
	ln := testkit.Listen(t)
	e := &env{issuer: "http://" + ln.Addr().String(), lifetime: time.Hour, attester: testkit.ECKey(t)}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: e.attester.Public(), KeyID: "att-1", Algorithm: "ES256"}}})
	cfg := config.Default()
	cfg.Issuer, cfg.Listen = e.issuer, ln.Addr().String()
	cfg.Database.DSN = filepath.Join(t.TempDir(), "authz.db")
	cfg.Attesters = []config.Attester{{ID: "att", JWKS: string(jwks)}}
	cfg.Clients = []config.Client{
		{ClientID: "agent", TokenEndpointAuthMethod: config.AuthMethodAttestJWT, GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}},
		{ClientID: "agent-dpop", TokenEndpointAuthMethod: config.AuthMethodAttestJWTDPoP, GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := storage.Open(ctx, storage.Options{Driver: "sqlite", DSN: cfg.Database.DSN, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(ctx, &cfg, st, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done; st.Close() })
	return e
}

// source signs attestations like a vendor attester would.
func (e *env) source(t *testing.T) attestclient.AttestationSource {
	return func(_ context.Context, clientID string, key jose.JSONWebKey) (string, error) {
		e.attestations.Add(1)
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: e.attester},
			(&jose.SignerOptions{}).WithType("oauth-client-attestation+jwt").WithHeader("kid", "att-1"))
		if err != nil {
			return "", err
		}
		now := time.Now()
		return jwt.Signed(signer).Claims(map[string]any{"sub": clientID, "iat": now.Unix(), "exp": now.Add(e.lifetime).Unix(),
			"cnf": map[string]any{"jwk": key}}).Serialize()
	}
}

func TestToken_BothModes_WithAndWithoutChallenges(t *testing.T) {
	for _, required := range []bool{false, true} {
		e := start(t, func(c *config.Config) { c.Attestation.ChallengeRequired = required })
		for _, combined := range []bool{false, true} {
			clientID := "agent"
			if combined {
				clientID = "agent-dpop"
			}
			c, err := attestclient.New(context.Background(), attestclient.Config{Issuer: e.issuer, ClientID: clientID, Scopes: []string{"read"},
				Attestation: e.source(t), CombinedMode: combined})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ { // later requests use the challenge from the previous response
				tok, err := c.Token(context.Background())
				if err != nil {
					t.Fatalf("required=%v combined=%v #%d: %v", required, combined, i, err)
				}
				wantType := "bearer"
				if combined {
					wantType = "DPoP"
				}
				if !equalFold(tok.TokenType, wantType) {
					t.Fatalf("token_type = %q, want %q", tok.TokenType, wantType)
				}
			}
		}
	}
}

func equalFold(a, b string) bool {
	return len(a) == len(b) && (a == b || (a == "bearer" && b == "Bearer") || (a == "Bearer" && b == "bearer"))
}

func TestToken_RetriesOnceOnChallenge(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Attestation.ChallengeRequired = true })
	var tokenCalls atomic.Int32
	counting := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Path == "/oauth2/token" {
			tokenCalls.Add(1)
		}
		if r.URL.Path == "/oauth2/challenge" {
			// Pretend the endpoint is unusable: the client must learn the challenge from the
			// use_attestation_challenge response and retry exactly once.
			return &http.Response{StatusCode: 200, Body: io.NopCloser(stringsReader(`{"attestation_challenge":"bm9wZS1ub3BlLW5vcGUtbm9wZQ"}`)), Header: http.Header{}, Request: r}, nil
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	c, err := attestclient.New(context.Background(), attestclient.Config{Issuer: e.issuer, ClientID: "agent", Attestation: e.source(t), HTTPClient: counting})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Token(context.Background()); err != nil {
		t.Fatalf("token after one retry: %v", err)
	}
	if n := tokenCalls.Load(); n != 2 {
		t.Fatalf("token endpoint called %d times, want 2 (one retry)", n)
	}
}

func TestToken_UseFreshAttestation(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Attestation.MaxAttestationAge = 2 * time.Second })
	e.lifetime = time.Hour
	stale := func(_ context.Context, clientID string, key jose.JSONWebKey) (string, error) {
		n := e.attestations.Add(1)
		iat := time.Now()
		if n == 1 {
			iat = iat.Add(-time.Minute) // too old for max_attestation_age
		}
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: e.attester},
			(&jose.SignerOptions{}).WithType("oauth-client-attestation+jwt").WithHeader("kid", "att-1"))
		return jwt.Signed(signer).Claims(map[string]any{"sub": clientID, "iat": iat.Unix(), "exp": time.Now().Add(time.Hour).Unix(), "cnf": map[string]any{"jwk": key}}).Serialize()
	}
	c, err := attestclient.New(context.Background(), attestclient.Config{Issuer: e.issuer, ClientID: "agent", Attestation: stale})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Token(context.Background()); err != nil {
		t.Fatalf("token: %v", err)
	}
	if n := e.attestations.Load(); n != 2 {
		t.Fatalf("attestation fetched %d times, want 2 (re-fetch on use_fresh_attestation)", n)
	}
}

func TestToken_RefusesUnsupportedMethod(t *testing.T) {
	e := start(t, nil)
	rsaLike, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	_, err := attestclient.New(context.Background(), attestclient.Config{Issuer: e.issuer, ClientID: "agent", Attestation: e.source(t), Key: rsaLike})
	if err == nil {
		t.Fatal("a P-224 instance key was accepted")
	}
	_, err = attestclient.New(context.Background(), attestclient.Config{Issuer: e.issuer + "/other", ClientID: "agent", Attestation: e.source(t)})
	if err == nil {
		t.Fatal("discovery against a wrong issuer succeeded")
	}
}

func TestTokenSource_ConcurrentUseFetchesOnce(t *testing.T) {
	e := start(t, nil)
	var tokenCalls atomic.Int32
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Path == "/oauth2/token" {
			tokenCalls.Add(1)
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	c, err := attestclient.New(context.Background(), attestclient.Config{Issuer: e.issuer, ClientID: "agent", Attestation: e.source(t), HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	ts := c.TokenSource(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ts.Token(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := tokenCalls.Load(); n != 1 {
		t.Fatalf("%d token requests for 32 concurrent callers, want 1", n)
	}
}

func TestTransport_DPoPBoundResourceCalls(t *testing.T) {
	e := start(t, nil)
	rs := httptest.NewUnstartedServer(nil)
	v, err := resource.New(resource.Config{Issuer: e.issuer, Audience: e.issuer, BaseURL: "http://" + rs.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	rs.Config.Handler = v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := resource.FromContext(r.Context())
		_ = json.NewEncoder(w).Encode(map[string]any{"client_id": tok.ClientID, "attestation": tok.Attestation, "jkt": tok.JKT})
	}))
	rs.Start()
	defer rs.Close()

	c, err := attestclient.New(context.Background(), attestclient.Config{Issuer: e.issuer, ClientID: "agent-dpop", Attestation: e.source(t), CombinedMode: true})
	if err != nil {
		t.Fatal(err)
	}
	ts := c.TokenSource(context.Background())
	api := &http.Client{Transport: c.Transport(ts, nil)}
	resp, err := api.Get(rs.URL + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if resp.StatusCode != 200 || got["client_id"] != "agent-dpop" || got["jkt"] != c.Thumbprint() {
		t.Fatalf("resource call: %d %v", resp.StatusCode, got)
	}
	att, _ := got["attestation"].(map[string]any)
	if att["instance_jkt"] != c.Thumbprint() || att["pop_method"] != "dpop_combined" {
		t.Fatalf("attestation evidence = %v", got["attestation"])
	}

	// The same token from another key (a thief's) is refused.
	tok, _ := ts.Token()
	thief, err := attestclient.New(context.Background(), attestclient.Config{Issuer: e.issuer, ClientID: "agent-dpop", Attestation: e.source(t), CombinedMode: true})
	if err != nil {
		t.Fatal(err)
	}
	proof, _ := thief.BuildDPoP(http.MethodGet, rs.URL+"/whoami", "", tok.AccessToken)
	req, _ := http.NewRequest(http.MethodGet, rs.URL+"/whoami", nil)
	req.Header.Set("Authorization", "DPoP "+tok.AccessToken)
	req.Header.Set("DPoP", proof)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("stolen token with another key: %d, want 401", resp.StatusCode)
	}
	// And as a plain Bearer token.
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Del("DPoP")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("DPoP token as Bearer: %d, want 401", resp.StatusCode)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type sr struct {
	s string
	i int
}

func (r *sr) Read(p []byte) (int, error) {
	if r.i >= len(r.s) {
		return 0, io.EOF
	}
	n := copy(p, r.s[r.i:])
	r.i += n
	return n, nil
}

func stringsReader(s string) io.Reader { return &sr{s: s} }

var _ = errors.New

// staticDPoPToken is a TokenSource of one DPoP token (the transport's input).
type staticDPoPToken struct{}

func (staticDPoPToken) Token() (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: "at-1", TokenType: "DPoP"}, nil
}

// TestTransport_RetriesOnlyOnUseDPoPNonce: RFC 9449 §8.2 lets a resource server send a new
// DPoP-Nonce on any answer; only a 401 with error="use_dpop_nonce" is retried (once), never an
// invalid_token 401 — a DELETE must not reach the server twice.
func TestTransport_RetriesOnlyOnUseDPoPNonce(t *testing.T) {
	e := start(t, nil)
	c, err := attestclient.New(context.Background(), attestclient.Config{Issuer: e.issuer, ClientID: "agent-dpop", Attestation: e.source(t), CombinedMode: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		challenge string
		wantCalls int32
	}{
		{`DPoP error="invalid_token", algs="ES256"`, 1},
		{`Bearer error="invalid_token"`, 1},
		{`DPoP error="use_dpop_nonce", algs="ES256"`, 2},
	} {
		var calls atomic.Int32
		var htms []string
		var mu sync.Mutex
		rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			var claims map[string]any
			if tok, err := jwt.ParseSigned(r.Header.Get("DPoP"), []jose.SignatureAlgorithm{jose.ES256}); err == nil {
				_ = tok.UnsafeClaimsWithoutVerification(&claims)
			}
			mu.Lock()
			htms = append(htms, fmt.Sprint(claims["htm"], " ", claims["htu"]))
			mu.Unlock()
			w.Header().Set("DPoP-Nonce", fmt.Sprint("n-", calls.Load()))
			w.Header().Set("WWW-Authenticate", tc.challenge)
			w.WriteHeader(http.StatusUnauthorized)
		}))
		req, _ := http.NewRequest(http.MethodDelete, rs.URL+"/items/1?x=1", strings.NewReader("body"))
		resp, err := c.Transport(staticDPoPToken{}, nil).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		rs.Close()
		if got := calls.Load(); got != tc.wantCalls {
			t.Errorf("401 with %s: %d requests, want %d", tc.challenge, got, tc.wantCalls)
		}
		if want := "DELETE " + rs.URL + "/items/1"; htms[0] != want {
			t.Errorf("proof htm/htu = %q, want %q", htms[0], want)
		}
	}
}

// TestBuildDPoP_TargetURI: htu drops query, fragment and user info; an empty method is GET (as
// net/http sends it).
func TestBuildDPoP_TargetURI(t *testing.T) {
	e := start(t, nil)
	c, err := attestclient.New(context.Background(), attestclient.Config{Issuer: e.issuer, ClientID: "agent-dpop", Attestation: e.source(t), CombinedMode: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, url, htm, htu string }{
		{"GET", "http://user:secret@127.0.0.1/x?q=1#f", "GET", "http://127.0.0.1/x"},
		{"", "http://127.0.0.1/x?", "GET", "http://127.0.0.1/x"},
		{"POST", "https://api.example/a%2Fb", "POST", "https://api.example/a%2Fb"},
	} {
		proof, err := c.BuildDPoP(tc.method, tc.url, "", "")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.ParseSigned(proof, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		var claims map[string]any
		_ = tok.UnsafeClaimsWithoutVerification(&claims)
		if claims["htm"] != tc.htm || claims["htu"] != tc.htu {
			t.Errorf("BuildDPoP(%q, %q): htm %v htu %v, want %s %s", tc.method, tc.url, claims["htm"], claims["htu"], tc.htm, tc.htu)
		}
	}
}

type closeCounter struct {
	io.Reader
	closed atomic.Int32
}

func (c *closeCounter) Close() error { c.closed.Add(1); return nil }

type failingTokens struct{}

func (failingTokens) Token() (*oauth2.Token, error) { return nil, io.ErrUnexpectedEOF }

// TestTransport_ClosesBodyOnError: http.RoundTripper must close the request body even when it
// fails before sending.
func TestTransport_ClosesBodyOnError(t *testing.T) {
	e := start(t, nil)
	c, err := attestclient.New(context.Background(), attestclient.Config{Issuer: e.issuer, ClientID: "agent-dpop", Attestation: e.source(t), CombinedMode: true})
	if err != nil {
		t.Fatal(err)
	}
	body := &closeCounter{Reader: strings.NewReader("x")}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/x", body)
	if _, err := c.Transport(failingTokens{}, nil).RoundTrip(req); err == nil {
		t.Fatal("RoundTrip with a failing token source succeeded")
	}
	if body.closed.Load() == 0 {
		t.Error("the request body was not closed")
	}
}

// TestLoadOrCreateKey: a missing key file is created (mode 0600) and the same key is read back.
func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "instance.pem")
	k1, created, err := attestclient.LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("first call: created=%v %v", created, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	k2, created, err := attestclient.LoadOrCreateKey(path)
	if err != nil || created {
		t.Fatalf("second call: created=%v %v", created, err)
	}
	if !k1.Public().(*ecdsa.PublicKey).Equal(k2.Public()) {
		t.Fatal("the key read back differs from the one created")
	}
	if _, _, err := attestclient.LoadOrCreateKey(filepath.Join(t.TempDir(), "missing-dir", "k.pem")); err == nil {
		t.Fatal("a key in a missing directory was created")
	}
}

// TestNew_KeyAlgorithmInEveryListItSignsFor: in normal mode with DPoPBound the instance key signs
// both the PoP and the DPoP proofs, so both lists must accept its algorithm.
func TestNew_KeyAlgorithmInEveryListItSignsFor(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": srv.URL, "token_endpoint": srv.URL + "/oauth2/token",
			"token_endpoint_auth_methods_supported":               []string{"attest_jwt_client_auth"},
			"client_attestation_pop_signing_alg_values_supported": []string{"ES384"},
			"dpop_signing_alg_values_supported":                   []string{"ES256"},
		})
	}))
	defer srv.Close()
	src := func(context.Context, string, jose.JSONWebKey) (string, error) { return "", io.EOF }
	for _, bound := range []bool{false, true} {
		_, err := attestclient.New(context.Background(), attestclient.Config{Issuer: srv.URL, ClientID: "a", Attestation: src, DPoPBound: bound})
		if !errors.Is(err, attestclient.ErrUnsupported) {
			t.Errorf("DPoPBound=%v with an ES256 key and PoP algorithms [ES384]: %v, want ErrUnsupported", bound, err)
		}
	}
}

// TestToken_ConcurrentCallsShareOneAttestation: concurrent first calls wait for one attestation
// fetch instead of each asking the attester.
func TestToken_ConcurrentCallsShareOneAttestation(t *testing.T) {
	e := start(t, nil)
	c, err := attestclient.New(context.Background(), attestclient.Config{Issuer: e.issuer, ClientID: "agent", Attestation: e.source(t)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Token(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := e.attestations.Load(); n != 1 {
		t.Fatalf("%d attestations fetched for 16 concurrent first calls, want 1", n)
	}
}
