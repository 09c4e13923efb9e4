package devattester

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/authz/authz/internal/testkit"
)

// fixedNow is the clock of every test.
var fixedNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return fixedNow }

var allAlgs = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512, jose.EdDSA,
}

// instanceKey is a fresh public P-256 Client Instance Key and its RFC 7638 thumbprint.
func instanceKey(t *testing.T) (*jose.JSONWebKey, string) {
	t.Helper()
	priv := testkit.ECKey(t)
	k := &jose.JSONWebKey{Key: priv.Public(), KeyID: "instance-1"}
	return k, jkt(t, k)
}

func jkt(t *testing.T, k *jose.JSONWebKey) string {
	t.Helper()
	return testkit.Thumbprint(t, k.Key)
}

func newAttester(t *testing.T) *Attester {
	t.Helper()
	a, err := New(&jose.JSONWebKey{Key: testkit.ECKey(t), KeyID: "att-1"}, Options{Now: fixedClock})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	return path
}

// verified is a Client Attestation JWT checked against an attester's public JWK set.
type verified struct {
	header map[string]any
	claims map[string]any
	cnf    json.RawMessage
}

// verifyAttestation checks the signature with the key named by kid in jwks and decodes the
// header and claims; it fails the test on any problem.
func verifyAttestation(t *testing.T, token string, jwks jose.JSONWebKeySet) verified {
	t.Helper()
	tok, err := jwt.ParseSigned(token, allAlgs)
	if err != nil {
		t.Fatalf("parse attestation: %v", err)
	}
	if len(tok.Headers) != 1 {
		t.Fatalf("want one signature, got %d", len(tok.Headers))
	}
	keys := jwks.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q matches %d keys of the attester's set", tok.Headers[0].KeyID, len(keys))
	}
	var claims map[string]any
	var raw struct {
		Cnf struct {
			JWK json.RawMessage `json:"jwk"`
		} `json:"cnf"`
	}
	if err := tok.Claims(keys[0].Key, &claims, &raw); err != nil {
		t.Fatalf("verify attestation: %v", err)
	}
	hdrJSON, err := base64.RawURLEncoding.DecodeString(strings.SplitN(token, ".", 2)[0])
	if err != nil {
		t.Fatalf("header encoding: %v", err)
	}
	var header map[string]any
	if err := json.Unmarshal(hdrJSON, &header); err != nil {
		t.Fatalf("header JSON: %v", err)
	}
	return verified{header: header, claims: claims, cnf: raw.Cnf.JWK}
}
