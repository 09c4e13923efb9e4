package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/authz/authz/config"
	"github.com/authz/authz/server"
	"github.com/authz/authz/storage"
)

// cmdKeys manages the access-token signing keys: `keys list` and `keys rotate`. A rotated key is
// published in /jwks.json at once and used for signing only after the publish delay; the old key
// stays published until the tokens it signed have expired.
func cmdKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(args, "keys", stderr, "list", "rotate")
	if err != nil {
		return err
	}
	fs := newFlagSet("keys "+sub, "keys "+sub+" --config FILE", stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	return withStore(ctx, *cfgPath, stderr, func(_ *config.Config, st *storage.Store) error {
		if sub == "rotate" {
			if _, err := st.EnsureSigningKey(ctx); err != nil {
				return err
			}
			k, err := st.RotateSigningKey(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "new signing key %s published; servers sign with it after 5m, and keep the old key until its tokens expire\n", k.KID)
			return nil
		}
		keys, err := st.SigningKeys(ctx)
		if err != nil {
			return err
		}
		// ACTIVE is the newest key (the rotation's target); STATE is what the servers do with
		// each key now (a new key signs only after it was published for 5 minutes).
		states := server.SigningKeyStates(keys, time.Now())
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KID\tALG\tACTIVE\tCREATED\tSTATE")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\n", k.KID, k.Alg, k.Active, k.CreatedAt.UTC().Format(time.RFC3339), states[k.KID])
		}
		return tw.Flush()
	})
}
