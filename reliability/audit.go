package reliability

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for reading a PostgreSQL store directly
	"github.com/mattn/go-sqlite3"      // database/sql driver "sqlite3", for reading a SQLite store directly
)

// OpenDB opens authz's database for direct reads, bypassing storage/ on purpose: the checks
// below must not trust the code they check. driver is authz's (sqlite | postgres).
func OpenDB(driver, dsn string) (*sql.DB, error) {
	name := "sqlite3"
	switch driver {
	case "sqlite", "":
		dsn = "file:" + dsn + "?_busy_timeout=5000"
	case "postgres":
		name = "pgx"
	default:
		return nil, fmt.Errorf("reliability: unknown driver %q", driver)
	}
	db, err := sql.Open(name, dsn)
	if err != nil {
		return nil, fmt.Errorf("reliability: open %s: %w", driver, err)
	}
	return db, nil
}

// AuditReport is what CheckAudit found.
type AuditReport struct {
	Grants            int      // distinct access-token grants (fosite request ids) of the checked clients
	AcceptedWithToken int      // accepted decisions naming a token_request_id
	Violations        []string // empty when profile §7 holds
}

// CheckAudit checks profile §7 and the single-transaction rule of the token endpoint directly in
// the tables storage/ writes (oauth2_requests, audit_decisions): every access-token grant of one
// of clientIDs has exactly one accepted decision carrying its token_request_id, and no accepted
// decision with a token_request_id lacks its token.
//
// Both tables are read in one read-only transaction, so a server still committing grants (a
// batch already being written when its clients gave up commits all the same) cannot put a
// decision in the second read whose token missed the first: PostgreSQL at REPEATABLE READ,
// SQLite (WAL) in one read transaction, are one snapshot.
func CheckAudit(ctx context.Context, db *sql.DB, clientIDs ...string) (*AuditReport, error) {
	opts := &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
	if _, ok := db.Driver().(*sqlite3.SQLiteDriver); ok {
		opts = nil // mattn/go-sqlite3: the default (deferred) transaction is already a snapshot in WAL mode
	}
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("reliability: begin snapshot: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	grants := map[string]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT request_id, client_id FROM oauth2_requests WHERE kind = 'access'`)
	if err != nil {
		return nil, fmt.Errorf("reliability: read grants: %w", err)
	}
	for rows.Next() {
		var id, client string
		if err := rows.Scan(&id, &client); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reliability: scan grant: %w", err)
		}
		if slices.Contains(clientIDs, client) {
			grants[id] = true
		}
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("reliability: read grants: %w", err)
	}

	accepted := map[string]int{}
	rows, err = tx.QueryContext(ctx, `SELECT token_request_id, COUNT(*) FROM audit_decisions
		WHERE decision = 'accepted' AND token_request_id <> '' GROUP BY token_request_id`)
	if err != nil {
		return nil, fmt.Errorf("reliability: read decisions: %w", err)
	}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reliability: scan decision: %w", err)
		}
		accepted[id] = n
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("reliability: read decisions: %w", err)
	}

	rep := &AuditReport{Grants: len(grants)}
	for id := range grants {
		if n := accepted[id]; n != 1 {
			rep.Violations = append(rep.Violations, fmt.Sprintf("grant %s has %d accepted decisions, want exactly 1", id, n))
		}
	}
	for id, n := range accepted {
		rep.AcceptedWithToken += n
		if !grants[id] {
			rep.Violations = append(rep.Violations, fmt.Sprintf("accepted decision with token_request_id %s has no access token", id))
		}
	}
	slices.Sort(rep.Violations)
	return rep, nil
}

// TokenKey is how storage/ keys an access token's row: the SHA-256 hex of the token's signature
// (for a JWT, its third segment).
func TokenKey(token string) string {
	sig := token
	if i := strings.LastIndexByte(token, '.'); i >= 0 {
		sig = token[i+1:]
	}
	sum := sha256.Sum256([]byte(sig))
	return hex.EncodeToString(sum[:])
}

// AccessTokenStored reports whether an access token's row (kind 'access', TokenKey) exists.
func AccessTokenStored(ctx context.Context, db *sql.DB, driver, token string) (bool, error) {
	q := `SELECT COUNT(*) FROM oauth2_requests WHERE kind = 'access' AND signature = ?`
	if driver == "postgres" {
		q = `SELECT COUNT(*) FROM oauth2_requests WHERE kind = 'access' AND signature = $1`
	}
	var n int
	if err := db.QueryRowContext(ctx, q, TokenKey(token)).Scan(&n); err != nil {
		return false, fmt.Errorf("reliability: look up token: %w", err)
	}
	return n == 1, nil
}

// StoredAccessTokens returns the TokenKey of every stored access token.
func StoredAccessTokens(ctx context.Context, db *sql.DB) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT signature FROM oauth2_requests WHERE kind = 'access'`)
	if err != nil {
		return nil, fmt.Errorf("reliability: read tokens: %w", err)
	}
	defer rows.Close()
	keys := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("reliability: scan token: %w", err)
		}
		keys[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reliability: read tokens: %w", err)
	}
	return keys, nil
}

// CountDecisions counts the audit decisions recorded for endpoint (profile §7).
func CountDecisions(ctx context.Context, db *sql.DB, driver, endpoint string) (int, error) {
	q := `SELECT COUNT(*) FROM audit_decisions WHERE endpoint = ?`
	if driver == "postgres" {
		q = `SELECT COUNT(*) FROM audit_decisions WHERE endpoint = $1`
	}
	var n int
	if err := db.QueryRowContext(ctx, q, endpoint).Scan(&n); err != nil {
		return 0, fmt.Errorf("reliability: count decisions: %w", err)
	}
	return n, nil
}
