package storage

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// The admin side of the audit trail (issue 5): every change made through the admin API, the
// console or the CLI is itself recorded (who, what, when), and the read models the console and
// the instance page need (per-instance summary, per-attester decision counts).

// AdminChange is one recorded administrative change. It never holds secrets or raw keys:
// Detail is a plain-words summary written by the caller.
type AdminChange struct {
	ID         int64     `json:"id"`
	Time       time.Time `json:"time"`
	Actor      string    `json:"actor"`            // channel and identity: "api", "console", "cli", or "config" (start-up loading)
	Remote     string    `json:"remote,omitempty"` // remote IP for api/console, OS user for cli
	Action     string    `json:"action"`           // create, update, delete, enable, disable, revoke, rotate_secret
	Resource   string    `json:"resource"`         // attester, client, instance
	ResourceID string    `json:"resource_id"`
	Detail     string    `json:"detail,omitempty"`
	RequestID  string    `json:"request_id,omitempty"`
}

// AdminChangeFilter selects admin changes; zero fields do not filter.
type AdminChangeFilter struct {
	Resource, ResourceID string
	Limit                int   // 0 = no limit
	BeforeID             int64 // cursor: only records with id < BeforeID (0 = none)
}

// adminChangeModel is one administrative change (table admin_changes).
type adminChangeModel struct {
	ID         int64     `gorm:"primaryKey;autoIncrement"`
	Time       time.Time `gorm:"not null;index"`
	Actor      string    `gorm:"size:64;not null"`
	Remote     string    `gorm:"size:255;not null"`
	Action     string    `gorm:"size:32;not null"`
	Resource   string    `gorm:"size:32;not null;index:idx_admin_changes_resource"`
	ResourceID string    `gorm:"size:255;not null;index:idx_admin_changes_resource"`
	Detail     string    `gorm:"type:text;not null"`
	RequestID  string    `gorm:"size:64;not null"`
}

func (adminChangeModel) TableName() string { return "admin_changes" }

// The admin_changes table is migrated with the rest of the schema. It is registered here so this
// file can be added without touching models.go; moving it into allModels changes nothing.
func init() { allModels = append(allModels, &adminChangeModel{}) }

// RecordAdminChange appends one admin change, inside the context's transaction when there is one
// (so a change and its record commit together). A zero Time is set to now; c.ID is set.
func (s *Store) RecordAdminChange(ctx context.Context, c *AdminChange) error {
	if c == nil || c.Action == "" || c.Resource == "" {
		return fmt.Errorf("%w: admin change needs an action and a resource", ErrInvalid)
	}
	t := c.Time
	if t.IsZero() {
		t = s.now()
	}
	row := &adminChangeModel{
		Time: dbTime(t), Actor: c.Actor, Remote: c.Remote, Action: c.Action, Resource: c.Resource,
		ResourceID: c.ResourceID, Detail: c.Detail, RequestID: c.RequestID,
	}
	if err := s.conn(ctx).Create(row).Error; err != nil {
		return mapError("record admin change", err)
	}
	c.ID, c.Time = row.ID, row.Time
	return nil
}

// ListAdminChanges returns the admin changes matching f, newest first (id descending).
func (s *Store) ListAdminChanges(ctx context.Context, f AdminChangeFilter) ([]AdminChange, error) {
	q := s.conn(ctx).Model(&adminChangeModel{})
	if f.Resource != "" {
		q = q.Where("resource = ?", f.Resource)
	}
	if f.ResourceID != "" {
		q = q.Where("resource_id = ?", f.ResourceID)
	}
	if f.BeforeID > 0 {
		q = q.Where("id < ?", f.BeforeID)
	}
	if f.Limit > 0 {
		q = q.Limit(f.Limit)
	}
	var rows []adminChangeModel
	if err := q.Order("id DESC").Find(&rows).Error; err != nil {
		return nil, mapError("list admin changes", err)
	}
	out := make([]AdminChange, len(rows))
	for i, r := range rows {
		out[i] = AdminChange{
			ID: r.ID, Time: r.Time.UTC(), Actor: r.Actor, Remote: r.Remote, Action: r.Action,
			Resource: r.Resource, ResourceID: r.ResourceID, Detail: r.Detail, RequestID: r.RequestID,
		}
	}
	return out, nil
}

// InstanceSummary is everything the database knows about one Client Instance Key, by its RFC
// 7638 thumbprint (ABCA-09 §1: "a valid instance is compromised after attestation").
type InstanceSummary struct {
	JKT                 string
	FirstSeen, LastSeen time.Time // zero when no decision mentions the key
	Attesters           []string  // attesters that vouched for it (non-empty values), sorted
	Clients             []string  // client ids it claimed, sorted
	Accepted, Rejected  int64
	Reasons             map[string]int64 // rejected decisions by reason
	Revoked             bool
	RevokedAt           time.Time
	RevokeReason        string
	ActiveTokens        int64 // active, unexpired access and refresh tokens bound to the key
}

// Known reports whether the key appears in any decision, revocation or token.
func (i *InstanceSummary) Known() bool {
	return i.Accepted+i.Rejected > 0 || i.Revoked || i.ActiveTokens > 0
}

// InstanceSummary gathers what is known about the instance key jkt from the audit decisions,
// the revoked-instance list and the token table. An unknown key is not an error: the summary
// reports Known() == false.
func (s *Store) InstanceSummary(ctx context.Context, jkt string) (*InstanceSummary, error) {
	if jkt == "" {
		return nil, fmt.Errorf("%w: instance key thumbprint is empty", ErrInvalid)
	}
	sum := &InstanceSummary{JKT: jkt, Reasons: map[string]int64{}}
	db := s.conn(ctx)

	var groups []struct {
		ClientID string
		Attester string
		Decision string
		Reason   string
		N        int64
		First    int64
		Last     int64
	}
	// First and last sighting by record id (ids grow with time); their times are read after.
	err := db.Model(&decisionModel{}).
		Select(`client_id, attester, decision, reason, COUNT(*) AS n, MIN(id) AS first, MAX(id) AS last`).
		Where("instance_jkt = ?", jkt).
		Group("client_id, attester, decision, reason").
		Scan(&groups).Error
	if err != nil {
		return nil, mapError("instance summary", err)
	}
	attesters, clients := map[string]bool{}, map[string]bool{}
	var firstID, lastID int64
	for _, g := range groups {
		if g.Attester != "" {
			attesters[g.Attester] = true
		}
		if g.ClientID != "" {
			clients[g.ClientID] = true
		}
		switch g.Decision {
		case "accepted":
			sum.Accepted += g.N
		default:
			sum.Rejected += g.N
			sum.Reasons[g.Reason] += g.N
		}
		if firstID == 0 || g.First < firstID {
			firstID = g.First
		}
		if g.Last > lastID {
			lastID = g.Last
		}
	}
	sum.Attesters, sum.Clients = sortedKeys(attesters), sortedKeys(clients)
	for _, p := range []struct {
		id   int64
		into *time.Time
	}{{firstID, &sum.FirstSeen}, {lastID, &sum.LastSeen}} {
		if p.id == 0 {
			continue
		}
		var row decisionModel
		if err := db.Select("id", "time").Where("id = ?", p.id).Take(&row).Error; err != nil {
			return nil, mapError("instance summary", err)
		}
		*p.into = row.Time.UTC()
	}

	var revoked []revokedInstanceModel
	if err := db.Where("jkt = ?", jkt).Limit(1).Find(&revoked).Error; err != nil {
		return nil, mapError("instance summary", err)
	}
	if len(revoked) == 1 {
		sum.Revoked, sum.RevokedAt, sum.RevokeReason = true, revoked[0].RevokedAt.UTC(), revoked[0].Reason
	}

	now := dbTime(s.now())
	err = db.Model(&requestModel{}).
		Where("instance_jkt = ? OR dpop_jkt = ?", jkt, jkt).
		Where("kind IN ?", []string{kindAccess, kindRefresh}).
		Where("active = ?", true).
		Where("expires_at IS NULL OR expires_at > ?", now).
		Count(&sum.ActiveTokens).Error
	if err != nil {
		return nil, mapError("instance summary", err)
	}
	return sum, nil
}

// AttesterCount is the number of accepted and rejected decisions of one attester; Attester is
// empty for decisions where no attester was resolved.
type AttesterCount struct {
	Attester           string
	Accepted, Rejected int64
}

// DecisionCountsByAttester counts decisions with since <= time < until per attester (zero
// bounds do not filter), ordered by attester id (the unresolved "" first).
func (s *Store) DecisionCountsByAttester(ctx context.Context, since, until time.Time) ([]AttesterCount, error) {
	q := s.conn(ctx).Model(&decisionModel{}).
		Select("attester, decision, COUNT(*) AS n").
		Group("attester, decision")
	if !since.IsZero() {
		q = q.Where(`"time" >= ?`, dbTime(since))
	}
	if !until.IsZero() {
		q = q.Where(`"time" < ?`, dbTime(until))
	}
	var rows []struct {
		Attester string
		Decision string
		N        int64
	}
	if err := q.Scan(&rows).Error; err != nil {
		return nil, mapError("decision counts", err)
	}
	by := map[string]*AttesterCount{}
	for _, r := range rows {
		c := by[r.Attester]
		if c == nil {
			c = &AttesterCount{Attester: r.Attester}
			by[r.Attester] = c
		}
		if r.Decision == "accepted" {
			c.Accepted += r.N
		} else {
			c.Rejected += r.N
		}
	}
	out := make([]AttesterCount, 0, len(by))
	for _, c := range by {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Attester < out[j].Attester })
	return out, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
