package replicas_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/authz/authz/bench"
	"github.com/authz/authz/config"
	"github.com/authz/authz/internal/testkit"
	"github.com/authz/authz/server"
	"github.com/authz/authz/storage"
)

// envPostgresDSN names the PostgreSQL server the test creates its database on.
const envPostgresDSN = "AUTHZ_TEST_POSTGRES_DSN"

const (
	attesterID   = "test-attester"
	attesterKID  = "test-attester-1"
	agentID      = "agent"     // attest_jwt_client_auth, only test-attester may vouch for it
	anyAgentID   = "agent-any" // attest_jwt_client_auth, any trusted attester
	svcID        = "svc"       // client_secret_basic, introspects
	svcSecret    = "svc-secret-0123456789"
	trustTimeout = 15 * time.Second // a replica polls the trust generation every 2 s
)

// replica is one authz server of the cluster with its own connection pool.
type replica struct {
	name  string
	url   string // where it listens (the issuer is replica A's URL for both)
	store *storage.Store
}

// cluster is two replicas sharing one fresh PostgreSQL database and one issuer.
type cluster struct {
	t        *testing.T
	issuer   string
	a, b     *replica
	attester *ecdsa.PrivateKey
}

func jwksOf(t *testing.T, k *ecdsa.PrivateKey, kid string) string {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.Public(), KeyID: kid, Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// freshDatabase creates authz_replicas_<random> on the server of AUTHZ_TEST_POSTGRES_DSN and
// drops it when the test ends. Unset: skipped, except with CI=true, where it fails; set but
// unreachable: fails.
func freshDatabase(t *testing.T) string {
	t.Helper()
	base := os.Getenv(envPostgresDSN)
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set and CI=true: the multi-replica test must run in CI", envPostgresDSN)
		}
		t.Skipf("%s is not set: the multi-replica test needs PostgreSQL (e.g. %s=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)", envPostgresDSN, envPostgresDSN)
	}
	dsn, drop, err := bench.FreshDatabase(context.Background(), base, "authz_replicas")
	if err != nil {
		t.Fatalf("%s: %v", envPostgresDSN, err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("drop the replicas' database: %v", err)
		}
	})
	return dsn
}

// newCluster starts replicas A and B on one fresh database. They migrate and create the shared
// secrets and the signing key at the same time, as replicas starting together on an empty
// database do (profile §8).
func newCluster(t *testing.T) *cluster {
	t.Helper()
	dsn := freshDatabase(t)
	lnA, lnB := testkit.Listen(t), testkit.Listen(t)
	c := &cluster{t: t, issuer: "http://" + lnA.Addr().String(), attester: testkit.ECKey(t)}

	base := config.Default()
	base.Issuer = c.issuer
	base.Database = config.Database{Driver: "postgres", DSN: dsn}
	base.Attestation.ChallengeRequired = true
	base.Attesters = []config.Attester{{ID: attesterID, JWKS: jwksOf(t, c.attester, attesterKID)}}
	base.Clients = []config.Client{
		{ClientID: agentID, TokenEndpointAuthMethod: config.AuthMethodAttestJWT, GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}, Attesters: []string{attesterID}},
		{ClientID: anyAgentID, TokenEndpointAuthMethod: config.AuthMethodAttestJWT, GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}},
		{ClientID: svcID, TokenEndpointAuthMethod: config.AuthMethodClientSecretBasic, GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}, ClientSecret: svcSecret},
	}
	if err := base.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	lns := []net.Listener{lnA, lnB}
	replicas := make([]*replica, 2)
	servers := make([]*server.Server, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, name := range []string{"A", "B"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := base
			cfg.Listen = lns[i].Addr().String()
			st, err := storage.Open(ctx, storage.Options{Driver: "postgres", DSN: dsn, Logger: log})
			if err != nil {
				errs[i] = err
				return
			}
			replicas[i] = &replica{name: name, url: "http://" + lns[i].Addr().String(), store: st}
			if err := st.Migrate(ctx); err != nil {
				errs[i] = err
				return
			}
			servers[i], errs[i] = server.New(ctx, &cfg, st, log)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, r := range replicas {
			if r != nil {
				r.store.Close()
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			cancel()
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	done := make(chan error, 2)
	for i, srv := range servers {
		go func() { done <- srv.Serve(ctx, lns[i]) }()
	}
	t.Cleanup(func() {
		cancel()
		for range servers {
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		}
	})
	c.a, c.b = replicas[0], replicas[1]
	return c
}

// attestation signs a Client Attestation JWT (ABCA-09 §4) with attesterKey under kid.
func (c *cluster) attestation(attesterKey *ecdsa.PrivateKey, kid, clientID string, instance *ecdsa.PrivateKey) string {
	return testkit.Attestation(c.t, attesterKey, kid, clientID, instance.Public(), time.Now())
}

// pop signs a Client Attestation PoP JWT (ABCA-09 §5.1) for the shared issuer.
func (c *cluster) pop(instance *ecdsa.PrivateKey, challenge string) string {
	return testkit.PoP(c.t, instance, c.issuer, challenge, time.Now())
}

// challenge asks r's challenge endpoint for a challenge (ABCA-09 §6.1).
func (c *cluster) challenge(r *replica) string {
	c.t.Helper()
	resp, err := http.Post(r.url+"/oauth2/challenge", "application/x-www-form-urlencoded", nil)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Challenge string `json:"attestation_challenge"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.Challenge == "" {
		c.t.Fatalf("challenge from replica %s: %d %v", r.name, resp.StatusCode, err)
	}
	return body.Challenge
}

// tokenResponse is a token-endpoint answer.
type tokenResponse struct {
	Status      int
	AccessToken string `json:"access_token"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// token sends a client_credentials request with the given headers (and HTTP Basic when user is set).
func (c *cluster) token(r *replica, clientID string, headers map[string]string, user, pass string) tokenResponse {
	c.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}
	if clientID != "" {
		form.Set("client_id", clientID)
	}
	req, err := http.NewRequest(http.MethodPost, r.url+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	tr := tokenResponse{Status: resp.StatusCode}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		c.t.Fatalf("token response from replica %s: %v", r.name, err)
	}
	return tr
}

// attested returns the two attestation headers with a fresh PoP carrying challenge.
func (c *cluster) attested(attestation string, instance *ecdsa.PrivateKey, challenge string) map[string]string {
	return map[string]string{
		"OAuth-Client-Attestation":     attestation,
		"OAuth-Client-Attestation-PoP": c.pop(instance, challenge),
	}
}

func TestReplicas(t *testing.T) {
	c := newCluster(t)
	instance := testkit.ECKey(t)
	agentAttestation := c.attestation(c.attester, attesterKID, agentID, instance)

	// ABCA-09 §6, profile §5: challenges are self-contained under a secret shared through the
	// database, so either replica accepts the other's and both refuse a forged one.
	t.Run("challenge_issued_by_one_replica_is_accepted_by_the_other", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			from, at *replica
		}{
			{"a_to_b", c.a, c.b},
			{"b_to_a", c.b, c.a},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := c.token(tc.at, agentID, c.attested(agentAttestation, instance, c.challenge(tc.from)), "", "")
				if got.Status != http.StatusOK || got.AccessToken == "" {
					t.Fatalf("replica %s refused replica %s's challenge: %d %s %s", tc.at.name, tc.from.name, got.Status, got.Error, got.Description)
				}
			})
		}
		t.Run("forged_challenge_refused", func(t *testing.T) {
			got := c.token(c.b, agentID, c.attested(agentAttestation, instance, "Zm9yZ2VkLWNoYWxsZW5nZS12YWx1ZQ"), "", "")
			if got.Status != http.StatusBadRequest || got.Error != "use_attestation_challenge" {
				t.Fatalf("forged challenge: %d %q, want 400 use_attestation_challenge", got.Status, got.Error)
			}
		})
	})

	// ABCA-09 §11.1, profile §5: the (instance key, jti) seen-set is a unique index in the shared
	// database, so a PoP accepted by one replica is a replay at the other.
	t.Run("pop_jti_used_at_one_replica_is_refused_at_the_other", func(t *testing.T) {
		headers := c.attested(agentAttestation, instance, c.challenge(c.a))
		if got := c.token(c.a, agentID, headers, "", ""); got.Status != http.StatusOK {
			t.Fatalf("first use at A: %d %s %s", got.Status, got.Error, got.Description)
		}
		got := c.token(c.b, agentID, headers, "", "")
		if got.Status != http.StatusUnauthorized || got.Error != "invalid_client" {
			t.Fatalf("replay at B: %d %q, want 401 invalid_client", got.Status, got.Error)
		}
		ds, err := c.b.store.ListDecisions(context.Background(), storage.DecisionFilter{ClientID: agentID, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || ds[0].Decision != "rejected" || ds[0].Reason != "replay_detected" {
			t.Fatalf("newest decision = %+v, want rejected replay_detected", ds)
		}
	})

	// ABCA-09 §9.7: trust lives in the database; a replica reloads it when the generation moves.
	t.Run("attester_added_through_storage_is_trusted_by_the_other_replica", func(t *testing.T) {
		lateKey := testkit.ECKey(t)
		lateAttestation := c.attestation(lateKey, "late-attester-1", anyAgentID, instance)
		if got := c.token(c.b, anyAgentID, c.attested(lateAttestation, instance, c.challenge(c.b)), "", ""); got.Status != http.StatusUnauthorized {
			t.Fatalf("unknown attester at B: %d %q, want 401", got.Status, got.Error)
		}
		// What `authz attesters add` does, through replica A's store.
		ctx := context.Background()
		rec, err := server.AttesterRecordFromConfig(config.Attester{ID: "late-attester", JWKS: jwksOf(t, lateKey, "late-attester-1")})
		if err != nil {
			t.Fatal(err)
		}
		rec.Source = "cli"
		if err := server.CheckAttesterKids(ctx, c.a.store, rec); err != nil {
			t.Fatal(err)
		}
		if err := c.a.store.UpsertAttester(ctx, rec); err != nil {
			t.Fatal(err)
		}
		after := eventually(t, "replica B to trust the attester added at A", func() bool {
			got := c.token(c.b, anyAgentID, c.attested(lateAttestation, instance, c.challenge(c.b)), "", "")
			if got.Status != http.StatusOK && got.Status != http.StatusUnauthorized {
				t.Fatalf("while waiting: %d %q %s", got.Status, got.Error, got.Description)
			}
			return got.Status == http.StatusOK
		})
		t.Logf("replica B trusted the attester added at A after %s", after)
	})

	// RFC 9068 §4, RFC 7662: the signing key is created once in the database and shared.
	t.Run("signing_keys_are_shared", func(t *testing.T) {
		got := c.token(c.a, agentID, c.attested(agentAttestation, instance, c.challenge(c.a)), "", "")
		if got.Status != http.StatusOK {
			t.Fatalf("token at A: %d %s %s", got.Status, got.Error, got.Description)
		}
		setA, setB := fetchJWKS(t, c.a), fetchJWKS(t, c.b)
		if len(setB.Keys) == 0 || len(setA.Keys) != len(setB.Keys) || setA.Keys[0].KeyID != setB.Keys[0].KeyID {
			t.Fatalf("key sets differ: A %v, B %v", kids(setA), kids(setB))
		}
		tok, err := jwt.ParseSigned(got.AccessToken, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		keys := setB.Key(tok.Headers[0].KeyID)
		if len(keys) != 1 {
			t.Fatalf("kid %q of A's token is not in B's /jwks.json (%v)", tok.Headers[0].KeyID, kids(setB))
		}
		var claims map[string]any
		if err := tok.Claims(keys[0].Key, &claims); err != nil {
			t.Fatalf("A's token does not verify with B's key: %v", err)
		}
		if claims["client_id"] != agentID || claims["iss"] != c.issuer {
			t.Fatalf("claims = %v", claims)
		}
		intro := introspect(t, c.b, got.AccessToken)
		ev, _ := intro["client_attestation"].(map[string]any)
		if intro["active"] != true || intro["client_id"] != agentID || ev["attester"] != attesterID {
			t.Fatalf("introspection at B = %v, want active with A's attestation evidence", intro)
		}
	})

	// Last, because it removes the client the other cases authenticate with.
	// Decision S15: client records are cached per replica; a client removed through another
	// replica (or the CLI) is refused within the trust-reload window, not served from the cache.
	t.Run("client_removed_through_one_replica_is_refused_by_the_other", func(t *testing.T) {
		if got := c.token(c.b, svcID, nil, svcID, svcSecret); got.Status != http.StatusOK {
			t.Fatalf("svc at B before removal (fills B's client cache): %d %q", got.Status, got.Error)
		}
		if err := c.a.store.DeleteClient(context.Background(), svcID); err != nil {
			t.Fatal(err)
		}
		after := eventually(t, "replica B to refuse the client removed at A", func() bool {
			got := c.token(c.b, svcID, nil, svcID, svcSecret)
			if got.Status != http.StatusOK && !(got.Status == http.StatusUnauthorized && got.Error == "invalid_client") {
				t.Fatalf("while waiting: %d %q %s", got.Status, got.Error, got.Description)
			}
			return got.Status == http.StatusUnauthorized
		})
		t.Logf("replica B refused the client removed at A after %s", after)
	})
}

// eventually calls check every 100 ms (a ticker paces fresh requests; no sleeping) until it
// returns true, and fails the test after trustTimeout. It returns how long that took.
func eventually(t *testing.T, what string, check func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.NewTimer(trustTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !check() {
		select {
		case <-deadline.C:
			t.Fatalf("waited %s for %s", trustTimeout, what)
		case <-tick.C:
		}
	}
	return time.Since(start).Round(time.Millisecond)
}

func fetchJWKS(t *testing.T, r *replica) jose.JSONWebKeySet {
	t.Helper()
	resp, err := http.Get(r.url + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("jwks from replica %s: %d %v", r.name, resp.StatusCode, err)
	}
	return set
}

func kids(set jose.JSONWebKeySet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

// introspect asks r about token as the secret client (RFC 7662 §2.1).
func introspect(t *testing.T, r *replica, token string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.url+"/oauth2/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(svcID, svcSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("introspection at replica %s: %d %v", r.name, resp.StatusCode, err)
	}
	return out
}
