package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/authz/authz/devattester"
)

// cmdDevAttester runs a development client attester (interface.md): POST /attest signs a Client
// Attestation JWT for any client_id and public key it is given. For demos and tests only.
func cmdDevAttester(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("dev-attester", "dev-attester --key FILE --listen ADDR [--generate] [--lifetime 1h]", stderr)
	keyPath := fs.String("key", "", "private key of the attester: a private JWK (JSON) or a PEM key (required)")
	listen := fs.String("listen", "127.0.0.1:8081", "address to listen on")
	generate := fs.Bool("generate", false, "create an ES256 key at --key if the file does not exist")
	lifetime := fs.Duration("lifetime", time.Hour, "lifetime (exp - iat) of issued attestations")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *keyPath == "" {
		return usagef("dev-attester: --key FILE is required")
	}
	if *generate {
		if err := devattester.GenerateKeyFile(*keyPath, "dev-attester-key"); err != nil {
			return fmt.Errorf("dev-attester: %w", err)
		}
	}
	key, err := devattester.LoadKey(*keyPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return usagef("dev-attester: %v (use --generate to create a key)", err)
		}
		return usagef("dev-attester: %v", err)
	}
	att, err := devattester.New(key, devattester.Options{Lifetime: *lifetime})
	if err != nil {
		return usagef("dev-attester: %v", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("dev-attester: listen on %s: %w", *listen, err)
	}
	srv := &http.Server{Handler: att.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Warn("development attester: it vouches for ANY client and key; never use it in production",
		"listen", ln.Addr().String(), "kid", key.KeyID, "attest", "POST /attest", "jwks", "GET /jwks.json")
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("dev-attester: %w", err)
	}
	return nil
}
