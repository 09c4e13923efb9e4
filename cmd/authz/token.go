package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/authz/authz/attestclient"
)

// cmdToken is the agent-side client for scripts and non-Go agents (interface.md `authz token`):
// it obtains a token with attestation and prints the token response as JSON.
func cmdToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token", "token --issuer URL --client-id ID (--attester URL | --attestation-file F --key K) [--dpop] [--scope S] [--quiet] [--explain]", stderr)
	issuer := fs.String("issuer", "", "the authorization server's issuer URL (required)")
	clientID := fs.String("client-id", "", "the OAuth client_id (required)")
	attester := fs.String("attester", "", "URL of an attester speaking the dev-attester protocol (POST /attest)")
	attFile := fs.String("attestation-file", "", "file holding a Client Attestation JWT")
	keyFile := fs.String("key", "", "private Client Instance Key (JWK or PEM file); with --attester a missing file is created (P-256, mode 0600); omitted, a key is generated for this run only")
	dpop := fs.Bool("dpop", false, "DPoP combined mode (attest_jwt_client_auth_dpop): one DPoP proof is the PoP, and the token is DPoP-bound")
	scope := fs.String("scope", "", "space-separated scopes")
	quiet := fs.Bool("quiet", false, "print the access token alone")
	explain := fs.Bool("explain", false, "print each step (discovery, challenge, PoP claims, response) on stderr")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *issuer == "" || *clientID == "":
		return usagef("token: --issuer and --client-id are required")
	case (*attester == "") == (*attFile == ""):
		return usagef("token: give exactly one of --attester and --attestation-file")
	case *attFile != "" && *keyFile == "":
		return usagef("token: --attestation-file needs --key, the instance key the attestation binds")
	}
	cfg := attestclient.Config{Issuer: *issuer, ClientID: *clientID, CombinedMode: *dpop}
	if *scope != "" {
		cfg.Scopes = strings.Fields(*scope)
	}
	switch {
	case *keyFile != "" && *attester != "":
		k, created, err := attestclient.LoadOrCreateKey(*keyFile)
		if err != nil {
			return usagef("token: %v", err)
		}
		if created {
			fmt.Fprintf(stderr, "authz token: created the instance key %s\n", *keyFile)
		}
		cfg.Key = k
	case *keyFile != "":
		k, err := attestclient.LoadKey(*keyFile)
		if err != nil {
			return usagef("token: %v", err)
		}
		cfg.Key = k
	case *dpop:
		fmt.Fprintln(stderr, "authz token: warning: the DPoP-bound token is bound to an instance key generated for this run and then lost; "+
			"pass --key FILE (created when missing) to keep the key and use the token")
	}
	if *attester != "" {
		cfg.Attestation = attestclient.DevAttester(*attester, nil)
	} else {
		cfg.Attestation = attestclient.AttestationFile(*attFile)
	}
	if *explain {
		cfg.Explain = func(step string, detail any) {
			b, _ := json.Marshal(detail)
			fmt.Fprintf(stderr, "%-12s %s\n", step+":", b)
		}
	}
	c, err := attestclient.New(ctx, cfg)
	if err != nil {
		return err
	}
	if *explain {
		fmt.Fprintf(stderr, "%-12s %s\n", "instance:", c.Thumbprint())
	}
	tok, err := c.Token(ctx)
	if err != nil {
		return err
	}
	if *quiet {
		fmt.Fprintln(stdout, tok.AccessToken)
		return nil
	}
	out := map[string]any{"access_token": tok.AccessToken, "token_type": tok.TokenType}
	for _, k := range []string{"expires_in", "scope", "refresh_token"} {
		if v := tok.Extra(k); v != nil {
			out[k] = v
		}
	}
	return printJSON(stdout, out)
}
