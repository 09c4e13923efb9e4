package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/authz/authz/config"
	"github.com/authz/authz/server"
	"github.com/authz/authz/storage"
)

// stringList is a repeatable or comma-separated flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// subcommand picks the subcommand of a command group (attesters, clients, ...); --help prints
// the group's synopsis on stderr and is flag.ErrHelp.
func subcommand(args []string, group string, stderr io.Writer, names ...string) (string, []string, error) {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprintf(stderr, "Usage: authz %s %s [flags]\n\nEvery subcommand answers --help.\n", group, strings.Join(names, "|"))
		return "", nil, flag.ErrHelp
	}
	if len(args) == 0 {
		return "", nil, usagef("%s: a subcommand is required (%s)", group, strings.Join(names, ", "))
	}
	for _, n := range names {
		if args[0] == n {
			return n, args[1:], nil
		}
	}
	return "", nil, usagef("%s: unknown subcommand %q (%s)", group, args[0], strings.Join(names, ", "))
}

// withStore loads the config and opens the database for an offline admin command.
func withStore(ctx context.Context, cfgPath string, stderr io.Writer, fn func(*config.Config, *storage.Store) error) error {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	if err := sqliteFileExists(cfg); err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(cfg, st)
}

// sqliteFileExists refuses an admin command whose SQLite database file does not exist: opening
// it would create and migrate an empty database (a relative dsn resolves against the working
// directory), and "no decisions" read from it during an incident would be a lie.
func sqliteFileExists(cfg *config.Config) error {
	if cfg.Database.Driver != "sqlite" || cfg.Database.DSN == "" || strings.HasPrefix(cfg.Database.DSN, ":memory:") || strings.HasPrefix(cfg.Database.DSN, "file:") {
		return nil
	}
	if _, err := os.Stat(cfg.Database.DSN); errors.Is(err, fs.ErrNotExist) {
		where := ""
		if !filepath.IsAbs(cfg.Database.DSN) {
			where = fmt.Sprintf(" (database.dsn %q is relative to the working directory)", cfg.Database.DSN)
		}
		abs, _ := filepath.Abs(cfg.Database.DSN)
		return fmt.Errorf("database %s does not exist%s; run the command where authz serve runs, or authz migrate to create it", abs, where)
	}
	return nil
}

func cmdAttesters(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(args, "attesters", stderr, "list", "add", "remove", "enable", "disable")
	if err != nil {
		return err
	}
	switch sub {
	case "enable", "disable":
		fs := newFlagSet("attesters "+sub, "attesters "+sub+" --config FILE --id ID", stderr)
		cfgPath := fs.String("config", "", "configuration file (YAML)")
		id := fs.String("id", "", "attester id (required)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if *id == "" {
			return usagef("attesters %s: --id is required", sub)
		}
		return withStore(ctx, *cfgPath, stderr, func(_ *config.Config, st *storage.Store) error {
			return st.InTx(ctx, func(ctx context.Context) error {
				a, err := st.GetAttester(ctx, *id)
				if err != nil {
					if errors.Is(err, storage.ErrNotFound) {
						return fmt.Errorf("attester %s does not exist", *id)
					}
					return err
				}
				a.Enabled = sub == "enable"
				if err := st.UpsertAttester(ctx, a); err != nil {
					return err
				}
				if err := recordCLIChange(ctx, st, sub, "attester", a.ID, ""); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "attester %s %sd; running servers pick it up within seconds\n", a.ID, sub)
				return nil
			})
		})
	case "list":
		fs := newFlagSet("attesters list", "attesters list --config FILE [--json]", stderr)
		cfgPath := fs.String("config", "", "configuration file (YAML)")
		asJSON := fs.Bool("json", false, "print JSON")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		return withStore(ctx, *cfgPath, stderr, func(_ *config.Config, st *storage.Store) error {
			list, err := st.ListAttesters(ctx)
			if err != nil {
				return err
			}
			if *asJSON {
				type view struct {
					ID          string          `json:"id"`
					Description string          `json:"description,omitempty"`
					Enabled     bool            `json:"enabled"`
					Source      string          `json:"source"`
					JWKS        json.RawMessage `json:"jwks,omitempty"`
					JWKSURI     string          `json:"jwks_uri,omitempty"`
					JKU         []string        `json:"jku_allowlist,omitempty"`
					X5CRoots    bool            `json:"x5c_roots"`
					HMAC        bool            `json:"hmac"`
				}
				out := make([]view, 0, len(list))
				for _, a := range list {
					out = append(out, view{a.ID, a.Description, a.Enabled, a.Source, json.RawMessage(a.JWKS), a.JWKSURI, a.JKUAllowlist, a.X5CRoots != "", a.HMACSecret != ""})
				}
				return printJSON(stdout, out)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tENABLED\tSOURCE\tKEYS")
			for _, a := range list {
				fmt.Fprintf(tw, "%s\t%v\t%s\t%s\n", a.ID, a.Enabled, a.Source, server.KeySources(&a))
			}
			return tw.Flush()
		})
	case "add":
		fs := newFlagSet("attesters add", "attesters add --config FILE --id ID (--jwks-file F | --jwks-uri URL | --x5c-roots PEM | --jku URL | --hmac-secret-env VAR) [--description D] [--required-claim name=json] [--disabled]", stderr)
		cfgPath := fs.String("config", "", "configuration file (YAML)")
		id := fs.String("id", "", "attester id (required)")
		desc := fs.String("description", "", "human-readable description")
		jwksFile := fs.String("jwks-file", "", "file with the attester's public JWK set")
		jwksURI := fs.String("jwks-uri", "", "URL of the attester's published JWK set")
		x5c := fs.String("x5c-roots", "", "PEM file of trust anchors for x5c chains")
		hmacEnv := fs.String("hmac-secret-env", "", "name of the environment variable holding the shared MAC secret (closed deployments only)")
		disabled := fs.Bool("disabled", false, "add the attester disabled")
		var jku, claims stringList
		fs.Var(&jku, "jku", "jku URL the attester may use (repeatable)")
		fs.Var(&claims, "required-claim", "claim=JSON value the attestation must carry (repeatable)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if *id == "" {
			return usagef("attesters add: --id is required")
		}
		enabled := !*disabled
		ca := config.Attester{ID: *id, Description: *desc, JWKSFile: *jwksFile, JWKSURI: *jwksURI, X5CRoots: *x5c, JKUAllowlist: jku, Enabled: &enabled}
		if *hmacEnv != "" {
			ca.HMACSecret = os.Getenv(*hmacEnv)
			if len(ca.HMACSecret) < 32 {
				return usagef("attesters add: $%s must hold a secret of at least 32 bytes", *hmacEnv)
			}
		}
		if len(claims) > 0 {
			ca.RequiredClaims = map[string]any{}
			for _, c := range claims {
				name, raw, ok := strings.Cut(c, "=")
				var v any
				if !ok || name == "" || json.Unmarshal([]byte(raw), &v) != nil {
					return usagef("attesters add: --required-claim %q must be name=<JSON value>", c)
				}
				ca.RequiredClaims[name] = v
			}
		}
		if ca.JWKSFile == "" && ca.JWKSURI == "" && ca.X5CRoots == "" && len(ca.JKUAllowlist) == 0 && ca.HMACSecret == "" {
			return usagef("attesters add: give at least one of --jwks-file, --jwks-uri, --x5c-roots, --jku, --hmac-secret-env")
		}
		return withStore(ctx, *cfgPath, stderr, func(cfg *config.Config, st *storage.Store) error {
			rec, err := server.AttesterRecordFromConfig(ca)
			if err != nil {
				return usagef("%v", err)
			}
			rec.Source = "cli"
			// The admin API's rule: a record the servers would refuse never reaches the database
			// (one would stop every replica's trust reloads and refuse restarts).
			all, err := st.ListAttesters(ctx)
			if err != nil {
				return err
			}
			exists := slices.ContainsFunc(all, func(a storage.Attester) bool { return a.ID == rec.ID })
			if problems := server.AttesterProblems(cfg.Issuer, rec, all, !exists); len(problems) > 0 {
				return usagef("attesters add: %s", strings.Join(problems, "; "))
			}
			err = st.InTx(ctx, func(ctx context.Context) error {
				if err := st.UpsertAttester(ctx, rec); err != nil {
					return err
				}
				return recordCLIChange(ctx, st, "upsert", "attester", rec.ID, "key sources: "+server.KeySources(rec))
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "attester %s saved; running servers pick it up within seconds\n", rec.ID)
			return nil
		})
	default: // remove
		fs := newFlagSet("attesters remove", "attesters remove --config FILE --id ID", stderr)
		cfgPath := fs.String("config", "", "configuration file (YAML)")
		id := fs.String("id", "", "attester id (required)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if *id == "" {
			return usagef("attesters remove: --id is required")
		}
		return withStore(ctx, *cfgPath, stderr, func(_ *config.Config, st *storage.Store) error {
			err := st.InTx(ctx, func(ctx context.Context) error {
				if err := st.DeleteAttester(ctx, *id); err != nil {
					return err
				}
				return recordCLIChange(ctx, st, "delete", "attester", *id, "")
			})
			if errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("attester %s does not exist", *id)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "attester %s removed\n", *id)
			return nil
		})
	}
}

func cmdClients(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(args, "clients", stderr, "list", "add", "remove")
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		fs := newFlagSet("clients list", "clients list --config FILE [--json]", stderr)
		cfgPath := fs.String("config", "", "configuration file (YAML)")
		asJSON := fs.Bool("json", false, "print JSON")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		return withStore(ctx, *cfgPath, stderr, func(_ *config.Config, st *storage.Store) error {
			list, err := st.ListClients(ctx)
			if err != nil {
				return err
			}
			if *asJSON {
				type view struct {
					ClientID           string   `json:"client_id"`
					Description        string   `json:"description,omitempty"`
					Method             string   `json:"token_endpoint_auth_method"`
					GrantTypes         []string `json:"grant_types"`
					Scopes             []string `json:"scopes"`
					RedirectURIs       []string `json:"redirect_uris,omitempty"`
					Attesters          []string `json:"attesters"`
					RequireAttestation bool     `json:"require_attestation"`
					Attested           bool     `json:"attested"`
					Source             string   `json:"source"`
				}
				out := make([]view, 0, len(list))
				for _, c := range list {
					out = append(out, view{c.ID, c.Description, c.TokenEndpointAuthMethod, c.GrantTypes, c.Scopes, c.RedirectURIs,
						nonNil(c.Attesters), c.RequireAttestation, isAttested(c), c.Source})
				}
				return printJSON(stdout, out)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CLIENT_ID\tMETHOD\tATTESTED\tGRANTS\tSOURCE")
			for _, c := range list {
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\n", c.ID, c.TokenEndpointAuthMethod, isAttested(c), strings.Join(c.GrantTypes, ","), c.Source)
			}
			return tw.Flush()
		})
	case "add":
		fs := newFlagSet("clients add", "clients add --config FILE --client-id ID --method METHOD --grant-types G [--scopes S] [--attesters A] [--redirect-uris U] [--secret-env VAR] [--jwks-file F] [--require-attestation]", stderr)
		cfgPath := fs.String("config", "", "configuration file (YAML)")
		id := fs.String("client-id", "", "client id (required)")
		desc := fs.String("description", "", "human-readable name")
		method := fs.String("method", config.AuthMethodAttestJWT, "token_endpoint_auth_method: "+strings.Join(config.AuthMethods, ", "))
		secretEnv := fs.String("secret-env", "", "environment variable holding the client secret (client_secret_* methods)")
		jwksFile := fs.String("jwks-file", "", "public JWK set for private_key_jwt")
		require := fs.Bool("require-attestation", false, "require attestation as an additional signal (non-attestation methods)")
		var grants, scopes, attesters, redirects stringList
		fs.Var(&grants, "grant-types", "grant types (comma-separated or repeated)")
		fs.Var(&scopes, "scopes", "allowed scopes")
		fs.Var(&attesters, "attesters", "attesters allowed to vouch for this client (empty = any trusted attester)")
		fs.Var(&redirects, "redirect-uris", "redirect URIs (authorization_code)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		cc := config.Client{ClientID: *id, Description: *desc, TokenEndpointAuthMethod: *method, GrantTypes: grants,
			Scopes: scopes, Attesters: attesters, RedirectURIs: redirects, RequireAttestation: *require}
		if *secretEnv != "" {
			if cc.ClientSecret = os.Getenv(*secretEnv); cc.ClientSecret == "" {
				return usagef("clients add: --secret-env: $%s is unset or empty", *secretEnv)
			}
		}
		if *jwksFile != "" {
			b, err := os.ReadFile(*jwksFile)
			if err != nil {
				return usagef("clients add: --jwks-file: %v", err)
			}
			cc.JWKS = string(b)
		}
		probe := config.Default()
		probe.Clients = []config.Client{cc}
		if err := probe.Validate(); err != nil {
			return usagef("clients add: %v", err)
		}
		return withStore(ctx, *cfgPath, stderr, func(_ *config.Config, st *storage.Store) error {
			rec, err := server.ClientRecordFromConfig(ctx, st, cc)
			if err != nil {
				return err
			}
			rec.Source = "cli"
			// The admin API's rule, with the attesters of this database: a client naming an
			// attester that does not exist would be refused on every request.
			attesters, err := st.ListAttesters(ctx)
			if err != nil {
				return err
			}
			known := map[string]bool{}
			for _, a := range attesters {
				known[a.ID] = true
			}
			_, getErr := st.GetClientRecord(ctx, rec.ID)
			if problems := server.ClientProblems(rec, known, errors.Is(getErr, storage.ErrNotFound)); len(problems) > 0 {
				return usagef("clients add: %s", strings.Join(problems, "; "))
			}
			err = st.InTx(ctx, func(ctx context.Context) error {
				if err := st.UpsertClient(ctx, rec); err != nil {
					return err
				}
				return recordCLIChange(ctx, st, "upsert", "client", rec.ID, "method "+rec.TokenEndpointAuthMethod)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "client %s saved\n", rec.ID)
			return nil
		})
	default:
		fs := newFlagSet("clients remove", "clients remove --config FILE --client-id ID", stderr)
		cfgPath := fs.String("config", "", "configuration file (YAML)")
		id := fs.String("client-id", "", "client id (required)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if *id == "" {
			return usagef("clients remove: --client-id is required")
		}
		return withStore(ctx, *cfgPath, stderr, func(_ *config.Config, st *storage.Store) error {
			err := st.InTx(ctx, func(ctx context.Context) error {
				if err := st.DeleteClient(ctx, *id); err != nil {
					return err
				}
				return recordCLIChange(ctx, st, "delete", "client", *id, "")
			})
			if errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("client %s does not exist", *id)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "client %s removed\n", *id)
			return nil
		})
	}
}

func isAttested(c storage.Client) bool {
	return c.TokenEndpointAuthMethod == config.AuthMethodAttestJWT || c.TokenEndpointAuthMethod == config.AuthMethodAttestJWTDPoP || c.RequireAttestation
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// cmdDecisions prints audit decision records (profile §7).
func cmdDecisions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(args, "decisions", stderr, "list")
	if err != nil {
		return err
	}
	_ = sub
	fs := newFlagSet("decisions list", "decisions list --config FILE [--client ID] [--decision accepted|rejected] [--attester A] [--reason R] [--instance-jkt JKT] [--since 1h] [--until 10m] [--limit N] [--json]", stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	client := fs.String("client", "", "only records whose client_id matches")
	decision := fs.String("decision", "", "accepted or rejected")
	since := fs.Duration("since", 0, "only records newer than this Go duration (e.g. 1h)")
	until := fs.Duration("until", 0, "only records older than this Go duration (e.g. 10m)")
	attester := fs.String("attester", "", "only records of this attester")
	reason := fs.String("reason", "", "only records with this reason code (e.g. pop_signature_invalid)")
	jkt := fs.String("instance-jkt", "", "only records of this instance key thumbprint")
	limit := fs.Int("limit", 0, "at most N records (0 = no limit)")
	asJSON := fs.Bool("json", false, "print a JSON array (profile §7)")
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if *decision != "" && *decision != "accepted" && *decision != "rejected" {
		return usagef("decisions list: --decision must be accepted or rejected")
	}
	if *limit < 0 || *since < 0 || *until < 0 {
		return usagef("decisions list: --limit and --since must not be negative")
	}
	return withStore(ctx, *cfgPath, stderr, func(_ *config.Config, st *storage.Store) error {
		f := storage.DecisionFilter{ClientID: *client, Decision: *decision, Limit: *limit, Attester: *attester, Reason: *reason, InstanceJKT: *jkt}
		if *since > 0 {
			f.Since = time.Now().Add(-*since)
		}
		if *until > 0 {
			f.Until = time.Now().Add(-*until)
		}
		list, err := st.ListDecisions(ctx, f)
		if err != nil {
			return err
		}
		if *asJSON {
			if list == nil {
				list = []storage.Decision{}
			}
			return printJSON(stdout, list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tENDPOINT\tCLIENT_ID\tATTESTER\tINSTANCE_JKT\tPOP\tCHALLENGE\tDECISION\tREASON")
		for _, d := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Time.UTC().Format(time.RFC3339), d.Endpoint, d.ClientID,
				d.Attester, d.InstanceJKT, d.PoPMethod, d.Challenge, d.Decision, d.Reason)
		}
		return tw.Flush()
	})
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
