package storage

import (
	"context"
	"time"
)

// Decision is one audit record of an attestation outcome (profile §7). The JSON members are
// exactly profile §7's. Time is stored and returned in UTC, so it marshals as RFC 3339 with "Z"
// (there is deliberately no MarshalJSON: a struct embedding Decision would inherit it and lose
// its own members). ID is the record's cursor for DecisionFilter.BeforeID, not part of the JSON.
type Decision struct {
	ID               int64     `json:"-"`
	Time             time.Time `json:"time"`
	Endpoint         string    `json:"endpoint"`
	ClientID         string    `json:"client_id"`
	VerifiedClientID string    `json:"verified_client_id"`
	Attester         string    `json:"attester"`
	Resolution       string    `json:"resolution"`
	InstanceJKT      string    `json:"instance_jkt"`
	PoPMethod        string    `json:"pop_method"`
	PoPAud           string    `json:"pop_aud"`
	Challenge        string    `json:"challenge"`
	Decision         string    `json:"decision"`
	Reason           string    `json:"reason"`
	TokenRequestID   string    `json:"token_request_id"`
}

// DecisionFilter selects audit records for ListDecisions; zero fields do not filter.
type DecisionFilter struct {
	ClientID, Decision, Attester, Reason, InstanceJKT string
	Since, Until                                      time.Time // zero = unbounded; Since inclusive, Until exclusive
	Limit                                             int       // 0 = no limit
	BeforeID                                          int64     // cursor: only records with id < BeforeID (0 = none)
}

// RecordDecision appends one audit record in one INSERT, inside the context's transaction when
// there is one. A zero Time is set to now; d.ID is set to the new record's id.
func (s *Store) RecordDecision(ctx context.Context, d *Decision) error {
	if d == nil {
		return nil
	}
	d.stampTime(s.now())
	row := &decisionModel{
		Time: d.Time, Endpoint: d.Endpoint, ClientID: d.ClientID, VerifiedClientID: d.VerifiedClientID,
		Attester: d.Attester, Resolution: d.Resolution, InstanceJKT: d.InstanceJKT, PoPMethod: d.PoPMethod,
		PoPAud: d.PoPAud, Challenge: d.Challenge, Decision: d.Decision, Reason: d.Reason,
		TokenRequestID: d.TokenRequestID,
	}
	if err := s.conn(ctx).Create(row).Error; err != nil {
		return mapError("record decision", err)
	}
	d.ID, d.Time = row.ID, row.Time
	return nil
}

// ListDecisions returns the records matching f, newest first (id descending).
func (s *Store) ListDecisions(ctx context.Context, f DecisionFilter) ([]Decision, error) {
	q := s.conn(ctx).Model(&decisionModel{})
	for _, eq := range []struct{ col, val string }{
		{"client_id", f.ClientID}, {"decision", f.Decision}, {"attester", f.Attester},
		{"reason", f.Reason}, {"instance_jkt", f.InstanceJKT},
	} {
		if eq.val != "" {
			q = q.Where(eq.col+" = ?", eq.val)
		}
	}
	if !f.Since.IsZero() {
		q = q.Where(`"time" >= ?`, dbTime(f.Since))
	}
	if !f.Until.IsZero() {
		q = q.Where(`"time" < ?`, dbTime(f.Until))
	}
	if f.BeforeID > 0 {
		q = q.Where("id < ?", f.BeforeID)
	}
	if f.Limit > 0 {
		q = q.Limit(f.Limit)
	}
	var rows []decisionModel
	if err := q.Order("id DESC").Find(&rows).Error; err != nil {
		return nil, mapError("list decisions", err)
	}
	out := make([]Decision, len(rows))
	for i, r := range rows {
		out[i] = Decision{
			ID: r.ID, Time: r.Time.UTC(), Endpoint: r.Endpoint, ClientID: r.ClientID,
			VerifiedClientID: r.VerifiedClientID, Attester: r.Attester, Resolution: r.Resolution,
			InstanceJKT: r.InstanceJKT, PoPMethod: r.PoPMethod, PoPAud: r.PoPAud, Challenge: r.Challenge,
			Decision: r.Decision, Reason: r.Reason, TokenRequestID: r.TokenRequestID,
		}
	}
	return out, nil
}

// PruneDecisions deletes records older than before (audit.retention) and returns how many.
func (s *Store) PruneDecisions(ctx context.Context, before time.Time) (int64, error) {
	res := s.conn(ctx).Where(`"time" < ?`, dbTime(before)).Delete(&decisionModel{})
	if res.Error != nil {
		return 0, mapError("prune decisions", res.Error)
	}
	return res.RowsAffected, nil
}
