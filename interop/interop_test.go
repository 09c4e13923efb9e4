// Package interop tests authz's Go client (attestclient) against a second, independent
// implementation of attestation-based client authentication: panva/oidc-provider, installed from
// the npm registry. Skipped with a clear message when npm is unavailable outside CI; required in CI.
package interop_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/authz/authz/attestclient"
)

// installProvider installs the pinned oidc-provider into a cache directory (once per machine).
func installProvider(t *testing.T) string {
	t.Helper()
	_, npmErr := exec.LookPath("npm")
	_, nodeErr := exec.LookPath("node")
	if npmErr != nil || nodeErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("interop: node and npm are required in CI (%v, %v)", npmErr, nodeErr)
		}
		t.Skip("interop: node/npm not installed; skipping the oidc-provider interop test (required in CI)")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "authz-interop", "oidc-provider-9.13.3")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"package.json", "oidc-provider-server.mjs"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json")); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--silent")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("interop: npm install failed: %v\n%s", err, out)
			}
			t.Skipf("interop: npm install failed (registry unreachable?): %v", err)
		}
	}
	return dir
}

func startProvider(t *testing.T, dir string, attesterPub jose.JSONWebKey) string {
	t.Helper()
	pub, _ := json.Marshal(attesterPub)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "node", "oidc-provider-server.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ATTESTER_JWK="+string(pub))
	cmd.Stderr = os.Stderr
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "READY ") {
				lines <- strings.TrimPrefix(sc.Text(), "READY ")
				return
			}
		}
	}()
	select {
	case issuer, ok := <-lines:
		if !ok {
			t.Fatal("interop: oidc-provider exited before it was ready (see stderr)")
		}
		return issuer
	case <-time.After(30 * time.Second):
		t.Fatal("interop: oidc-provider did not start")
	}
	return ""
}

func TestAttestClientAgainstOIDCProvider(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node")
	}
	dir := installProvider(t)
	attester, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	issuer := startProvider(t, dir, jose.JSONWebKey{Key: attester.Public(), KeyID: "att-1", Algorithm: "ES256", Use: "sig"})
	source := func(_ context.Context, clientID string, key jose.JSONWebKey) (string, error) {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: attester},
			(&jose.SignerOptions{}).WithType("oauth-client-attestation+jwt").WithHeader("kid", "att-1"))
		if err != nil {
			return "", err
		}
		now := time.Now()
		return jwt.Signed(s).Claims(map[string]any{"sub": clientID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "cnf": map[string]any{"jwk": key}}).Serialize()
	}
	for _, tc := range []struct {
		clientID string
		combined bool
		wantType string
	}{
		{"agent", false, "bearer"},
		{"agent-dpop", true, "dpop"},
	} {
		t.Run(tc.clientID, func(t *testing.T) {
			c, err := attestclient.New(context.Background(), attestclient.Config{Issuer: issuer, ClientID: tc.clientID, Scopes: []string{"read"},
				Attestation: source, CombinedMode: tc.combined})
			if err != nil {
				t.Fatalf("discovery against oidc-provider: %v", err)
			}
			for i := 0; i < 2; i++ {
				tok, err := c.Token(context.Background())
				if err != nil {
					t.Fatalf("token #%d from oidc-provider: %v", i, err)
				}
				if !strings.EqualFold(tok.TokenType, tc.wantType) || tok.AccessToken == "" {
					t.Fatalf("token = %+v", tok)
				}
			}
		})
	}
}
