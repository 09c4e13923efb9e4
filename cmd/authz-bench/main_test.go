package main

import (
	"errors"
	"flag"
	"io"
	"testing"
)

// TestRun_BadCommandLine: a bad command line is a usage error (exit 2) before anything runs.
func TestRun_BadCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr error
	}{
		{"unknown_flag", []string{"--nope"}, errUsage},
		{"unknown_scenario", []string{"--scenarios", "client_secret_jwt"}, errUsage},
		{"unknown_replica_scenario", []string{"--replica-scenarios", "password"}, errUsage},
		{"unknown_backend", []string{"--backends", "mysql"}, errUsage},
		{"zero_concurrency", []string{"--concurrency", "0"}, errUsage},
		{"negative_duration", []string{"--duration", "-1s"}, errUsage},
		{"zero_repeat", []string{"--repeat", "0"}, errUsage},
		{"extra_argument", []string{"now"}, errUsage},
		{"help", []string{"--help"}, flag.ErrHelp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(t.Context(), tc.args, io.Discard, io.Discard)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("run(%q) = %v, want %v", tc.args, err, tc.wantErr)
			}
		})
	}
}

func TestServeProfiled_BadCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no_config", []string{"--cpuprofile", "x.pprof"}},
		{"unknown_flag", []string{"--config", "c.yaml", "--nope"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := serveProfiled(t.Context(), tc.args); !errors.Is(err, errUsage) {
				t.Fatalf("serveProfiled(%q) = %v, want a usage error", tc.args, err)
			}
		})
	}
}
