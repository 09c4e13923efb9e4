package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/authz/authz/storage"
)

// The database work of one attested token (profile §5, §7): the PoP replay key, the access-token
// row and the audit decision, committed together. These benchmarks split that cost so the
// server's per-token database CPU can be attributed, and measure what group commit (many tokens
// per transaction) would save.

// benchStore opens a fresh store: SQLite in a temp dir, or a fresh PostgreSQL database.
func benchStore(b *testing.B, driver string) *storage.Store {
	b.Helper()
	ctx := context.Background()
	dsn := filepath.Join(b.TempDir(), "bench.db")
	if driver == storage.DriverPostgres {
		base := os.Getenv("AUTHZ_TEST_POSTGRES_DSN")
		if base == "" {
			b.Skip("AUTHZ_TEST_POSTGRES_DSN is not set")
		}
		var drop func() error
		var err error
		dsn, drop, err = FreshDatabase(ctx, base, "authz_benchstore")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if err := drop(); err != nil {
				b.Error(err)
			}
		})
	}
	st, err := storage.Open(ctx, storage.Options{Driver: driver, DSN: dsn, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	if err := st.UpsertClient(ctx, &storage.Client{ID: clientAttest, TokenEndpointAuthMethod: "attest_jwt_client_auth", GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}, Source: "config"}); err != nil {
		b.Fatal(err)
	}
	return st
}

// tokenRequest is an access-token requester shaped like the server's (RFC 9068 claims,
// attestation evidence, profile §6).
func tokenRequest(b *testing.B, client fosite.Client) *fosite.Request {
	b.Helper()
	now := time.Now().UTC()
	sess := storage.NewSession()
	sess.Subject = client.GetID()
	sess.InstanceJKT, sess.Attester, sess.PoPMethod, sess.AuthMethod = "x4Kfq2Zq2J4sWdr8Q2U0h3sN4mXlq7Jk1cW0t9yY5dE", attesterID, "attestation_pop_jwt", "attest_jwt_client_auth"
	sess.JWTClaims.Subject, sess.JWTClaims.Issuer, sess.JWTClaims.IssuedAt = client.GetID(), "http://127.0.0.1:8080", now
	sess.JWTClaims.Extra["client_id"] = client.GetID()
	sess.JWTClaims.Extra["client_attestation"] = map[string]any{"attester": attesterID, "instance_jkt": sess.InstanceJKT, "pop_method": sess.PoPMethod}
	sess.JWTHeader.Extra["typ"] = "at+jwt"
	sess.SetExpiresAt(fosite.AccessToken, now.Add(15*time.Minute))
	req := fosite.NewRequest()
	req.Client, req.Session, req.RequestedAt = client, sess, now
	req.Form = url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}, "client_id": {client.GetID()}}
	req.SetRequestedScopes(fosite.Arguments{"read"})
	req.GrantScope("read")
	return req
}

func randomHex(b *testing.B) string {
	var buf [24]byte
	if _, err := rand.Read(buf[:]); err != nil {
		b.Fatal(err)
	}
	return hex.EncodeToString(buf[:])
}

// issueRows writes one token's rows the way the server's token transaction does.
func issueRows(ctx context.Context, b *testing.B, st *storage.Store, req *fosite.Request) error {
	if err := st.MarkReplay(ctx, "pop:jkt:"+randomHex(b), time.Now().Add(90*time.Second)); err != nil {
		return err
	}
	req.ID = randomHex(b)
	if err := st.RecordDecision(ctx, &storage.Decision{
		Endpoint: "/oauth2/token", ClientID: clientAttest, VerifiedClientID: clientAttest, Attester: attesterID,
		Resolution: "kid", InstanceJKT: "x4Kfq2Zq2J4sWdr8Q2U0h3sN4mXlq7Jk1cW0t9yY5dE", PoPMethod: "attestation_pop_jwt",
		PoPAud: "http://127.0.0.1:8080", Challenge: "none", Decision: "accepted", Reason: "ok", TokenRequestID: req.ID,
	}); err != nil {
		return err
	}
	return st.CreateAccessTokenSession(ctx, randomHex(b), req)
}

// BenchmarkStoreTokenRows reports the database cost of one token, per backend:
//   - get_client: the client lookup every token request makes;
//   - mark_replay, record_decision, create_access_token: each statement in its own transaction;
//   - one_tx_per_token: the three in one transaction through the ORM (the server before the
//     group writer);
//   - group_commit_32: 32 tokens' rows in one ORM transaction;
//   - commit_grant_c32: what the server does now: 32 concurrent callers hand their rows to
//     Store.CommitGrant, whose group writer commits them in shared transactions through
//     prepared statements (SQLite) or one statement per table (PostgreSQL).
func BenchmarkStoreTokenRows(b *testing.B) {
	for _, driver := range []string{storage.DriverSQLite, storage.DriverPostgres} {
		b.Run(driver, func(b *testing.B) {
			st := benchStore(b, driver)
			ctx := context.Background()
			client, err := st.GetClient(ctx, clientAttest)
			if err != nil {
				b.Fatal(err)
			}
			req := tokenRequest(b, client)
			// cpu reports this process's CPU per operation beside the wall time (for SQLite the
			// database runs in-process; for PostgreSQL its server's CPU is not included).
			cpu := func(b *testing.B, unit string) func(ops int) {
				start, _ := processCPU()
				return func(ops int) {
					end, _ := processCPU()
					if ops > 0 {
						b.ReportMetric(float64(end-start)/float64(ops), "cpu-ns/"+unit)
					}
				}
			}
			inTx := func(fn func(ctx context.Context) error) {
				if err := st.InTx(ctx, fn); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("get_client", func(b *testing.B) {
				report := cpu(b, "op")
				defer func() { report(b.N) }()
				for b.Loop() {
					if _, err := st.GetClientRecord(ctx, clientAttest); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("mark_replay", func(b *testing.B) {
				report := cpu(b, "op")
				defer func() { report(b.N) }()
				for b.Loop() {
					inTx(func(ctx context.Context) error {
						return st.MarkReplay(ctx, "pop:jkt:"+randomHex(b), time.Now().Add(90*time.Second))
					})
				}
			})
			b.Run("record_decision", func(b *testing.B) {
				report := cpu(b, "op")
				defer func() { report(b.N) }()
				for b.Loop() {
					inTx(func(ctx context.Context) error {
						return st.RecordDecision(ctx, &storage.Decision{Endpoint: "/oauth2/token", ClientID: clientAttest, Decision: "accepted", Reason: "ok", Challenge: "none"})
					})
				}
			})
			b.Run("create_access_token", func(b *testing.B) {
				report := cpu(b, "op")
				defer func() { report(b.N) }()
				for b.Loop() {
					inTx(func(ctx context.Context) error {
						req.ID = randomHex(b)
						return st.CreateAccessTokenSession(ctx, randomHex(b), req)
					})
				}
			})
			b.Run("one_tx_per_token", func(b *testing.B) {
				report := cpu(b, "op")
				defer func() { report(b.N) }()
				for b.Loop() {
					inTx(func(ctx context.Context) error { return issueRows(ctx, b, st, req) })
				}
			})
			b.Run("group_commit_32", func(b *testing.B) {
				const group = 32
				n := 0
				report := cpu(b, "token")
				defer func() { report(n) }()
				for b.Loop() {
					inTx(func(ctx context.Context) error {
						for range group {
							if err := issueRows(ctx, b, st, req); err != nil {
								return err
							}
						}
						return nil
					})
					n += group
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/token")
			})
			b.Run("commit_grant_c32", func(b *testing.B) {
				report := cpu(b, "token")
				defer func() { report(b.N) }()
				b.SetParallelism((32 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						r := *req
						r.ID = randomHex(b)
						mintCtx, rows := storage.WithDeferredWrites(ctx)
						if err := st.CreateAccessTokenSession(mintCtx, randomHex(b), &r); err != nil {
							b.Error(err)
							return
						}
						err := st.CommitGrant(ctx, &storage.Grant{
							Replay: []storage.ReplayKey{{Key: "pop:jkt:" + randomHex(b), ExpiresAt: time.Now().Add(90 * time.Second)}},
							Rows:   rows,
							Decision: &storage.Decision{Endpoint: "/oauth2/token", ClientID: clientAttest, VerifiedClientID: clientAttest,
								Attester: attesterID, Resolution: "kid", InstanceJKT: "x4Kfq2Zq2J4sWdr8Q2U0h3sN4mXlq7Jk1cW0t9yY5dE",
								PoPMethod: "attestation_pop_jwt", PoPAud: "http://127.0.0.1:8080", Challenge: "none", Decision: "accepted",
								Reason: "ok", TokenRequestID: r.ID},
						})
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
				batches, grants := st.GrantStats()
				if batches > 0 {
					b.ReportMetric(float64(grants)/float64(batches), "grants/tx")
				}
			})
		})
	}
}
