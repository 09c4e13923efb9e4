package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/storage"
)

func writeConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "authz.yaml")
	cfg := "issuer: http://127.0.0.1:18080\nlisten: 127.0.0.1:0\ndatabase:\n  driver: sqlite\n  dsn: " + filepath.Join(dir, "authz.db") + "\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUsageErrors(t *testing.T) {
	checkUsageErrors(t, run, []usageCase{
		{"no_command", nil, "a command is required"},
		{"unknown_command", []string{"frobnicate"}, "unknown command"},
		{"bad_flag", []string{"serve", "--nope"}, "flag provided but not defined"},
		{"bad_flag_of_subcommand", []string{"clients", "add", "--nope"}, "flag provided but not defined"},
		{"version_argument", []string{"version", "extra"}, "unexpected argument"},
		{"missing_config", []string{"migrate"}, "--config FILE is required"},
		{"config_not_found", []string{"migrate", "--config", "/nonexistent/authz.yaml"}, "no such file"},
		{"attesters_without_sub", []string{"attesters"}, "subcommand is required"},
		{"decisions_bad_decision", []string{"decisions", "list", "--config", "x", "--decision", "maybe"}, "accepted or rejected"},
	}, func(t *testing.T, err error) {
		if strings.Contains(err.Error(), "\n") {
			t.Fatalf("usage error spans several lines: %q", err)
		}
	})
}

// usageCase is a command line that must fail with a usage error whose text contains want.
type usageCase struct {
	name string
	args []string
	want string
}

// checkUsageErrors runs cmd on each case's arguments as a subtest and fails unless it returns a
// usage error containing the case's want; check, when not nil, then asserts more about the error.
func checkUsageErrors(t *testing.T, cmd func(ctx context.Context, args []string, stdout, stderr io.Writer) error, cases []usageCase, check func(t *testing.T, err error)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := cmd(context.Background(), tc.args, &out, &errb)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a usage error containing %q", err, tc.want)
			}
			// main prints the error as the one line; nothing else may reach the terminal.
			if out.Len() != 0 || errb.Len() != 0 {
				t.Fatalf("a usage error also printed %q / %q", out.String(), errb.String())
			}
			if check != nil {
				check(t, err)
			}
		})
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--help"}, {"migrate", "--help"}, {"attesters", "add", "--help"}, {"attesters", "list", "--help"},
		{"attesters", "remove", "--help"}, {"clients", "add", "--help"}, {"clients", "list", "--help"},
		{"clients", "remove", "--help"}, {"decisions", "list", "--help"}, {"dev-attester", "--help"},
		{"instances", "show", "--help"}, {"keys", "rotate", "--help"}, {"token", "--help"},
		{"attesters", "--help"}, {"clients", "--help"}, {"decisions", "--help"}, {"instances", "--help"},
		{"keys", "--help"}, {"version", "--help"},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), args, &out, &errb)
		if !errors.Is(err, flag.ErrHelp) || !strings.Contains(errb.String(), "Usage: authz") {
			t.Errorf("%v: err %v, help %q", args, err, errb.String())
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, &out, &out); err != nil || !strings.Contains(out.String(), "authz serve") {
		t.Errorf("top-level help: %v %q", err, out.String())
	}
}

func TestAdminCommandsAgainstDatabase(t *testing.T) {
	cfgPath := writeConfig(t)
	ctx := context.Background()
	runOK := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if err := run(ctx, args, &out, &errb); err != nil {
			t.Fatalf("%v: %v (stderr %s)", args, err, errb.String())
		}
		return out.String()
	}
	if !strings.Contains(runOK("migrate", "--config", cfgPath), "up to date") {
		t.Fatal("migrate did not report")
	}
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, []byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	runOK("attesters", "add", "--config", cfgPath, "--id", "acme", "--jwks-file", jwks, "--required-claim", `platform="linux"`)
	var attesters []map[string]any
	if err := json.Unmarshal([]byte(runOK("attesters", "list", "--config", cfgPath, "--json")), &attesters); err != nil || len(attesters) != 1 || attesters[0]["id"] != "acme" {
		t.Fatalf("attesters list: %v %v", attesters, err)
	}
	runOK("attesters", "disable", "--config", cfgPath, "--id", "acme")
	if err := json.Unmarshal([]byte(runOK("attesters", "list", "--config", cfgPath, "--json")), &attesters); err != nil || attesters[0]["enabled"] != false {
		t.Fatalf("attesters disable: %v %v", attesters, err)
	}
	runOK("attesters", "enable", "--config", cfgPath, "--id", "acme")
	// A private key in the set is refused.
	priv := filepath.Join(t.TempDir(), "priv.json")
	_ = os.WriteFile(priv, []byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"k2","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}`), 0o600)
	var out, errb bytes.Buffer
	if err := run(ctx, []string{"attesters", "add", "--config", cfgPath, "--id", "bad", "--jwks-file", priv}, &out, &errb); !errors.Is(err, errUsage) {
		t.Fatalf("private attester key accepted: %v", err)
	}
	// What the servers would refuse never reaches the database (the admin API's rule): a bad
	// jwks_uri, an http jku for a non-loopback host, an id with a '%'.
	for _, args := range [][]string{
		{"--id", "att5", "--jwks-uri", "notaurl"},
		{"--id", "att6", "--jwks-uri", "http://attester.example.com/jwks.json"},
		{"--id", "att7", "--jku", "http://evil.example.com/k"},
		{"--id", "pct%41", "--jwks-uri", "https://attester.example.com/jwks.json"},
	} {
		err := run(ctx, append([]string{"attesters", "add", "--config", cfgPath}, args...), &out, &errb)
		if !errors.Is(err, errUsage) {
			t.Errorf("attesters add %v: %v, want a usage error", args, err)
		}
	}
	// A kid already used by another attester is refused.
	if err := run(ctx, []string{"attesters", "add", "--config", cfgPath, "--id", "copy", "--jwks-file", jwks}, &out, &errb); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("duplicate kid: %v", err)
	}

	// A client naming an attester that does not exist, or a secret variable that is unset, is
	// refused (the admin API's rule).
	if err := run(ctx, []string{"clients", "add", "--config", cfgPath, "--client-id", "bot", "--method", "attest_jwt_client_auth",
		"--grant-types", "client_credentials", "--attesters", "acme-typo"}, &out, &errb); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "acme-typo") {
		t.Fatalf("client with an unknown attester: %v", err)
	}
	if err := run(ctx, []string{"clients", "add", "--config", cfgPath, "--client-id", "svc", "--method", "client_secret_basic",
		"--grant-types", "client_credentials", "--secret-env", "AUTHZ_TEST_UNSET_SECRET_VAR"}, &out, &errb); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "unset or empty") {
		t.Fatalf("client with an unset secret variable: %v", err)
	}
	runOK("clients", "add", "--config", cfgPath, "--client-id", "bot", "--method", "attest_jwt_client_auth", "--grant-types", "client_credentials", "--scopes", "read", "--attesters", "acme")
	var clients []map[string]any
	if err := json.Unmarshal([]byte(runOK("clients", "list", "--config", cfgPath, "--json")), &clients); err != nil || len(clients) != 1 || clients[0]["attested"] != true {
		t.Fatalf("clients list: %v %v", clients, err)
	}
	runOK("clients", "remove", "--config", cfgPath, "--client-id", "bot")
	runOK("attesters", "remove", "--config", cfgPath, "--id", "acme")
	if err := run(ctx, []string{"attesters", "remove", "--config", cfgPath, "--id", "acme"}, &out, &errb); err == nil {
		t.Fatal("removing a missing attester succeeded")
	}
}

func TestDecisionsListJSON(t *testing.T) {
	cfgPath := writeConfig(t)
	ctx := context.Background()
	var out, errb bytes.Buffer
	if err := run(ctx, []string{"migrate", "--config", cfgPath}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, []string{"decisions", "list", "--config", cfgPath, "--json"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != "[]" {
		t.Fatalf("empty list = %q, want []", out.String())
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(ctx, cfg, newLogger(cfg, &errb))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i, d := range []storage.Decision{
		{Time: now.Add(-2 * time.Hour), Endpoint: "/oauth2/token", ClientID: "a", Decision: "rejected", Reason: "pop_signature_invalid", Challenge: "none"},
		{Time: now.Add(-time.Minute), Endpoint: "/oauth2/token", ClientID: "a", VerifiedClientID: "a", Decision: "accepted", Reason: "ok", Challenge: "valid", TokenRequestID: "r1"},
		{Time: now, Endpoint: "/oauth2/par", ClientID: "b", Decision: "rejected", Reason: "attestation_expired", Challenge: "none"},
	} {
		d := d
		if err := st.RecordDecision(ctx, &d); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	st.Close()
	list := func(args ...string) []map[string]any {
		t.Helper()
		out.Reset()
		if err := run(ctx, append([]string{"decisions", "list", "--config", cfgPath, "--json"}, args...), &out, &errb); err != nil {
			t.Fatal(err)
		}
		var got []map[string]any
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("%v: %q", err, out.String())
		}
		return got
	}
	all := list()
	if len(all) != 3 || all[0]["endpoint"] != "/oauth2/par" || all[2]["reason"] != "pop_signature_invalid" {
		t.Fatalf("newest first: %v", all)
	}
	for _, member := range []string{"time", "endpoint", "client_id", "verified_client_id", "attester", "resolution", "instance_jkt", "pop_method", "pop_aud", "challenge", "decision", "reason", "token_request_id"} {
		if _, ok := all[0][member]; !ok {
			t.Errorf("member %q missing (profile §7)", member)
		}
	}
	if ts, _ := all[0]["time"].(string); !strings.HasSuffix(ts, "Z") {
		t.Errorf("time %q is not RFC 3339 UTC", ts)
	}
	if got := list("--client", "a"); len(got) != 2 {
		t.Fatalf("--client a: %d", len(got))
	}
	if got := list("--decision", "accepted"); len(got) != 1 || got[0]["token_request_id"] != "r1" {
		t.Fatalf("--decision accepted: %v", got)
	}
	if got := list("--since", "1h"); len(got) != 2 {
		t.Fatalf("--since 1h: %d", len(got))
	}
	if got := list("--reason", "attestation_expired"); len(got) != 1 || got[0]["client_id"] != "b" {
		t.Fatalf("--reason: %v", got)
	}
	if got := list("--until", "30m"); len(got) != 1 || got[0]["reason"] != "pop_signature_invalid" {
		t.Fatalf("--until 30m: %v", got)
	}
	if got := list("--limit", "1"); len(got) != 1 {
		t.Fatalf("--limit 1: %d", len(got))
	}
}

// A configuration whose attesters share a kid is a bad configuration (profile §4: kids are
// unique across attesters): every command refuses it as a usage error (exit 2) before the
// database is opened.
func TestConfigAttesterKidsMustBeUnique(t *testing.T) {
	dir := t.TempDir()
	jwks := func() string {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.Public(), KeyID: "shared-kid", Algorithm: "ES256", Use: "sig"}}})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	db := filepath.Join(dir, "authz.db")
	cfg := "issuer: http://127.0.0.1:18080\nlisten: 127.0.0.1:0\ndatabase:\n  driver: sqlite\n  dsn: " + db + "\n" +
		"attesters:\n  - id: first\n    jwks: " + jwks() + "\n  - id: second\n    jwks: " + jwks() + "\n"
	path := filepath.Join(dir, "authz.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"serve", "--config", path}, {"migrate", "--config", path}, {"attesters", "list", "--config", path}} {
		var out, errb bytes.Buffer
		err := run(context.Background(), args, &out, &errb)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), `kid "shared-kid" is also used by attester first`) {
			t.Fatalf("%v: %v, want a usage error naming the shared kid", args, err)
		}
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Fatalf("the database was created for a refused configuration: %v", err)
	}
}

// TestAdminCommandsNeedTheDatabase: an admin command never creates an empty SQLite database
// (run from the wrong directory it would read "no decisions" from it); it names the file.
func TestAdminCommandsNeedTheDatabase(t *testing.T) {
	cfgPath := writeConfig(t)
	dbPath := filepath.Join(filepath.Dir(cfgPath), "authz.db")
	var out, errb bytes.Buffer
	for _, args := range [][]string{{"decisions", "list"}, {"clients", "list"}, {"attesters", "list"}, {"instances", "list"}} {
		err := run(context.Background(), append(args, "--config", cfgPath), &out, &errb)
		if err == nil || !strings.Contains(err.Error(), dbPath+" does not exist") {
			t.Errorf("%v without a database: %v", args, err)
		}
	}
	if _, err := os.Stat(dbPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an admin command created the database: %v", err)
	}
	if err := run(context.Background(), []string{"migrate", "--config", cfgPath}, &out, &errb); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if err := run(context.Background(), []string{"decisions", "list", "--config", cfgPath}, &out, &errb); err != nil {
		t.Fatalf("decisions list after migrate: %v", err)
	}
}
