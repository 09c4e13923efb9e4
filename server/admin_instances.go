package server

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/authz/authz/storage"
)

// Admin client instances (issue 5; ABCA-09 §1, §9.3): everything known about one Client
// Instance Key, by its RFC 7638 SHA-256 thumbprint, and its revocation — "a valid instance is
// compromised after attestation". Revoking denies the key from then on (401 invalid_client,
// audit reason instance_revoked) on this replica at once and on the others within
// trustPollInterval, and revokes every token issued to it in the same transaction.

// maxRevokeReason bounds the free-text revocation reason.
const maxRevokeReason = 500

// recentInstanceDecisions is how many decisions the instance view shows.
const recentInstanceDecisions = 20

// instanceView is the admin API's answer about one instance key.
type instanceView struct {
	InstanceJKT  string           `json:"instance_jkt"`
	Known        bool             `json:"known"`
	FirstSeen    *time.Time       `json:"first_seen"`
	LastSeen     *time.Time       `json:"last_seen"`
	Attesters    []string         `json:"attesters"`
	Clients      []string         `json:"clients"`
	Decisions    map[string]int64 `json:"decisions"`
	Reasons      map[string]int64 `json:"rejection_reasons"`
	ActiveTokens int64            `json:"active_tokens"`
	Revoked      bool             `json:"revoked"`
	RevokedAt    *time.Time       `json:"revoked_at,omitempty"`
	RevokeReason string           `json:"revoke_reason,omitempty"`
	Recent       []decisionItem   `json:"recent_decisions"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// validJKT reports whether s looks like an RFC 7638 SHA-256 thumbprint in base64url (43
// characters, no padding).
func validJKT(s string) bool {
	if len(s) != 43 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) < 0
}

func jktProblem(jkt string) []string {
	return []string{fmt.Sprintf("instance_jkt: %q is not an RFC 7638 SHA-256 thumbprint (43 base64url characters)", jkt)}
}

// instanceSummary gathers the summary and the most recent decisions of jkt.
func (s *Server) instanceSummary(ctx context.Context, jkt string) (*storage.InstanceSummary, []storage.Decision, error) {
	sum, err := s.store.InstanceSummary(ctx, jkt)
	if err != nil {
		return nil, nil, err
	}
	recent, err := s.store.ListDecisions(ctx, storage.DecisionFilter{InstanceJKT: jkt, Limit: recentInstanceDecisions})
	if err != nil {
		return nil, nil, err
	}
	return sum, recent, nil
}

func viewInstance(sum *storage.InstanceSummary, recent []storage.Decision) instanceView {
	v := instanceView{
		InstanceJKT: sum.JKT, Known: sum.Known(), FirstSeen: timePtr(sum.FirstSeen), LastSeen: timePtr(sum.LastSeen),
		Attesters: orEmpty(sum.Attesters), Clients: orEmpty(sum.Clients),
		Decisions: map[string]int64{decisionAccepted: sum.Accepted, decisionRejected: sum.Rejected},
		Reasons:   sum.Reasons, ActiveTokens: sum.ActiveTokens, Revoked: sum.Revoked,
		RevokedAt: timePtr(sum.RevokedAt), RevokeReason: sum.RevokeReason, Recent: []decisionItem{},
	}
	if v.Reasons == nil {
		v.Reasons = map[string]int64{}
	}
	for _, d := range recent {
		v.Recent = append(v.Recent, itemOf(d))
	}
	return v
}

// adminListInstances lists the revoked instance keys.
func (s *Server) adminListInstances(c echo.Context) error {
	revoked, err := s.store.RevokedInstances(c.Request().Context())
	if err != nil {
		return s.adminStoreError(c, "revoked instances", err)
	}
	writeJSON(c.Response(), http.StatusOK, map[string]any{"revoked": orEmpty(revoked)})
	return nil
}

func (s *Server) adminGetInstance(c echo.Context) error {
	jkt := pathParam(c, "jkt")
	if !validJKT(jkt) {
		return writeProblems(c, jktProblem(jkt))
	}
	sum, recent, err := s.instanceSummary(c.Request().Context(), jkt)
	if err != nil {
		return s.adminStoreError(c, "instance", err)
	}
	if !sum.Known() {
		return adminNotFound(c, "Nothing about instance key "+jkt)
	}
	writeJSON(c.Response(), http.StatusOK, viewInstance(sum, recent))
	return nil
}

// adminRevokeInstance revokes an instance key. The body is optional: {"reason": "..."}. A key
// never seen may be revoked in advance; revoking twice is not an error.
func (s *Server) adminRevokeInstance(c echo.Context) error {
	ctx := c.Request().Context()
	jkt := pathParam(c, "jkt")
	var problems []string
	if !validJKT(jkt) {
		problems = append(problems, jktProblem(jkt)...)
	}
	var in struct {
		Reason string `json:"reason"`
	}
	if c.Request().ContentLength != 0 {
		problems = append(problems, decodeAdminJSON(c.Request(), &in)...)
	}
	if utf8.RuneCountInString(in.Reason) > maxRevokeReason {
		problems = append(problems, fmt.Sprintf("reason: at most %d characters", maxRevokeReason))
	}
	if len(problems) > 0 {
		return writeProblems(c, problems)
	}
	if err := s.revokeInstance(ctx, s.actorOf(c, actorAPI), jkt, in.Reason); err != nil {
		return s.adminStoreError(c, "instance", err)
	}
	sum, recent, err := s.instanceSummary(ctx, jkt)
	if err != nil {
		return s.adminStoreError(c, "instance", err)
	}
	writeJSON(c.Response(), http.StatusOK, viewInstance(sum, recent))
	return nil
}

// revokeInstance revokes jkt and its tokens with the change record in one transaction, then
// reloads this replica's revoked set so the very next request with the key is refused.
func (s *Server) revokeInstance(ctx context.Context, who adminActor, jkt, reason string) error {
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.RevokeInstance(ctx, jkt, reason); err != nil {
			return err
		}
		detail := "instance key revoked with every token issued to it"
		if reason != "" {
			detail += "; reason: " + reason
		}
		return s.recordChange(ctx, who, "revoke", "instance", jkt, detail)
	})
	if err != nil {
		return err
	}
	s.log.WarnContext(ctx, "admin: client instance key revoked", "instance_jkt", jkt, "reason", reason, "actor", who.Actor, "remote", who.Remote)
	s.reloadTrust(ctx)
	return nil
}

// adminListChanges lists the admin change log, newest first, with cursor pagination.
func (s *Server) adminListChanges(c echo.Context) error {
	q := c.Request().URL.Query()
	var problems []string
	for name := range q {
		switch name {
		case "resource", "resource_id", "limit", "cursor":
		default:
			problems = append(problems, name+": unknown parameter (resource, resource_id, limit, cursor)")
		}
	}
	sort.Strings(problems)
	limit, problem := parseLimit(q.Get("limit"), decisionsPageDefault, decisionsPageMax)
	if problem != "" {
		problems = append(problems, problem)
	}
	cursor, ok := parseCursor(q.Get("cursor"))
	if !ok {
		problems = append(problems, "cursor: not a cursor returned by this API (next_cursor)")
	}
	if len(problems) > 0 {
		return writeProblems(c, problems)
	}
	rows, err := s.store.ListAdminChanges(c.Request().Context(), storage.AdminChangeFilter{
		Resource: q.Get("resource"), ResourceID: q.Get("resource_id"), Limit: limit + 1, BeforeID: cursor,
	})
	if err != nil {
		return s.adminStoreError(c, "changes", err)
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		next = strconv.FormatInt(rows[limit-1].ID, 10)
	}
	if rows == nil {
		rows = []storage.AdminChange{}
	}
	writeJSON(c.Response(), http.StatusOK, map[string]any{"changes": rows, "next_cursor": next})
	return nil
}

// truncateRunes cuts s to at most n characters, never inside a UTF-8 sequence (a lone lead byte
// is invalid text, which PostgreSQL refuses to store).
func truncateRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}
