package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/authz/authz/config"
	"github.com/authz/authz/storage"
	jose "github.com/go-jose/go-jose/v4"
)

func TestCSVSafe(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", ""},
		{"plain", "agent", "agent"},
		{"formula_equals", "=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"},
		{"formula_plus", "+1+1", "'+1+1"},
		{"formula_at", "@SUM(A1)", "'@SUM(A1)"},
		{"formula_minus_with_operators", "-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"},
		{"thumbprint_starting_with_minus", "-aB3_x-9", "-aB3_x-9"},
		{"tab", "\tx", "'\tx"},
		{"carriage_return", "\rx", "'\rx"},
		{"pipe", "|x", "'|x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := csvSafe(tc.in); got != tc.want {
				t.Fatalf("csvSafe(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestValidJKT(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"thumbprint", "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", true},
		{"too_short", "NzbLsXh8uDCcd", false},
		{"padding", "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9X=", false},
		{"path_traversal", "../../../../../../../../../../etc/passwd1234", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := validJKT(tc.in); got != tc.want {
				t.Fatalf("validJKT(%q) = %v", tc.in, got)
			}
		})
	}
}

func pemOf(t *testing.T, typ string, der []byte) string {
	t.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func pkix(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestParsePastedKeys(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ed, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p8, _ := x509.MarshalPKCS8PrivateKey(edPriv)
	single, _ := json.Marshal(jose.JSONWebKey{Key: ec.Public(), KeyID: "one"})

	tests := []struct {
		name        string
		in          string
		wantKids    int
		wantAlg     string
		wantRoots   bool
		wantProblem string
	}{
		{"empty", "  ", 0, "", false, ""},
		{"single_jwk_becomes_a_set", string(single), 1, "", false, ""},
		{"pem_ec_p384", pemOf(t, "PUBLIC KEY", pkix(t, ec.Public())), 1, "ES384", false, ""},
		{"pem_ed25519_and_cert", pemOf(t, "PUBLIC KEY", pkix(t, ed)) + pemOf(t, "CERTIFICATE", []byte("not parsed here")), 1, "EdDSA", true, ""},
		{"pem_private_key", pemOf(t, "PRIVATE KEY", p8), 0, "", false, "block 1 is a private key"},
		{"pem_small_rsa", pemOf(t, "PUBLIC KEY", pkix(t, small.Public())), 0, "", false, "at least 2048 bits"},
		{"pem_garbage_key", pemOf(t, "PUBLIC KEY", []byte("garbage")), 0, "", false, "does not parse"},
		{"pem_other_type", pemOf(t, "EC PARAMETERS", []byte{1}), 0, "", false, "paste PUBLIC KEY or CERTIFICATE"},
		{"broken_json", "{\"keys\": [", 0, "", false, "not valid JSON"},
		{"neither", "ssh-ed25519 AAAA", 0, "", false, "paste a JWK set"},
		{"pem_header_only", "-----BEGIN nothing", 0, "", false, "no PEM block found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			jwks, roots, problems := parsePastedKeys(tc.in)
			if tc.wantProblem != "" {
				if len(problems) != 1 || !strings.Contains(problems[0], tc.wantProblem) {
					t.Fatalf("problems = %q, want %q", problems, tc.wantProblem)
				}
				return
			}
			if len(problems) != 0 {
				t.Fatalf("problems = %q", problems)
			}
			if (roots != "") != tc.wantRoots {
				t.Fatalf("roots = %q", roots)
			}
			if tc.wantKids == 0 {
				if len(jwks) != 0 {
					t.Fatalf("jwks = %s", jwks)
				}
				return
			}
			var set jose.JSONWebKeySet
			if err := json.Unmarshal(jwks, &set); err != nil || len(set.Keys) != tc.wantKids {
				t.Fatalf("jwks = %s (%v)", jwks, err)
			}
			k := set.Keys[0]
			if tc.wantAlg != "" && (k.Algorithm != tc.wantAlg || len(k.KeyID) != 43 || k.Use != "sig") {
				t.Fatalf("key = alg %q kid %q use %q", k.Algorithm, k.KeyID, k.Use)
			}
			if _, problems := checkJWKS("jwks", jwks); len(problems) != 0 {
				t.Fatalf("the parsed set does not validate: %q", problems)
			}
		})
	}
}

func TestFlattenErrors(t *testing.T) {
	a, b, c := errors.New("a"), errors.New("b"), errors.New("c")
	err := fmt.Errorf("outer: %w", errors.Join(a, errors.Join(b, c)))
	if got := strings.Join(flattenErrors(err), ","); got != "a,b,c" {
		t.Fatalf("flattenErrors = %q", got)
	}
	if got := flattenErrors(fmt.Errorf("single: %w", a)); len(got) != 1 || got[0] != "single: a" {
		t.Fatalf("single = %q", got)
	}
}

// FuzzAttesterInput feeds hostile pasted keys and JWK sets to the admin validators: they must
// never panic, and whatever they accept must be a set of public keys.
func FuzzAttesterInput(f *testing.F) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ec.Public(), KeyID: "k"}}})
	priv, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ec, KeyID: "k"}}})
	der, _ := x509.MarshalPKIXPublicKey(ec.Public())
	for _, seed := range []string{
		string(pub), string(priv), `{"kty":"EC"}`, `{"keys":[{"kty":"oct","k":"AA"}]}`, `{"keys":[null,1,"x",{}]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}]}`, `{"keys":{"kty":"RSA"}}`,
		string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "-----BEGIN CERTIFICATE-----\n@@\n-----END CERTIFICATE-----",
		strings.Repeat("{", 10000), "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		jwks, roots, _ := parsePastedKeys(in)
		_ = checkRootsPEM(roots)
		_ = checkRootsPEM(in)
		kids, problems := checkJWKS("jwks", []byte(in))
		_ = kids
		if len(jwks) > 0 {
			checkJWKS("jwks", jwks)
		}
		if len(problems) == 0 {
			var set jose.JSONWebKeySet
			if err := json.Unmarshal([]byte(in), &set); err != nil {
				return // checkJWKS reads members leniently; go-jose may still refuse the whole set
			}
			for _, k := range set.Keys {
				if !k.IsPublic() {
					t.Fatalf("accepted a private key: %s", in)
				}
			}
		}
	})
}

func TestTruncateRunes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abc", 3, "abc"},
		{"abc", 2, "ab"},
		{"ééé", 2, "éé"},
		{strings.Repeat("a", 499) + "ééé", 500, strings.Repeat("a", 499) + "é"},
		{"", 0, ""},
		{"x", 0, ""},
	} {
		got := truncateRunes(tc.in, tc.n)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("truncateRunes(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestWarnDanglingAttesters(t *testing.T) {
	ctx := context.Background()
	st, err := storage.Open(ctx, storage.Options{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "a.db"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertAttester(ctx, &storage.Attester{ID: "a1", JWKSURI: "https://a1.example/jwks", Enabled: true, Source: "config"}); err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertClient(ctx, &storage.Client{ID: "agent", TokenEndpointAuthMethod: "attest_jwt_client_auth",
		GrantTypes: []string{"client_credentials"}, Attesters: []string{"a1", "a1-typo"}, Source: "config"}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := warnDanglingAttesters(ctx, st, slog.New(slog.NewTextHandler(&buf, nil))); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, "attester=a1-typo") || strings.Contains(out, "attester=a1 ") || strings.Count(out, "\n") != 1 {
		t.Fatalf("log = %q, want one warning naming a1-typo", out)
	}
}

func TestDatabaseTarget(t *testing.T) {
	for _, tc := range []struct {
		driver, dsn, want string
	}{
		{"postgres", "postgres://authz:secret@db.internal:5432/authz?sslmode=disable", "db.internal:5432/authz"},
		{"sqlite", "/var/lib/authz/authz.db", "/var/lib/authz/authz.db"},
		{"sqlite", ":memory:", ":memory:"},
	} {
		cfg := config.Default()
		cfg.Database.Driver, cfg.Database.DSN = tc.driver, tc.dsn
		if got := databaseTarget(&cfg); got != tc.want || strings.Contains(got, "secret") {
			t.Errorf("databaseTarget(%s %q) = %q, want %q", tc.driver, tc.dsn, got, tc.want)
		}
	}
}
