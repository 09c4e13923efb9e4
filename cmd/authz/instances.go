package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/authz/authz/config"
	"github.com/authz/authz/storage"
)

// cmdInstances is `authz instances list|show|revoke` (issue 5, CLI parity with
// /admin/instances): what is known about a Client Instance Key, and its revocation offline
// against the database. Running servers apply a revocation within seconds (generation poll).
func cmdInstances(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(args, "instances", stderr, "list", "show", "revoke")
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		fs := newFlagSet("instances list", "instances list --config FILE [--json]\n\nLists the revoked Client Instance Keys (RFC 7638 thumbprints); 'instances show --jkt' tells\nwhat is known about any key, revoked or not.", stderr)
		cfgPath := fs.String("config", "", "configuration file (YAML)")
		asJSON := fs.Bool("json", false, "print JSON")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		return withStore(ctx, *cfgPath, stderr, func(_ *config.Config, st *storage.Store) error {
			revoked, err := st.RevokedInstances(ctx)
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(stdout, map[string][]string{"revoked": nonNil(revoked)})
			}
			fmt.Fprintln(stdout, "REVOKED_INSTANCE_JKT")
			for _, jkt := range revoked {
				fmt.Fprintln(stdout, jkt)
			}
			return nil
		})
	case "show":
		fs := newFlagSet("instances show", "instances show --config FILE --jkt JKT [--json]", stderr)
		cfgPath := fs.String("config", "", "configuration file (YAML)")
		jkt := fs.String("jkt", "", "RFC 7638 SHA-256 thumbprint of the instance key (required)")
		asJSON := fs.Bool("json", false, "print JSON (the shape of GET /admin/instances/{jkt})")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if err := checkJKTFlag("instances show", *jkt); err != nil {
			return err
		}
		return withStore(ctx, *cfgPath, stderr, func(_ *config.Config, st *storage.Store) error {
			sum, err := st.InstanceSummary(ctx, *jkt)
			if err != nil {
				return err
			}
			recent, err := st.ListDecisions(ctx, storage.DecisionFilter{InstanceJKT: *jkt, Limit: 20})
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(stdout, instanceJSON(sum, recent))
			}
			printInstance(stdout, sum, recent)
			return nil
		})
	default: // revoke
		fs := newFlagSet("instances revoke", "instances revoke --config FILE --jkt JKT [--reason TEXT]", stderr)
		cfgPath := fs.String("config", "", "configuration file (YAML)")
		jkt := fs.String("jkt", "", "RFC 7638 SHA-256 thumbprint of the instance key (required)")
		reason := fs.String("reason", "", "why (kept in the change log)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if err := checkJKTFlag("instances revoke", *jkt); err != nil {
			return err
		}
		if len(*reason) > 500 {
			return usagef("instances revoke: --reason is at most 500 characters")
		}
		return withStore(ctx, *cfgPath, stderr, func(_ *config.Config, st *storage.Store) error {
			err := st.InTx(ctx, func(ctx context.Context) error {
				if err := st.RevokeInstance(ctx, *jkt, *reason); err != nil {
					return err
				}
				detail := "instance key revoked with every token issued to it"
				if *reason != "" {
					detail += "; reason: " + *reason
				}
				return recordCLIChange(ctx, st, "revoke", "instance", *jkt, detail)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "instance %s revoked with its tokens; running servers refuse it within seconds\n", *jkt)
			return nil
		})
	}
}

// checkJKTFlag validates --jkt: 43 base64url characters (an RFC 7638 SHA-256 thumbprint).
func checkJKTFlag(cmd, jkt string) error {
	if jkt == "" {
		return usagef("%s: --jkt is required", cmd)
	}
	ok := len(jkt) == 43 && strings.IndexFunc(jkt, func(r rune) bool {
		return !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) < 0
	if !ok {
		return usagef("%s: --jkt %q is not an RFC 7638 SHA-256 thumbprint (43 base64url characters)", cmd, jkt)
	}
	return nil
}

// recordCLIChange writes one admin change record for an offline CLI change (issue 5: every
// change is audited — who, what, when); call it inside the change's st.InTx.
func recordCLIChange(ctx context.Context, st *storage.Store, action, resource, id, detail string) error {
	return st.RecordAdminChange(ctx, &storage.AdminChange{
		Actor: "cli", Remote: cliUser(), Action: action, Resource: resource, ResourceID: id, Detail: detail,
	})
}

// cliUser names the operator in the change log: the OS user (and sudo's original user).
func cliUser() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if sudo := os.Getenv("SUDO_USER"); sudo != "" && sudo != name {
		name += " (sudo by " + sudo + ")"
	}
	if host, err := os.Hostname(); err == nil {
		name += "@" + host
	}
	return name
}

// instanceJSON mirrors the admin API's instance view (GET /admin/instances/{jkt}).
func instanceJSON(sum *storage.InstanceSummary, recent []storage.Decision) map[string]any {
	opt := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return t.UTC()
	}
	reasons := sum.Reasons
	if reasons == nil {
		reasons = map[string]int64{}
	}
	if recent == nil {
		recent = []storage.Decision{}
	}
	out := map[string]any{
		"instance_jkt": sum.JKT, "known": sum.Known(), "first_seen": opt(sum.FirstSeen), "last_seen": opt(sum.LastSeen),
		"attesters": nonNil(sum.Attesters), "clients": nonNil(sum.Clients),
		"decisions":         map[string]int64{"accepted": sum.Accepted, "rejected": sum.Rejected},
		"rejection_reasons": reasons, "active_tokens": sum.ActiveTokens, "revoked": sum.Revoked,
		"recent_decisions": recent,
	}
	if sum.Revoked {
		out["revoked_at"] = sum.RevokedAt.UTC()
		out["revoke_reason"] = sum.RevokeReason
	}
	return out
}

func printInstance(w io.Writer, sum *storage.InstanceSummary, recent []storage.Decision) {
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "instance_jkt\t%s\n", sum.JKT)
	if sum.Revoked {
		fmt.Fprintf(tw, "revoked\tyes, %s %s\n", when(sum.RevokedAt), sum.RevokeReason)
	} else {
		fmt.Fprintf(tw, "revoked\tno\n")
	}
	fmt.Fprintf(tw, "first_seen\t%s\n", when(sum.FirstSeen))
	fmt.Fprintf(tw, "last_seen\t%s\n", when(sum.LastSeen))
	fmt.Fprintf(tw, "attesters\t%s\n", strings.Join(sum.Attesters, ", "))
	fmt.Fprintf(tw, "clients\t%s\n", strings.Join(sum.Clients, ", "))
	fmt.Fprintf(tw, "decisions\t%d accepted, %d rejected\n", sum.Accepted, sum.Rejected)
	reasons := make([]string, 0, len(sum.Reasons))
	for r, n := range sum.Reasons {
		reasons = append(reasons, fmt.Sprintf("%s=%d", r, n))
	}
	sort.Strings(reasons)
	fmt.Fprintf(tw, "rejection_reasons\t%s\n", strings.Join(reasons, ", "))
	fmt.Fprintf(tw, "active_tokens\t%d\n", sum.ActiveTokens)
	_ = tw.Flush()
	if len(recent) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tENDPOINT\tCLIENT_ID\tATTESTER\tDECISION\tREASON")
		for _, d := range recent {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", when(d.Time), d.Endpoint, d.ClientID, d.Attester, d.Decision, d.Reason)
		}
		_ = tw.Flush()
	}
	if !sum.Known() {
		fmt.Fprintln(w, "\nnothing is known about this key yet; it can still be revoked in advance")
	}
}
