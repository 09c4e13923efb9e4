package storage

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ory/fosite"
)

// TestAdminAudit runs the admin-audit cases on every backend (PostgreSQL when
// AUTHZ_TEST_POSTGRES_DSN is set; required when CI=true).
func TestAdminAudit(t *testing.T) {
	cases := []struct {
		name string
		fn   func(t *testing.T, b backend)
	}{
		{"admin_changes_record_list_filter_cursor", testAdminChanges},
		{"admin_change_rolls_back_with_its_transaction", testAdminChangeInTx},
		{"admin_change_needs_action_and_resource", testAdminChangeInvalid},
		{"instance_summary", testInstanceSummary},
		{"instance_summary_unknown_key", testInstanceSummaryUnknown},
		{"decision_counts_by_attester", testDecisionCountsByAttester},
	}
	t.Run("sqlite", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) { c.fn(t, sqliteBackend()) })
		}
	})
	t.Run("postgres", func(t *testing.T) {
		b, ok := postgresBackend(t)
		if !ok {
			return
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) { c.fn(t, b) })
		}
	})
}

func testAdminChanges(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	ctx := context.Background()
	in := []AdminChange{
		{Actor: "api", Remote: "127.0.0.1", Action: "create", Resource: "attester", ResourceID: "acme", Detail: "created"},
		{Actor: "console", Remote: "127.0.0.1", Action: "disable", Resource: "attester", ResourceID: "acme"},
		{Actor: "cli", Remote: "root", Action: "revoke", Resource: "instance", ResourceID: "jkt-1", RequestID: "r1"},
	}
	for i := range in {
		clock.Advance(time.Second)
		if err := s.RecordAdminChange(ctx, &in[i]); err != nil {
			t.Fatal(err)
		}
		if in[i].ID == 0 || !in[i].Time.Equal(dbTime(clock.Now())) {
			t.Fatalf("record %d: id %d time %v", i, in[i].ID, in[i].Time)
		}
	}
	all, err := s.ListAdminChanges(ctx, AdminChangeFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].Action != "revoke" || all[2].Action != "create" || all[0].Remote != "root" || all[0].RequestID != "r1" {
		t.Fatalf("list = %+v", all)
	}
	got, err := s.ListAdminChanges(ctx, AdminChangeFilter{Resource: "attester", ResourceID: "acme", Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Action != "disable" {
		t.Fatalf("filtered = %+v", got)
	}
	next, err := s.ListAdminChanges(ctx, AdminChangeFilter{Resource: "attester", BeforeID: got[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(next) != 1 || next[0].Action != "create" || next[0].Detail != "created" {
		t.Fatalf("next page = %+v", next)
	}
}

func testAdminChangeInTx(t *testing.T, b backend) {
	s, _ := newStore(t, b)
	ctx := context.Background()
	boom := errors.New("boom")
	err := s.InTx(ctx, func(ctx context.Context) error {
		if err := s.RecordAdminChange(ctx, &AdminChange{Actor: "api", Action: "delete", Resource: "client", ResourceID: "x"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v", err)
	}
	all, err := s.ListAdminChanges(ctx, AdminChangeFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 0 {
		t.Fatalf("rolled-back change was kept: %+v", all)
	}
}

func testAdminChangeInvalid(t *testing.T, b backend) {
	s, _ := newStore(t, b)
	for _, c := range []*AdminChange{nil, {Resource: "client"}, {Action: "create"}} {
		if err := s.RecordAdminChange(context.Background(), c); !errors.Is(err, ErrInvalid) {
			t.Fatalf("RecordAdminChange(%+v) = %v, want ErrInvalid", c, err)
		}
	}
}

// accessToken stores an access token bound to jkt and returns its signature.
func accessToken(t *testing.T, s *Store, clientID, signature, jkt string, exp time.Time) {
	t.Helper()
	client, err := s.GetClientRecord(context.Background(), clientID)
	if err != nil {
		t.Fatal(err)
	}
	sess := NewSession()
	sess.InstanceJKT = jkt
	sess.ExpiresAt[fosite.AccessToken] = exp
	req := fosite.NewRequest()
	req.ID = "grant-" + signature
	req.Client = client
	req.Session = sess
	if err := s.CreateAccessTokenSession(context.Background(), signature, req); err != nil {
		t.Fatal(err)
	}
}

func testInstanceSummary(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	ctx := context.Background()
	if err := s.UpsertClient(ctx, testClient(t, "agent")); err != nil {
		t.Fatal(err)
	}
	const jkt = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	start := clock.Now()
	for _, d := range []Decision{
		{ClientID: "agent", Attester: "acme", InstanceJKT: jkt, Decision: "accepted", Reason: "ok"},
		{ClientID: "agent", Attester: "acme", InstanceJKT: jkt, Decision: "accepted", Reason: "ok"},
		{ClientID: "other", Attester: "", InstanceJKT: jkt, Decision: "rejected", Reason: "client_id_mismatch"},
		{ClientID: "agent", Attester: "beta", InstanceJKT: jkt, Decision: "rejected", Reason: "pop_signature_invalid"},
		{ClientID: "agent", Attester: "acme", InstanceJKT: "someone-else", Decision: "accepted", Reason: "ok"},
	} {
		clock.Advance(time.Minute)
		d := d
		if err := s.RecordDecision(ctx, &d); err != nil {
			t.Fatal(err)
		}
	}
	accessToken(t, s, "agent", "sig-live", jkt, clock.Now().Add(time.Hour))
	accessToken(t, s, "agent", "sig-expired", jkt, clock.Now().Add(-time.Hour))
	accessToken(t, s, "agent", "sig-other", "someone-else", clock.Now().Add(time.Hour))

	sum, err := s.InstanceSummary(ctx, jkt)
	if err != nil {
		t.Fatal(err)
	}
	want := &InstanceSummary{
		JKT: jkt, FirstSeen: dbTime(start.Add(time.Minute)), LastSeen: dbTime(start.Add(4 * time.Minute)),
		Attesters: []string{"acme", "beta"}, Clients: []string{"agent", "other"},
		Accepted: 2, Rejected: 2, Reasons: map[string]int64{"client_id_mismatch": 1, "pop_signature_invalid": 1},
		ActiveTokens: 1,
	}
	if !reflect.DeepEqual(sum, want) {
		t.Fatalf("summary =\n%+v\nwant\n%+v", sum, want)
	}
	if !sum.Known() {
		t.Fatal("Known() = false")
	}

	clock.Advance(time.Minute)
	if err := s.RevokeInstance(ctx, jkt, "laptop stolen"); err != nil {
		t.Fatal(err)
	}
	sum, err = s.InstanceSummary(ctx, jkt)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Revoked || sum.RevokeReason != "laptop stolen" || !sum.RevokedAt.Equal(dbTime(clock.Now())) || sum.ActiveTokens != 0 {
		t.Fatalf("after revoke: %+v", sum)
	}
	other, err := s.InstanceSummary(ctx, "someone-else")
	if err != nil {
		t.Fatal(err)
	}
	if other.Revoked || other.ActiveTokens != 1 {
		t.Fatalf("another instance was touched: %+v", other)
	}
}

func testInstanceSummaryUnknown(t *testing.T, b backend) {
	s, _ := newStore(t, b)
	sum, err := s.InstanceSummary(context.Background(), "never-seen")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Known() || !sum.FirstSeen.IsZero() || len(sum.Attesters) != 0 || len(sum.Clients) != 0 {
		t.Fatalf("summary of an unknown key = %+v", sum)
	}
	if _, err := s.InstanceSummary(context.Background(), ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty jkt: %v, want ErrInvalid", err)
	}
}

func testDecisionCountsByAttester(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	ctx := context.Background()
	old := Decision{Attester: "acme", Decision: "accepted", Reason: "ok"}
	if err := s.RecordDecision(ctx, &old); err != nil {
		t.Fatal(err)
	}
	clock.Advance(48 * time.Hour)
	since := clock.Now().Add(-24 * time.Hour)
	for _, d := range []Decision{
		{Attester: "acme", Decision: "accepted", Reason: "ok"},
		{Attester: "acme", Decision: "accepted", Reason: "ok"},
		{Attester: "acme", Decision: "rejected", Reason: "pop_signature_invalid"},
		{Attester: "beta", Decision: "rejected", Reason: "attestation_expired"},
		{Attester: "", Decision: "rejected", Reason: "attestation_unknown_key"},
	} {
		d := d
		if err := s.RecordDecision(ctx, &d); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.DecisionCountsByAttester(ctx, since, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := []AttesterCount{{"", 0, 1}, {"acme", 2, 1}, {"beta", 0, 1}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("counts = %+v, want %+v", got, want)
	}
	all, err := s.DecisionCountsByAttester(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if all[1].Accepted != 3 {
		t.Fatalf("unbounded counts = %+v", all)
	}
}
