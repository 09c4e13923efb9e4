package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/ory/fosite"

	"github.com/authz/authz/clientauth"
	"github.com/authz/authz/config"
	"github.com/authz/authz/dpop"
	"github.com/authz/authz/storage"
)

// Names of the shared secrets kept in the database so every replica uses the same ones.
const (
	secretGlobal    = "fosite_global"    // HMAC of codes and refresh tokens
	secretChallenge = "attest_challenge" // self-contained challenges (profile §5)
	secretCookie    = "login_cookie"     // login session and CSRF cookies
)

// Server is one authz replica.
type Server struct {
	cfg     *config.Config
	store   *storage.Store
	clients *clientCache
	// adminFailures throttles failed admin authentications per remote address (adminThrottled).
	adminFailures *limiterTable
	verifier      *clientauth.Verifier
	trust         *trust
	log           *slog.Logger
	metrics       *metrics

	provider     *fosite.Fosite
	fositeConfig *fosite.Config
	keys         *keyring

	cookieSecret []byte
	users        map[string][]byte
	dummyHash    []byte // compared for unknown users, at the users' bcrypt cost (dummyHashFor)
	limiter      *rateLimiter

	echo *echo.Echo
}

// New builds a server over an opened and migrated store: it loads the shared secrets and the
// signing key (creating them on first start), upserts the attesters and clients of the config
// file, and composes fosite.
func New(ctx context.Context, cfg *config.Config, store *storage.Store, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{cfg: cfg, store: store, log: log, metrics: newMetrics(), clients: newClientCache(),
		adminFailures: newLimiterTable(adminFailureRate, adminFailureBurst)}
	s.metrics.registry.MustRegister(grantCollector(store)...)

	if err := SyncConfig(ctx, cfg, store, log); err != nil {
		return nil, err
	}
	globalSecret, err := store.SharedSecret(ctx, secretGlobal, 32)
	if err != nil {
		return nil, fmt.Errorf("server: global secret: %w", err)
	}
	challengeSecret, err := store.SharedSecret(ctx, secretChallenge, 32)
	if err != nil {
		return nil, fmt.Errorf("server: challenge secret: %w", err)
	}
	if s.cookieSecret, err = store.SharedSecret(ctx, secretCookie, 32); err != nil {
		return nil, fmt.Errorf("server: cookie secret: %w", err)
	}
	if _, err := store.EnsureSigningKey(ctx); err != nil {
		return nil, fmt.Errorf("server: signing key: %w", err)
	}
	signingKeys, err := store.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("server: signing keys: %w", err)
	}
	if s.keys, err = newKeyring(signingKeys, keyPublishDelay); err != nil {
		return nil, err
	}

	a := cfg.Attestation
	s.verifier, err = clientauth.New(clientauth.Config{
		Issuer:            cfg.Issuer,
		ClockSkew:         dpop.Skew(a.ClockSkew), // 0 configured is none (clientauth shares dpop's NoClockSkew)
		PoPMaxAge:         a.PoPMaxAge,
		MaxAttestationAge: a.MaxAttestationAge,
		ChallengeTTL:      a.ChallengeTTL,
		ChallengeRequired: a.ChallengeRequired,
		ChallengeSecret:   challengeSecret,
		HTTPClient:        &http.Client{Timeout: 5 * time.Second},
		OnKeySetFetch: func(url string, err error) {
			if err != nil {
				log.Warn("attester key set could not be fetched; attestations signed with its keys are refused (attestation_unknown_key)", "url", url, "error", err)
				return
			}
			log.Debug("attester key set fetched", "url", url)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("server: attestation verifier: %w", err)
	}
	s.trust = newTrust(store, s.verifier, log)
	s.trust.keys = s.keys
	s.trust.clients = s.clients
	if err := s.trust.reload(ctx, true); err != nil {
		return nil, err
	}
	if err := warnDanglingAttesters(ctx, store, log); err != nil {
		return nil, err
	}

	s.users = make(map[string][]byte, len(cfg.Users))
	for _, u := range cfg.Users {
		s.users[u.Username] = []byte(u.PasswordHash)
	}
	if s.dummyHash, err = dummyHashFor(s.users); err != nil {
		return nil, err
	}
	if err := s.composeFosite(globalSecret); err != nil {
		return nil, err
	}
	if _, err = s.buildMetadata(); err != nil {
		return nil, err
	}
	s.limiter = s.newRateLimiter()
	s.echo = s.routes()
	return s, nil
}

// Handler returns the HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.echo }

// Serve accepts connections on ln until ctx is cancelled, then drains in-flight requests
// (interface.md: SIGTERM/SIGINT drain and exit 0). Background work (trust reload, pruning) runs
// for as long as it serves.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	bg, stop := context.WithCancel(ctx)
	defer stop()
	go s.trust.run(bg)
	go s.pruneLoop(bg)

	srv := &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("authz serving", "issuer", s.cfg.Issuer, "listen", ln.Addr().String(), "database", s.store.Driver(),
		"database_target", databaseTarget(s.cfg), "attesters", s.trust.attesterCount(), "admin_api", s.cfg.Admin.Token != "",
		"challenge_required", s.cfg.Attestation.ChallengeRequired)
	select {
	case err := <-errc:
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: draining in-flight requests")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("server: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// Run is `authz serve` once the store is open and migrated: it tunes the runtime, builds the
// server, listens on cfg.Listen and serves until ctx ends (then drains, see Serve).
func Run(ctx context.Context, cfg *config.Config, store *storage.Store, log *slog.Logger) error {
	TuneRuntime(log)
	srv, err := New(ctx, cfg, store, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	return srv.Serve(ctx, ln)
}

// GCPercent is the garbage-collection target `authz serve` runs with unless GOGC is set. The
// live heap of a token server is small (tens of MiB) and almost everything a request allocates
// dies with it, so collecting at 5x the live heap instead of Go's default 2x cuts the CPU spent
// in the collector by about a tenth per token (docs/performance.md) for a few tens of MiB.
const GCPercent = 400

// TuneRuntime applies GCPercent unless the operator chose GOGC (or GOMEMLIMIT) explicitly.
func TuneRuntime(log *slog.Logger) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(GCPercent)
	log.Debug("garbage collector target set", "gogc", GCPercent)
}

// pruneLoop deletes expired replay keys, tokens and PAR requests, and audit records older than
// audit.retention (profile §7).
func (s *Server) pruneLoop(ctx context.Context) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		s.prune(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *Server) prune(ctx context.Context) {
	now := time.Now()
	if err := s.store.PruneExpired(ctx, now); err != nil && ctx.Err() == nil {
		s.log.Warn("pruning expired rows failed", "error", err)
	}
	if _, err := s.store.PruneSigningKeys(ctx, s.cfg.Tokens.AccessTokenTTL+keyPublishDelay); err != nil && ctx.Err() == nil {
		s.log.Warn("pruning retired signing keys failed", "error", err)
	}
	n, err := s.store.PruneDecisions(ctx, now.Add(-s.cfg.Audit.Retention))
	if err != nil && ctx.Err() == nil {
		s.log.Warn("pruning audit decisions failed", "error", err)
	} else if n > 0 {
		s.log.Info("audit decisions pruned", "count", n, "retention", s.cfg.Audit.Retention.String())
	}
}

// databaseTarget names where the data lives for the start-up line: the SQLite file (absolute),
// or the PostgreSQL host and database without user or password.
func databaseTarget(cfg *config.Config) string {
	if cfg.Database.Driver != "postgres" {
		if abs, err := filepath.Abs(cfg.Database.DSN); err == nil && !strings.HasPrefix(cfg.Database.DSN, "file:") && !strings.HasPrefix(cfg.Database.DSN, ":memory:") {
			return abs
		}
		return cfg.Database.DSN
	}
	u, err := url.Parse(cfg.Database.DSN)
	if err != nil {
		return "(unparsable dsn)"
	}
	return u.Host + u.Path
}

// warnDanglingAttesters logs every client that names an attester that does not exist (a typo in
// the file, or an attester removed later): every attested request of that client is refused
// with attester_not_allowed until the names agree.
func warnDanglingAttesters(ctx context.Context, store *storage.Store, log *slog.Logger) error {
	attesters, err := store.ListAttesters(ctx)
	if err != nil {
		return fmt.Errorf("server: list attesters: %w", err)
	}
	known := make(map[string]bool, len(attesters))
	for _, a := range attesters {
		known[a.ID] = true
	}
	clients, err := store.ListClients(ctx)
	if err != nil {
		return fmt.Errorf("server: list clients: %w", err)
	}
	for _, c := range clients {
		for _, id := range c.Attesters {
			if !known[id] {
				log.WarnContext(ctx, "client names an attester that does not exist; its attestations are refused (attester_not_allowed)",
					"client_id", c.ID, "attester", id, "source", c.Source)
			}
		}
	}
	return nil
}
