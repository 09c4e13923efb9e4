package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/authz/authz/reliability"
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "authz-soak:", err)
		os.Exit(2)
	default: // errViolations or a failure to set up
		fmt.Fprintln(os.Stderr, "authz-soak:", err)
		os.Exit(1)
	}
}

var (
	errUsage      = errors.New("usage")
	errViolations = errors.New("violations found")
)

// options are the command's flags.
type options struct {
	duration     time.Duration
	bin          string
	workers      int
	maxRSSGrowth int64 // bytes
	keep         bool
	race         bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("authz-soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "how long to drive traffic")
	fs.StringVar(&o.bin, "bin", "", "authz binary (default: build cmd/authz into a temporary directory)")
	fs.IntVar(&o.workers, "workers", 8, "concurrent client goroutines")
	growth := fs.Int64("max-rss-growth-mib", 64, "allowed growth of the server's anonymous RSS (heap, stacks) between the second and last quarter of the run, MiB")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (database, config) for inspection")
	fs.BoolVar(&o.race, "race", false, "build authz with the race detector (a race is a violation; RSS figures then mean little)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if o.duration < 4*time.Second || o.workers < 1 || *growth < 1 {
		return nil, fmt.Errorf("%w: need --duration >= 4s, --workers >= 1, --max-rss-growth-mib >= 1", errUsage)
	}
	o.maxRSSGrowth = *growth << 20
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "authz-soak-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(stdout, "keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	ctx := context.Background()
	bin := o.bin
	if bin == "" {
		fmt.Fprintln(stdout, "building cmd/authz")
		if bin, err = reliability.BuildAuthz(ctx, dir, o.race); err != nil {
			return err
		}
	}

	env, err := setUp(dir, o.duration)
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	proc, err := reliability.Start(startCtx, bin, env.cfgPath, env.issuer)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		if !proc.Exited() {
			_ = proc.Kill()
		}
	}()
	fmt.Fprintf(stdout, "authz pid %d at %s; driving traffic for %s with %d workers\n", proc.PID(), env.issuer, o.duration, o.workers)

	st, err := drive(ctx, env, proc, o)
	if err != nil {
		return err
	}
	if err := proc.Stop(30 * time.Second); err != nil {
		st.violate("server did not drain and exit 0 on SIGTERM: %v", err)
	}
	for _, line := range proc.ErrorLines() {
		st.violate("server logged an error: %s", line)
	}
	if err := checkDatabase(ctx, env, st); err != nil {
		return err
	}
	checkMemory(st, o.maxRSSGrowth)
	st.print(stdout)
	if n := len(st.violations); n > 0 {
		return fmt.Errorf("%w: %d", errViolations, n)
	}
	fmt.Fprintln(stdout, "PASS")
	return nil
}

// env is the soak's server setup.
type env struct {
	issuer   string
	cfgPath  string
	dbPath   string
	attester *reliability.Attester
	forger   *reliability.Attester // same id, untrusted key
	attTTL   time.Duration
}

const (
	agentID        = "agent"
	secretClientID = "svc"
)

func setUp(dir string, duration time.Duration) (*env, error) {
	addr, err := reliability.FreeAddr()
	if err != nil {
		return nil, err
	}
	att, err := reliability.NewAttester("soak-attester")
	if err != nil {
		return nil, err
	}
	forger, err := reliability.NewAttester("soak-attester")
	if err != nil {
		return nil, err
	}
	jwks, err := att.JWKS()
	if err != nil {
		return nil, err
	}
	jwksFile := filepath.Join(dir, "attester-jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		return nil, err
	}
	e := &env{dbPath: filepath.Join(dir, "authz.db"), cfgPath: filepath.Join(dir, "authz.yaml"), attester: att, forger: forger, attTTL: duration + time.Hour}
	// Tokens must outlive the run, or pruning would make the audit check see decisions whose
	// tokens were (rightly) deleted.
	ttl := (duration + time.Hour).String()
	cfg := reliability.ServerConfig{
		Addr: addr, Driver: "sqlite", DSN: e.dbPath,
		Attesters: []map[string]any{{"id": att.ID, "jwks_file": jwksFile}},
		Clients: []map[string]any{
			{"client_id": agentID, "token_endpoint_auth_method": "attest_jwt_client_auth", "grant_types": []string{"client_credentials"}, "scopes": []string{"read"}, "attesters": []string{att.ID}},
			{"client_id": secretClientID, "token_endpoint_auth_method": "client_secret_basic", "grant_types": []string{"client_credentials"}, "scopes": []string{"read"}, "client_secret": "soak-secret-0123456789"},
		},
		Extra: map[string]any{"tokens": map[string]any{"access_token_ttl": ttl}},
	}
	e.issuer = cfg.Issuer()
	if err := cfg.Write(e.cfgPath); err != nil {
		return nil, err
	}
	return e, nil
}
