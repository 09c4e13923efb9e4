package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ory/fosite"
)

// clientAssertionPrefix namespaces RFC 7523 client assertion jti values in the replay table.
const clientAssertionPrefix = "client_assertion:"

// ClientAssertionReplayKey is the replay-table key of an RFC 7523 client assertion jti, for
// callers that write it with a grant (CommitGrant) instead of through SetClientAssertionJWT.
func ClientAssertionReplayKey(jti string) string { return clientAssertionPrefix + jti }

// markReplaySQL records a key in one atomic statement: insert, or — only when the existing row
// has expired — take it over; a live duplicate changes no row. PostgreSQL re-checks the WHERE on
// the committed row after waiting for a concurrent inserter, so of concurrent callers exactly one
// affects a row; SQLite serialises writers. The same text runs on both (SQLite ≥ 3.24 upsert).
const markReplaySQL = `INSERT INTO replay (key_hash, expires_at) VALUES (?, ?)
ON CONFLICT (key_hash) DO UPDATE SET expires_at = excluded.expires_at
WHERE replay.expires_at <= ?`

// MarkReplay records key as used until expiresAt (ABCA-09 §11.1, profile §5): one atomic insert
// on a unique key. A key already recorded and not yet expired gives ErrReplayed; an expired row
// with the same key is replaced. The caller runs it after every other check passed, inside its
// unit of work when there is one.
func (s *Store) MarkReplay(ctx context.Context, key string, expiresAt time.Time) error {
	if key == "" {
		return fmt.Errorf("%w: replay key is empty", ErrInvalid)
	}
	res := s.conn(ctx).Exec(markReplaySQL, hashSignature(key), dbTime(expiresAt), dbTime(s.now()))
	if res.Error != nil {
		return mapError("mark replay", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrReplayed
	}
	return nil
}

// ReplayRecorded reports whether key is recorded (MarkReplay) and not expired.
func (s *Store) ReplayRecorded(ctx context.Context, key string) (bool, error) {
	var n int64
	err := s.conn(ctx).Model(&replayModel{}).
		Where("key_hash = ? AND expires_at > ?", hashSignature(key), dbTime(s.now())).
		Count(&n).Error
	if err != nil {
		return false, mapError("replay lookup", err)
	}
	return n > 0, nil
}

// ClientAssertionJWTValid implements fosite.ClientManager (RFC 7523 §3 item 7): fosite.ErrJTIKnown
// when the jti is recorded and not expired.
func (s *Store) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	known, err := s.ReplayRecorded(ctx, ClientAssertionReplayKey(jti))
	if err != nil {
		return fmt.Errorf("storage: client assertion jti: %w", err)
	}
	if known {
		return fosite.ErrJTIKnown
	}
	return nil
}

// SetClientAssertionJWT implements fosite.ClientManager through MarkReplay (key
// "client_assertion:"+jti); a duplicate is fosite.ErrJTIKnown.
func (s *Store) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	err := s.MarkReplay(ctx, ClientAssertionReplayKey(jti), exp)
	if errors.Is(err, ErrReplayed) {
		return fosite.ErrJTIKnown
	}
	return err
}

// PruneExpired deletes what expired before now: replay rows, tokens, codes and PKCE sessions
// whose expiry passed (rows without expiry are kept), and pushed requests. It is garbage
// collection only; every read already ignores or rejects expired data.
func (s *Store) PruneExpired(ctx context.Context, now time.Time) error {
	t := dbTime(now)
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.conn(ctx).Where("expires_at <= ?", t).Delete(&replayModel{}).Error; err != nil {
			return mapError("prune replay", err)
		}
		if err := s.conn(ctx).Where("expires_at IS NOT NULL AND expires_at <= ?", t).Delete(&requestModel{}).Error; err != nil {
			return mapError("prune tokens", err)
		}
		if err := s.conn(ctx).Where("expires_at <= ?", t).Delete(&parModel{}).Error; err != nil {
			return mapError("prune pushed requests", err)
		}
		return nil
	})
}
