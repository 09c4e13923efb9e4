package storage

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkTokenUnitOfWork measures the token endpoint's storage work in parallel: GetClient,
// then one transaction with MarkReplay, CreateAccessTokenSession and RecordDecision — the
// numbers behind the SQLite connection-count default (go test -bench . -run ^$ ./storage).
func BenchmarkTokenUnitOfWork(b *testing.B) {
	for _, conns := range []int{1, 4} {
		b.Run(fmt.Sprintf("sqlite_%d_conns", conns), func(b *testing.B) {
			s, err := Open(context.Background(), Options{
				DSN: filepath.Join(b.TempDir(), "bench.db"), MaxOpenConns: conns,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchUnitOfWork(b, s)
		})
	}
}

func benchUnitOfWork(b *testing.B, s *Store) {
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	c := &Client{ID: "bench", Scopes: []string{"read"}}
	if err := s.UpsertClient(ctx, c); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	now := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := s.GetClient(ctx, "bench"); err != nil {
				b.Error(err)
				return
			}
			req := testRequest(b, c, fmt.Sprintf("grant-%d", i), "jkt", now)
			err := s.InTx(ctx, func(ctx context.Context) error {
				if err := s.MarkReplay(ctx, fmt.Sprintf("jkt|%d", i), now.Add(time.Minute)); err != nil {
					return err
				}
				if err := s.CreateAccessTokenSession(ctx, fmt.Sprintf("sig-%d", i), req); err != nil {
					return err
				}
				return s.RecordDecision(ctx, &Decision{Endpoint: "/oauth2/token", ClientID: "bench", Decision: "accepted", Reason: "ok"})
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
