package console

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

const hostile = `<script>alert(1)</script>"'&`

var when = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func common(nav string) Common {
	return Common{Title: "T " + hostile, Nav: nav, CSRF: "csrf-token-value", Issuer: "https://as.example", Notice: "Saved " + hostile, Problems: []string{"id: " + hostile, "second"}}
}

func row() DecisionRow {
	return DecisionRow{Time: when, Endpoint: "/oauth2/token", ClientID: hostile, Attester: "acme", Resolution: "kid",
		InstanceJKT: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", InstanceURL: "/admin/ui/instances/NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
		PoPMethod: "attestation_pop_jwt", Challenge: "none", Decision: "rejected", Reason: "pop_signature_invalid",
		AttesterURL: "/admin/ui/decisions?attester=acme", ClientFilterURL: "javascript:alert(1)"}
}

func TestRender_EveryPage(t *testing.T) {
	pages := []struct {
		name   string
		render func(*bytes.Buffer) error
		want   []string
	}{
		{"login", func(b *bytes.Buffer) error {
			return RenderLogin(b, LoginPage{Action: "/admin/ui/login", CSRF: "login-csrf", Issuer: hostile, Error: "Wrong " + hostile})
		}, []string{`name="token"`, `type="password"`, `value="login-csrf"`, "Wrong &lt;script&gt;"}},
		{"dashboard", func(b *bytes.Buffer) error {
			return RenderDashboard(b, DashboardPage{Common: common(NavDashboard), Window: "24 hours", Accepted: 7, Rejected: 3,
				Chart:            NewBarChart("Chart "+hostile, []ChartSeries{{Label: hostile, Accepted: 7, Rejected: 3}}),
				RecentRejections: []DecisionRow{row()}, RecentChanges: []ChangeRow{{Time: when, Actor: "api", Action: "revoke", Resource: "instance", ResourceID: hostile, Detail: hostile}}})
		}, []string{"<svg", `role="img"`, "<title>Chart &lt;script&gt;", ">7<", ">3<", "pop_signature_invalid", `class="on">Dashboard`}},
		{"attesters", func(b *bytes.Buffer) error {
			return RenderAttesters(b, AttestersPage{Common: common(NavAttesters), AddAction: "/admin/ui/attesters",
				Attesters: []AttesterRow{{ID: "acme", Description: hostile, Enabled: false, Kids: []string{"k1", "k2"}, EnableAction: "/admin/ui/attesters/acme/enable", DeleteAction: "/x"}},
				Form:      AttesterForm{ID: hostile, Keys: hostile, Enabled: true}})
		}, []string{`action="/admin/ui/attesters/acme/enable"`, "kid: k1, k2", "disabled", `name="keys"`, "checked", "Add attester"}},
		{"clients", func(b *bytes.Buffer) error {
			return RenderClients(b, ClientsPage{Common: common(NavClients), Methods: []string{"none", "attest_jwt_client_auth"}, Grants: []string{"client_credentials"},
				Clients:   []ClientRow{{ID: "agent", Method: "attest_jwt_client_auth", Attested: true, AttestationNote: "vouched for by acme"}, {ID: "svc", Method: "client_secret_basic", AttestationNote: "not"}},
				Form:      ClientForm{Method: "attest_jwt_client_auth"},
				NewSecret: &IssuedSecret{ClientID: "svc", Secret: "s3cr3t"}})
		}, []string{`id="new-secret">s3cr3t<`, "shown once", `<option value="attest_jwt_client_auth" selected>`, "not attested", "vouched for by acme"}},
		{"decisions", func(b *bytes.Buffer) error {
			return RenderDecisions(b, DecisionsPage{Common: common(NavDecisions), Filter: DecisionFilter{Decision: "rejected", ClientID: hostile},
				Rows: []DecisionRow{row()}, NextURL: "/admin/ui/decisions?cursor=5", ExportCSV: "/admin/ui/decisions/export?format=csv"})
		}, []string{`<option value="rejected" selected>`, `href="/admin/ui/decisions?cursor=5"`, "…ZsRGC9Xs", "#ZgotmplZ"}},
		{"instance", func(b *bytes.Buffer) error {
			return RenderInstance(b, InstancePage{Common: common(NavInstances), JKT: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", Known: true,
				Accepted: 2, Rejected: 1, Reasons: []ReasonCount{{"pop_signature_invalid", 1}}, Attesters: []string{"acme"}, Clients: []string{"agent"},
				RevokeAction: "/admin/ui/instances/x/revoke", FirstSeen: when})
		}, []string{"Revoke this instance key", `action="/admin/ui/instances/x/revoke"`, "2026-03-14 15:09:26 UTC", "pop_signature_invalid"}},
		{"instance_revoked", func(b *bytes.Buffer) error {
			return RenderInstance(b, InstancePage{Common: common(NavInstances), JKT: "x", Known: true, Revoked: true, RevokedAt: when, RevokeReason: hostile})
		}, []string{"<strong>Revoked</strong> on 2026-03-14"}},
		{"instances", func(b *bytes.Buffer) error {
			return RenderInstances(b, InstancesPage{Common: common(NavInstances), Lookup: hostile, Revoked: []InstanceLink{{JKT: "abc", URL: "/admin/ui/instances/abc"}}})
		}, []string{`href="/admin/ui/instances/abc"`, `name="jkt"`}},
		{"changes", func(b *bytes.Buffer) error {
			return RenderChanges(b, ChangesPage{Common: common(NavChanges), Changes: []ChangeRow{{Time: when, Actor: "cli", Remote: "root@host", Action: "revoke", Resource: "instance", ResourceID: "abc", Target: "/admin/ui/instances/abc"}}, NextURL: "/admin/ui/changes?cursor=2"})
		}, []string{"root@host", `href="/admin/ui/instances/abc"`, "older"}},
		{"error_signed_out", func(b *bytes.Buffer) error {
			return RenderError(b, ErrorPage{Common: Common{Title: "Signed out"}, Status: 403, Message: hostile})
		}, []string{"Signed out", "&lt;script&gt;"}},
	}
	for _, tc := range pages {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.render(&b); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			if strings.Contains(out, "<script>") {
				t.Fatal("unescaped hostile input")
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Fatalf("page lacks %q:\n%s", w, out)
				}
			}
			if tc.name != "login" && tc.name != "error_signed_out" {
				if !strings.Contains(out, `name="csrf" value="csrf-token-value"`) || !strings.Contains(out, "2 problems to fix") || !strings.Contains(out, "Saved &lt;script&gt;") {
					t.Fatalf("page lacks the common parts:\n%s", out)
				}
			}
		})
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("closed") }

func TestRender_WriteErrorIsReturned(t *testing.T) {
	if err := RenderLogin(failingWriter{}, LoginPage{}); err == nil {
		t.Fatal("want the write error")
	}
	if err := render(&bytes.Buffer{}, "nope", nil); err == nil {
		t.Fatal("want an error for an unknown page")
	}
}

func TestNiceScale(t *testing.T) {
	for _, tc := range []struct {
		name            string
		v, top, step    int64
		wantTicksAtMost int
	}{
		{"zero", 0, 1, 1, 2},
		{"one", 1, 1, 1, 2},
		{"three", 3, 3, 1, 4},
		{"seven", 7, 8, 2, 5},
		{"twelve", 12, 15, 5, 4},
		{"hundred", 100, 100, 20, 6},
		{"odd", 987, 1000, 200, 6},
		{"huge", 1 << 40, 1500000000000, 500000000000, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top, step := niceScale(tc.v)
			if top != tc.top || step != tc.step {
				t.Fatalf("niceScale(%d) = %d, %d; want %d, %d", tc.v, top, step, tc.top, tc.step)
			}
			if n := int(top/step) + 1; n > tc.wantTicksAtMost {
				t.Fatalf("%d ticks", n)
			}
		})
	}
}

func TestNewBarChart(t *testing.T) {
	c := NewBarChart("t", []ChartSeries{
		{Label: "acme", Accepted: 100, Rejected: 1},
		{Label: strings.Repeat("x", 40), Accepted: 0, Rejected: 50},
	})
	if c.Empty || len(c.Rows) != 2 || c.Height != chartTopPad+2*chartRowHeight+chartBottomPad {
		t.Fatalf("chart = %+v", c)
	}
	a := c.Rows[0]
	if a.Accepted.W != c.PlotW || a.Accepted.X != c.PlotX {
		t.Fatalf("the largest bar spans the plot: %+v (plot %d)", a.Accepted, c.PlotW)
	}
	if a.Rejected.W < 2 {
		t.Fatalf("a non-zero count stays visible: %+v", a.Rejected)
	}
	if c.Rows[1].Accepted.W != 0 || c.Rows[1].Rejected.W != c.PlotW/2 {
		t.Fatalf("row 2 = %+v", c.Rows[1])
	}
	if r := []rune(c.Rows[1].Label); len(r) != chartMaxLabel || r[len(r)-1] != '…' || c.Rows[1].FullLabel != strings.Repeat("x", 40) {
		t.Fatalf("label %q", c.Rows[1].Label)
	}
	if first, last := c.Ticks[0], c.Ticks[len(c.Ticks)-1]; first.Label != "0" || last.Label != "100" || last.X != c.PlotX+c.PlotW {
		t.Fatalf("ticks %+v", c.Ticks)
	}
	for _, r := range c.Rows {
		if r.Accepted.Y+r.Accepted.H > r.Rejected.Y || r.Rejected.Y+r.Rejected.H > c.PlotY+c.PlotH {
			t.Fatalf("bars overlap or leave the plot: %+v", r)
		}
	}
	empty := NewBarChart("t", nil)
	if !empty.Empty || len(empty.Rows) != 0 || empty.PlotH != chartRowHeight {
		t.Fatalf("empty chart = %+v", empty)
	}
}
