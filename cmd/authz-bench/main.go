// Command authz-bench is `make bench` (issue 8): it measures the crypto bound of an attested
// token request, then starts `authz serve` child processes on loopback — SQLite, then a fresh
// PostgreSQL database when one is reachable, then several replicas sharing one PostgreSQL
// database — and drives the client_credentials grant with pre-generated attestation, PoP, DPoP,
// client-assertion and HTTP Basic credentials. It prints req/s, latency percentiles, errors,
// server CPU per 1000 tokens, peak RSS and the efficiency against the crypto bound. It never
// fails because of speed; it fails when a server cannot be started or measured.
//
//	authz-bench [--authz bin/authz] [--scenarios a,b] [--backends sqlite,postgres] [--concurrency 32]
//	            [--duration 10s] [--repeat 1] [--replicas 2] [--cpuprofile DIR] [--json FILE]
//	authz-bench serve-profiled --config FILE --cpuprofile FILE [--memprofile FILE]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/authz/authz/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "serve-profiled" {
		err = serveProfiled(ctx, os.Args[2:])
	} else {
		err = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "authz-bench:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "authz-bench:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// serveProfiled is the child the bench starts instead of `authz serve` under --cpuprofile.
func serveProfiled(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve-profiled", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg := fs.String("config", "", "configuration file")
	cpu := fs.String("cpuprofile", "", "write a CPU profile here")
	mem := fs.String("memprofile", "", "write an allocation profile here at exit")
	if err := fs.Parse(args); err != nil {
		return usagef("serve-profiled: %v", err)
	}
	if *cfg == "" {
		return usagef("serve-profiled: --config is required")
	}
	return bench.ServeProfiled(ctx, *cfg, *cpu, *mem, nil)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("authz-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	authzPath := fs.String("authz", "bin/authz", "authz executable (built with 'go build ./cmd/authz' into the work directory when missing)")
	scenarios := fs.String("scenarios", strings.Join(bench.Scenarios, ","), "comma-separated scenarios")
	backends := fs.String("backends", "sqlite,postgres", "comma-separated backends (postgres runs only when reachable)")
	concurrency := fs.Int("concurrency", 32, "concurrent keep-alive connections")
	duration := fs.Duration("duration", 10*time.Second, "measured time per run")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured warm-up per run")
	maxRate := fs.Int("max-rate", 12000, "tokens/s the pre-generated requests are sized for")
	instances := fs.Int("instances", 0, "client instances (attestations) per run (0 = concurrency)")
	pgDSN := fs.String("postgres-dsn", "", "PostgreSQL server URL on loopback (default $AUTHZ_TEST_POSTGRES_DSN, else scripts/ensure-postgres.sh)")
	replicas := fs.Int("replicas", 2, "replicas sharing one PostgreSQL database for the replica run (< 2 disables it)")
	replicaScenarios := fs.String("replica-scenarios", bench.ScenarioAttest, "comma-separated scenarios of the replica run")
	cryptoIter := fs.Int("crypto-iterations", 3000, "iterations of each crypto-bound step")
	repeat := fs.Int("repeat", 1, "runs of each scenario, alternating; the run with the median tokens/s is reported (shared VMs vary ±10 %)")
	profileDir := fs.String("cpuprofile", "", "directory for a CPU profile of each server (servers then run in-process in an authz-bench child)")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file")
	keep := fs.Bool("keep", false, "keep the work directory (configs, SQLite files, server logs)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	opts := bench.Options{
		Concurrency: *concurrency, Duration: *duration, Warmup: *warmup, MaxRate: *maxRate,
		Instances: *instances, Replicas: *replicas, CryptoIterations: *cryptoIter, Repeat: *repeat, Log: stderr,
	}
	var err error
	if opts.Scenarios, err = scenarioList(*scenarios); err != nil {
		return err
	}
	if opts.ReplicaScenarios, err = scenarioList(*replicaScenarios); err != nil {
		return err
	}
	for _, b := range splitList(*backends) {
		if b != bench.BackendSQLite && b != bench.BackendPostgres {
			return usagef("--backends: %q is not sqlite or postgres", b)
		}
		opts.Backends = append(opts.Backends, b)
	}
	if *concurrency < 1 || *duration <= 0 || *maxRate < 1 || *repeat < 1 {
		return usagef("--concurrency, --duration, --max-rate and --repeat must be positive")
	}

	work, err := os.MkdirTemp("", "authz-bench-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintln(stderr, "work directory:", work)
	} else {
		defer os.RemoveAll(work)
	}
	opts.WorkDir = work

	if *profileDir != "" {
		if err := os.MkdirAll(*profileDir, 0o755); err != nil {
			return err
		}
		self, err := os.Executable()
		if err != nil {
			return err
		}
		opts.ProfileDir = *profileDir
		opts.Command = func(cfg, profile string) (string, []string) {
			return self, []string{"serve-profiled", "--config", cfg, "--cpuprofile", profile, "--memprofile", strings.TrimSuffix(profile, ".pprof") + ".allocs.pprof"}
		}
	} else {
		bin, err := authzBinary(ctx, *authzPath, work, stderr)
		if err != nil {
			return err
		}
		opts.Command = func(cfg, _ string) (string, []string) { return bin, []string{"serve", "--config", cfg} }
	}

	if wantsPostgres(opts) {
		dsn, err := postgresDSN(ctx, *pgDSN)
		if err != nil {
			fmt.Fprintf(stderr, "PostgreSQL runs skipped: %v\n", err)
		} else {
			opts.PostgresDSN = dsn
		}
	}

	rep, err := bench.Execute(ctx, opts)
	if rep != nil {
		rep.Print(stdout)
		if *jsonOut != "" {
			data, jerr := json.MarshalIndent(rep, "", "  ")
			if jerr == nil {
				jerr = os.WriteFile(*jsonOut, append(data, '\n'), 0o644)
			}
			err = errors.Join(err, jerr)
		}
	}
	if err != nil {
		return err
	}
	for _, n := range rep.Notes {
		if !strings.HasPrefix(n, "PostgreSQL skipped") {
			return errors.New("some runs failed (see the notes above)")
		}
	}
	return nil
}

func wantsPostgres(o bench.Options) bool {
	for _, b := range o.Backends {
		if b == bench.BackendPostgres {
			return true
		}
	}
	return o.Replicas > 1 && len(o.ReplicaScenarios) > 0
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func scenarioList(s string) ([]string, error) {
	list := splitList(s)
	for _, sc := range list {
		if !bench.ValidScenario(sc) {
			return nil, usagef("unknown scenario %q (one of %s)", sc, strings.Join(bench.Scenarios, ", "))
		}
	}
	return list, nil
}

// authzBinary returns path when it exists, else builds ./cmd/authz into dir.
func authzBinary(ctx context.Context, path, dir string, stderr io.Writer) (string, error) {
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		return filepath.Abs(path)
	}
	out := filepath.Join(dir, "authz")
	fmt.Fprintf(stderr, "%s not found; building ./cmd/authz\n", path)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/authz")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build authz: %w", err)
	}
	return out, nil
}

// postgresDSN returns the server to create fresh databases on: the flag, else
// AUTHZ_TEST_POSTGRES_DSN, else what scripts/ensure-postgres.sh prints. Only loopback servers
// are used: the bench creates and drops databases.
func postgresDSN(ctx context.Context, flagValue string) (string, error) {
	dsn := flagValue
	if dsn == "" {
		dsn = os.Getenv("AUTHZ_TEST_POSTGRES_DSN")
	}
	if dsn == "" {
		out, err := exec.CommandContext(ctx, "scripts/ensure-postgres.sh").Output()
		if err != nil {
			return "", fmt.Errorf("scripts/ensure-postgres.sh: %w", err)
		}
		dsn = strings.TrimSpace(string(out))
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("PostgreSQL DSN: %w", err)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", fmt.Errorf("PostgreSQL host %q is not a loopback address", host)
	}
	if err := bench.PostgresReachable(ctx, dsn); err != nil {
		return "", err
	}
	return dsn, nil
}
