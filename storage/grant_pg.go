package storage

import (
	"context"
	"database/sql"
	"time"
)

// PostgreSQL statements of the group writer: one statement per table for a whole batch, with
// the rows passed as arrays (unnest), so a batch costs five round trips (BEGIN, replay keys,
// token rows, decisions, COMMIT) whatever its size. Per-row statements cost a round trip, a
// backend wake-up and a parse each.
const (
	pgReplayBatchSQL = `INSERT INTO replay (key_hash, expires_at)
SELECT * FROM unnest($1::text[], $2::timestamptz[])
ON CONFLICT (key_hash) DO UPDATE SET expires_at = excluded.expires_at
WHERE replay.expires_at <= $3
RETURNING key_hash`
	pgUnreplayBatchSQL = `DELETE FROM replay WHERE key_hash = ANY($1::text[])`
	pgTokenBatchSQL    = `INSERT INTO oauth2_requests (` + tokenColumns + `)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::text[],
	$8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bool[], $14::text[], $15::text[], $16::text[],
	$17::timestamptz[])`
	pgDecisionBatchSQL = `INSERT INTO audit_decisions (` + decisionColumns + `)
SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
	$8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[])`
)

// writeBatchPostgres is writeBatch's body on PostgreSQL. A key that two grants of the batch
// carry counts for the first one only (ON CONFLICT DO UPDATE may not touch a row twice in one
// statement); a grant with a key that was not inserted is replayed, and the keys it did insert
// are deleted again, so nothing of it stays.
func (s *Store) writeBatchPostgres(ctx context.Context, tx *sql.Tx, batch []*grantUnit, results []error) error {
	type keyRef struct{ unit, index int }
	var (
		hashes  []string
		expires []time.Time
		refs    []keyRef
		first   = map[string]bool{}
	)
	for i, u := range batch {
		results[i] = nil
		for j, k := range u.g.Replay {
			h := u.keys[j]
			if first[h] {
				if results[i] == nil {
					results[i] = &ReplayedError{Index: j}
				}
				continue
			}
			first[h] = true
			hashes, expires = append(hashes, h), append(expires, dbTime(k.ExpiresAt))
			refs = append(refs, keyRef{i, j})
		}
	}
	inserted := make(map[string]bool, len(hashes))
	if len(hashes) > 0 {
		rows, err := tx.QueryContext(ctx, pgReplayBatchSQL, hashes, expires, dbTime(batch[0].now))
		if err != nil {
			return mapError("mark replay", err)
		}
		for rows.Next() {
			var h string
			if err := rows.Scan(&h); err != nil {
				rows.Close()
				return mapError("mark replay", err)
			}
			inserted[h] = true
		}
		if err := rows.Err(); err != nil {
			return mapError("mark replay", err)
		}
	}
	for n, ref := range refs {
		if !inserted[hashes[n]] && results[ref.unit] == nil {
			results[ref.unit] = &ReplayedError{Index: ref.index}
		}
	}
	var undo []string
	for n, ref := range refs {
		if results[ref.unit] != nil && inserted[hashes[n]] {
			undo = append(undo, hashes[n])
		}
	}
	if len(undo) > 0 {
		if _, err := tx.ExecContext(ctx, pgUnreplayBatchSQL, undo); err != nil {
			return mapError("mark replay", err)
		}
	}

	var t tokenColumnsArrays
	var d decisionColumnsArrays
	for i, u := range batch {
		if results[i] != nil {
			continue
		}
		for _, m := range u.rows {
			t.add(m)
		}
		if u.g.Decision != nil {
			d.add(u.g.Decision, u.now)
		}
	}
	if len(t.kind) > 0 {
		if _, err := tx.ExecContext(ctx, pgTokenBatchSQL, t.kind, t.signature, t.requestID, t.clientID, t.requestedAt,
			t.scopes, t.grantedScopes, t.audiences, t.grantedAudiences, t.form, t.session, t.subject, t.active,
			t.accessSignature, t.instanceJKT, t.dpopJKT, t.expiresAt); err != nil {
			return mapError("create token sessions", err)
		}
	}
	if len(d.time) > 0 {
		if _, err := tx.ExecContext(ctx, pgDecisionBatchSQL, d.time, d.endpoint, d.clientID, d.verifiedClientID, d.attester,
			d.resolution, d.instanceJKT, d.popMethod, d.popAud, d.challenge, d.decision, d.reason, d.tokenRequestID); err != nil {
			return mapError("record decisions", err)
		}
	}
	return nil
}

// tokenColumnsArrays holds token rows column by column (tokenColumns order).
type tokenColumnsArrays struct {
	kind, signature, requestID, clientID                              []string
	requestedAt                                                       []time.Time
	scopes, grantedScopes, audiences, grantedAudiences, form, session []string
	subject                                                           []string
	active                                                            []bool
	accessSignature, instanceJKT, dpopJKT                             []string
	expiresAt                                                         []*time.Time
}

func (t *tokenColumnsArrays) add(m *requestModel) {
	t.kind, t.signature = append(t.kind, m.Kind), append(t.signature, m.Signature)
	t.requestID, t.clientID = append(t.requestID, m.RequestID), append(t.clientID, m.ClientID)
	t.requestedAt = append(t.requestedAt, m.RequestedAt)
	t.scopes, t.grantedScopes = append(t.scopes, m.Scopes), append(t.grantedScopes, m.GrantedScopes)
	t.audiences, t.grantedAudiences = append(t.audiences, m.Audiences), append(t.grantedAudiences, m.GrantedAudiences)
	t.form, t.session, t.subject = append(t.form, m.Form), append(t.session, m.Session), append(t.subject, m.Subject)
	t.active = append(t.active, m.Active)
	t.accessSignature = append(t.accessSignature, m.AccessSignature)
	t.instanceJKT, t.dpopJKT = append(t.instanceJKT, m.InstanceJKT), append(t.dpopJKT, m.DPoPJKT)
	t.expiresAt = append(t.expiresAt, m.ExpiresAt)
}

// decisionColumnsArrays holds decisions column by column (decisionColumns order).
type decisionColumnsArrays struct {
	time                                                                    []time.Time
	endpoint, clientID, verifiedClientID, attester, resolution, instanceJKT []string
	popMethod, popAud, challenge, decision, reason, tokenRequestID          []string
}

func (a *decisionColumnsArrays) add(d *Decision, now time.Time) {
	d.stampTime(now)
	a.time = append(a.time, d.Time)
	a.endpoint, a.clientID = append(a.endpoint, d.Endpoint), append(a.clientID, d.ClientID)
	a.verifiedClientID, a.attester = append(a.verifiedClientID, d.VerifiedClientID), append(a.attester, d.Attester)
	a.resolution, a.instanceJKT = append(a.resolution, d.Resolution), append(a.instanceJKT, d.InstanceJKT)
	a.popMethod, a.popAud = append(a.popMethod, d.PoPMethod), append(a.popAud, d.PoPAud)
	a.challenge, a.decision = append(a.challenge, d.Challenge), append(a.decision, d.Decision)
	a.reason, a.tokenRequestID = append(a.reason, d.Reason), append(a.tokenRequestID, d.TokenRequestID)
}
