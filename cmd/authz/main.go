// Command authz is the attestation-aware OAuth 2.0 authorization server (interface.md
// "Command line"): serve, migrate, manage attesters and clients, read audit decisions, run a
// development attester.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/authz/authz/config"
	"github.com/authz/authz/server"
	"github.com/authz/authz/storage"
)

// version is set at build time with -ldflags "-X main.version=..."; otherwise buildVersion
// reads the VCS revision Go records in the binary.
var version = "dev"

// buildVersion is version, or "dev (<revision>[, modified])" from the build information.
func buildVersion() string {
	if version != "dev" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if rev == "" {
		return version
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return "dev (" + rev + modified + ")"
}

// errUsage marks a bad command line or configuration: one line on stderr, exit 2.
var errUsage = errors.New("usage")

type usageError struct{ msg string }

func (e *usageError) Error() string   { return e.msg }
func (e *usageError) Is(t error) bool { return t == errUsage }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

const topUsage = `authz: an OAuth 2.0 authorization server with attestation-based client authentication
(draft-ietf-oauth-attestation-based-client-auth-09).

Usage:
  authz serve --config FILE            run the server (migrates the schema first)
  authz migrate --config FILE          create or upgrade the database schema
  authz attesters list|add|remove ...  manage trusted client attesters
  authz clients list|add|remove ...    manage OAuth clients
  authz decisions list ...             print attestation audit decisions
  authz dev-attester --key FILE --listen ADDR
                                       run a development client attester (never in production)
  authz token --issuer URL --client-id ID (--attester URL | --attestation-file F --key K) [--dpop]
                                       get a token with attestation (an agent-side client)
  authz instances list|show|revoke ...  list revoked instance keys; show or revoke one (by jkt)
  authz keys list|rotate --config FILE list or rotate the access-token signing keys
  authz version                        print the version

Every command answers --help. The config file can be overridden by AUTHZ_<KEY> environment
variables, e.g. AUTHZ_DATABASE_DSN.
`

func main() {
	ctx, stop := signalContext()
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "authz: "+oneLine(err.Error()))
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "authz: "+oneLine(err.Error()))
		os.Exit(1)
	}
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("a command is required (serve, migrate, attesters, clients, decisions, dev-attester, token, keys, instances, version; see 'authz --help')")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, topUsage)
		return nil
	case "serve":
		return cmdServe(ctx, rest, stderr)
	case "migrate":
		return cmdMigrate(ctx, rest, stdout, stderr)
	case "attesters":
		return cmdAttesters(ctx, rest, stdout, stderr)
	case "clients":
		return cmdClients(ctx, rest, stdout, stderr)
	case "decisions":
		return cmdDecisions(ctx, rest, stdout, stderr)
	case "dev-attester":
		return cmdDevAttester(ctx, rest, stderr)
	case "token":
		return cmdToken(ctx, rest, stdout, stderr)
	case "keys":
		return cmdKeys(ctx, rest, stdout, stderr)
	case "instances":
		return cmdInstances(ctx, rest, stdout, stderr)
	case "version", "--version":
		if err := parseFlags(newFlagSet("version", "version\n\nPrints the version of this build.", stderr), rest); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "authz", buildVersion())
		return nil
	default:
		return usagef("unknown command %q (see 'authz --help')", cmd)
	}
}

// newFlagSet returns a quiet flag set: a bad flag becomes one usage line (exit 2), and --help
// prints the synopsis and the flags.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fs.SetOutput(stderr)
		fmt.Fprintf(stderr, "Usage: authz %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parseFlags parses args; a bad flag is a usage error, --help prints usage and is flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string) error {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fs.Usage()
			return flag.ErrHelp
		}
		if a == "--" {
			break
		}
	}
	// The flag package prints the usage on a parse error; a bad flag is one line (interface.md).
	usage := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = usage
	if err != nil {
		return usagef("%s: %v (see 'authz %s --help')", fs.Name(), err, fs.Name())
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q (see 'authz %s --help')", fs.Name(), fs.Arg(0), fs.Name())
	}
	return nil
}

// loadConfig loads and validates the config file; any problem is a usage error (exit 2).
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, usagef("--config FILE is required")
	}
	cfg, err := config.Load(path, os.Environ())
	if err != nil {
		return nil, usagef("%v", err)
	}
	for _, w := range config.UnknownEnv(os.Environ()) {
		fmt.Fprintln(os.Stderr, "authz: warning:", w)
	}
	if err := server.CheckConfigAttesters(cfg); err != nil {
		return nil, usagef("%s: %v", path, err)
	}
	return cfg, nil
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.Log.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(server.ContextHandler{Handler: h})
}

// openStore opens and migrates the configured database.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*storage.Store, error) {
	st, err := storage.Open(ctx, storage.Options{Driver: cfg.Database.Driver, DSN: cfg.Database.DSN, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("migrate database: %w", err)
	}
	return st, nil
}
