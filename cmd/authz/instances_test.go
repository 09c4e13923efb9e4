package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/authz/authz/storage"
)

const testJKT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

func TestInstancesUsage(t *testing.T) {
	checkUsageErrors(t, cmdInstances, []usageCase{
		{"no_subcommand", nil, "subcommand is required"},
		{"unknown_subcommand", []string{"delete"}, "unknown subcommand"},
		{"show_without_jkt", []string{"show", "--config", "x"}, "--jkt is required"},
		{"revoke_bad_jkt", []string{"revoke", "--config", "x", "--jkt", "abc"}, "not an RFC 7638 SHA-256 thumbprint"},
		{"revoke_long_reason", []string{"revoke", "--config", "x", "--jkt", testJKT, "--reason", strings.Repeat("r", 501)}, "at most 500"},
		{"bad_flag", []string{"list", "--nope"}, "flag provided but not defined"},
	}, nil)
	for _, args := range [][]string{{"list", "--help"}, {"show", "--help"}, {"revoke", "--help"}} {
		var out, errb bytes.Buffer
		if err := cmdInstances(context.Background(), args, &out, &errb); !errors.Is(err, flag.ErrHelp) || !strings.Contains(errb.String(), "Usage: authz instances") {
			t.Errorf("%v: %v %q", args, err, errb.String())
		}
	}
}

func TestInstancesShowAndRevoke(t *testing.T) {
	cfgPath := writeConfig(t)
	ctx := context.Background()
	var errb bytes.Buffer
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(ctx, cfg, newLogger(cfg, &errb))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []storage.Decision{
		{Endpoint: "/oauth2/token", ClientID: "agent", Attester: "acme", InstanceJKT: testJKT, Decision: "accepted", Reason: "ok"},
		{Endpoint: "/oauth2/token", ClientID: "agent", Attester: "acme", InstanceJKT: testJKT, Decision: "rejected", Reason: "pop_signature_invalid"},
	} {
		d := d
		if err := st.RecordDecision(ctx, &d); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if err := cmdInstances(ctx, args, &out, &errb); err != nil {
			t.Fatalf("%v: %v (%s)", args, err, errb.String())
		}
		return out.String()
	}

	var shown map[string]any
	if err := json.Unmarshal([]byte(run("show", "--config", cfgPath, "--jkt", testJKT, "--json")), &shown); err != nil {
		t.Fatal(err)
	}
	if shown["known"] != true || shown["revoked"] != false || shown["decisions"].(map[string]any)["rejected"] != float64(1) ||
		len(shown["recent_decisions"].([]any)) != 2 || shown["rejection_reasons"].(map[string]any)["pop_signature_invalid"] != float64(1) {
		t.Fatalf("show = %v", shown)
	}
	text := run("show", "--config", cfgPath, "--jkt", testJKT)
	if !strings.Contains(text, "1 accepted, 1 rejected") || !strings.Contains(text, "attesters          acme") {
		t.Fatalf("show text:\n%s", text)
	}

	if out := run("revoke", "--config", cfgPath, "--jkt", testJKT, "--reason", "stolen"); !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %q", out)
	}
	if err := json.Unmarshal([]byte(run("show", "--config", cfgPath, "--jkt", testJKT, "--json")), &shown); err != nil {
		t.Fatal(err)
	}
	if shown["revoked"] != true || shown["revoke_reason"] != "stolen" {
		t.Fatalf("after revoke: %v", shown)
	}
	var listed struct {
		Revoked []string `json:"revoked"`
	}
	if err := json.Unmarshal([]byte(run("list", "--config", cfgPath, "--json")), &listed); err != nil || len(listed.Revoked) != 1 || listed.Revoked[0] != testJKT {
		t.Fatalf("list = %+v %v", listed, err)
	}
	if !strings.Contains(run("list", "--config", cfgPath), testJKT) {
		t.Fatal("text list lacks the key")
	}

	st, err = openStore(ctx, cfg, newLogger(cfg, &errb))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	changes, err := st.ListAdminChanges(ctx, storage.AdminChangeFilter{Resource: "instance"})
	if err != nil || len(changes) != 1 || changes[0].Actor != "cli" || changes[0].Remote == "" || !strings.Contains(changes[0].Detail, "stolen") {
		t.Fatalf("change log = %+v %v", changes, err)
	}
	unknown := run("show", "--config", cfgPath, "--jkt", strings.Repeat("A", 43))
	if !strings.Contains(unknown, "nothing is known about this key") {
		t.Fatalf("unknown key:\n%s", unknown)
	}
}
