package server_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/config"
	"github.com/authz/authz/internal/testkit"
	"github.com/authz/authz/server"
	"github.com/authz/authz/storage"
)

// testEnv is a real authz server on a loopback port over a real SQLite file.
type testEnv struct {
	t        *testing.T
	URL      string // == issuer
	Config   *config.Config
	Store    *storage.Store
	Attester *ecdsa.PrivateKey // the "test-attester" signing key (kid test-attester-1)
	Instance *ecdsa.PrivateKey // a Client Instance Key
	// lastConsent is the HTML of the last consent page browserLogin saw.
	lastConsent string
}

const (
	testAttesterKID = "test-attester-1"
	agentID         = "agent"
	secretClientID  = "svc"
	secretValue     = "svc-secret-0123456789"
	webClientID     = "web"
	webRedirect     = "http://127.0.0.1:1/callback"
	aliceHash       = "$2a$10$rAjxEPFQ34.JK7LFgtySPeLn90jrgI6QpcfBtGxGyBZPU6eBHF.Ga" // alice-password
)

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	return testkit.ECKey(t)
}

// newTestServer starts authz with a base configuration (an attester, an attested client, a
// secret client, a public web client, a user) changed by mutate.
func newTestServer(t *testing.T, mutate func(*config.Config)) *testEnv {
	t.Helper()
	ln := testkit.Listen(t)
	base := "http://" + ln.Addr().String()
	env := &testEnv{t: t, URL: base, Attester: newECKey(t), Instance: newECKey(t)}

	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: env.Attester.Public(), KeyID: testAttesterKID, Algorithm: "ES256", Use: "sig"}}})
	cfg := config.Default()
	cfg.Issuer = base
	cfg.Listen = ln.Addr().String()
	cfg.Database.DSN = filepath.Join(t.TempDir(), "authz.db")
	cfg.Attesters = []config.Attester{{ID: "test-attester", JWKS: string(jwks)}}
	cfg.Clients = []config.Client{
		{ClientID: agentID, TokenEndpointAuthMethod: config.AuthMethodAttestJWT, GrantTypes: []string{"client_credentials", "refresh_token"}, Scopes: []string{"read", "write"}, Attesters: []string{"test-attester"}},
		{ClientID: secretClientID, TokenEndpointAuthMethod: config.AuthMethodClientSecretBasic, GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}, ClientSecret: secretValue},
		{ClientID: webClientID, TokenEndpointAuthMethod: config.AuthMethodNone, GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"read"}, RedirectURIs: []string{webRedirect}},
	}
	cfg.Users = []config.User{{Username: "alice", PasswordHash: aliceHash}}
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	env.Config = &cfg

	ctx, cancel := context.WithCancel(context.Background())
	var logOut io.Writer = io.Discard
	if os.Getenv("AUTHZ_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := storage.Open(ctx, storage.Options{Driver: "sqlite", DSN: cfg.Database.DSN, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	env.Store = st
	srv, err := server.New(ctx, &cfg, st, log)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	testkit.Serve(t, func() error { return srv.Serve(ctx, ln) }, cancel)
	return env
}

// sign makes a compact JWS with the given typ and extra header fields.
func sign(t *testing.T, key any, alg jose.SignatureAlgorithm, typ string, hdr map[jose.HeaderKey]any, claims any) string {
	t.Helper()
	return testkit.SignJWS(t, key, alg, typ, hdr, claims)
}

// attestation signs a Client Attestation JWT (ABCA-09 §4) for clientID binding instance.
func (e *testEnv) attestation(clientID string, instance *ecdsa.PrivateKey) string {
	return testkit.Attestation(e.t, e.Attester, testAttesterKID, clientID, instance.Public(), time.Now())
}

// pop signs a Client Attestation PoP JWT (ABCA-09 §5.1) for aud with an optional challenge.
func (e *testEnv) pop(instance *ecdsa.PrivateKey, challenge string) string {
	return testkit.PoP(e.t, instance, e.URL, challenge, time.Now())
}

// dpopProof signs an RFC 9449 proof for method and the server's path.
func (e *testEnv) dpopProof(key *ecdsa.PrivateKey, method, path, nonce, accessToken string) string {
	claims := map[string]any{"jti": randomString(e.t), "htm": method, "htu": e.URL + path, "iat": time.Now().Unix()}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	if accessToken != "" {
		claims["ath"] = athOf(accessToken)
	}
	return testkit.DPoPProof(e.t, key, claims)
}

func randomString(t *testing.T) string {
	t.Helper()
	return testkit.RandomString(t)
}

// tokenResponse is a decoded token-endpoint (or error) response.
type tokenResponse struct {
	Status       int
	Header       http.Header
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

// post sends a form with headers and decodes the JSON answer.
func (e *testEnv) post(path string, form url.Values, headers map[string]string) tokenResponse {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return e.do(req)
}

func (e *testEnv) do(req *http.Request) tokenResponse {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	tr := tokenResponse{Status: resp.StatusCode, Header: resp.Header}
	if len(body) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &tr); err != nil {
			e.t.Fatalf("decode %s: %v", body, err)
		}
	}
	return tr
}

// attestedHeaders returns the two attestation headers for clientID with a fresh PoP.
func (e *testEnv) attestedHeaders(clientID string, instance *ecdsa.PrivateKey, challenge string) map[string]string {
	return map[string]string{
		"OAuth-Client-Attestation":     e.attestation(clientID, instance),
		"OAuth-Client-Attestation-PoP": e.pop(instance, challenge),
	}
}

// decisions returns the audit records, newest first.
func (e *testEnv) decisions() []storage.Decision {
	e.t.Helper()
	list, err := e.Store.ListDecisions(context.Background(), storage.DecisionFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return list
}

// jwtClaims decodes a JWT's payload without verifying it (the tests verify with /jwks.json where it matters).
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func thumbprint(t *testing.T, k *ecdsa.PrivateKey) string {
	t.Helper()
	tp, err := (&jose.JSONWebKey{Key: k.Public()}).Thumbprint(cryptoSHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

// raceTokens sends n identical token requests at once and returns how many got 200. Every other
// answer must be 401 (a replayed proof or assertion); a transport error or any other status fails
// the test. The goroutines only send; assertions run on the test goroutine.
func (e *testEnv) raceTokens(n int, form url.Values, headers map[string]string) int {
	e.t.Helper()
	type answer struct {
		status int
		error  string // the RFC 6749 §5.2 error member
	}
	answers := make(chan answer, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequest(http.MethodPost, e.URL+"/oauth2/token", strings.NewReader(form.Encode()))
			if err != nil {
				answers <- answer{}
				return
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- answer{}
				return
			}
			defer resp.Body.Close()
			var body struct {
				Error string `json:"error"`
			}
			_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body)
			answers <- answer{resp.StatusCode, body.Error}
		}()
	}
	wg.Wait()
	close(answers)
	won := 0
	for a := range answers {
		switch {
		case a.status == http.StatusOK:
			won++
		case a.status == http.StatusUnauthorized && a.error == "invalid_client":
		default:
			e.t.Errorf("concurrent token request answered %d %q, want 200 or 401 invalid_client", a.status, a.error)
		}
	}
	return won
}
