package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

//go:embed html/*.html
var files embed.FS

// Navigation sections (Common.Nav) — the highlighted tab.
const (
	NavDashboard = "dashboard"
	NavAttesters = "attesters"
	NavClients   = "clients"
	NavDecisions = "decisions"
	NavInstances = "instances"
	NavChanges   = "changes"
)

// Common is what every signed-in page shows: the title, the active tab, the CSRF token of the
// sign-out form (and of the page's own forms), and an optional notice or list of problems.
type Common struct {
	Title    string
	Nav      string
	CSRF     string
	Issuer   string
	Notice   string   // a success message, e.g. "Attester acme saved."
	Problems []string // every problem of a refused form, listed
}

// LoginPage is the sign-in form: the admin token in a password field.
type LoginPage struct {
	Action string
	CSRF   string
	Issuer string
	Error  string
}

// DashboardPage summarises the last Window of attestation decisions.
type DashboardPage struct {
	Common
	Window             string // e.g. "24 hours"
	Chart              BarChart
	Accepted, Rejected int64
	Attesters          int
	EnabledAttesters   int
	Clients            int
	AttestedClients    int
	RevokedInstances   int
	RecentRejections   []DecisionRow
	RecentChanges      []ChangeRow
}

// AttesterRow is one trusted attester in the list.
type AttesterRow struct {
	ID, Description, Source string
	Enabled                 bool
	KeySources              string   // e.g. "JWK set, jwks_uri"
	Kids                    []string // key ids of the static JWK set
	RequiredClaims          string   // JSON, or ""
	UpdatedAt               time.Time
	EnableAction            string // form actions (POST)
	DisableAction           string
	DeleteAction            string
	DecisionsURL            string
}

// AttesterForm is the "add an attester" form, refilled after a refused submission.
type AttesterForm struct {
	ID, Description string
	Keys            string // a JWK set, one JWK, PEM public keys or PEM certificates (x5c roots)
	JWKSURI         string
	RequiredClaims  string // JSON object
	Enabled         bool
}

// AttestersPage lists the attesters and offers the add form.
type AttestersPage struct {
	Common
	Attesters []AttesterRow
	Form      AttesterForm
	AddAction string
}

// ClientRow is one registered client in the list.
type ClientRow struct {
	ID, Description, Method string
	Attested                bool
	AttestationNote         string // plain words: who may vouch for it, or that it is not attested
	GrantTypes, Scopes      []string
	RedirectURIs            []string
	Source                  string
	DeleteAction            string
	DecisionsURL            string
}

// ClientForm is the "register a client" form.
type ClientForm struct {
	ClientID, Description, Method string
	GrantTypes, Scopes            string // space- or comma-separated
	RedirectURIs, Attesters       string
	RequireAttestation            bool
}

// IssuedSecret is a newly generated client secret, shown once.
type IssuedSecret struct {
	ClientID, Secret string
}

// ClientsPage lists the clients and offers the register form.
type ClientsPage struct {
	Common
	Clients   []ClientRow
	Form      ClientForm
	Methods   []string
	Grants    []string
	NewSecret *IssuedSecret
	AddAction string
}

// DecisionFilter is the decisions view's filter form (query parameters).
type DecisionFilter struct {
	ClientID, Attester, Decision, Reason, InstanceJKT, Since, Until string
}

// DecisionRow is one audit decision (profile §7) as shown.
type DecisionRow struct {
	Time                         time.Time
	Endpoint                     string
	ClientID, VerifiedClientID   string
	Attester, Resolution         string
	InstanceJKT, InstanceURL     string
	PoPMethod, Challenge         string
	Decision, Reason             string
	AttesterURL, ClientFilterURL string
}

// DecisionsPage is the filtered, paginated decisions view.
type DecisionsPage struct {
	Common
	Filter     DecisionFilter
	Rows       []DecisionRow
	NextURL    string // older records, "" on the last page
	FirstURL   string // newest page, "" when on it
	ExportCSV  string
	ExportJSON string
}

// ReasonCount is how often one rejection reason occurred.
type ReasonCount struct {
	Reason string
	Count  int64
}

// InstancePage is everything known about one Client Instance Key.
type InstancePage struct {
	Common
	JKT                 string
	Known               bool
	FirstSeen, LastSeen time.Time
	Attesters, Clients  []string
	Accepted, Rejected  int64
	Reasons             []ReasonCount
	Revoked             bool
	RevokedAt           time.Time
	RevokeReason        string
	ActiveTokens        int64
	Recent              []DecisionRow
	RevokeAction        string
	DecisionsURL        string
}

// InstancesPage is the instance lookup form and the list of revoked instance keys.
type InstancesPage struct {
	Common
	Lookup  string
	Revoked []InstanceLink
}

// InstanceLink points at one instance page.
type InstanceLink struct {
	JKT, URL string
}

// ChangeRow is one recorded admin change.
type ChangeRow struct {
	Time                                 time.Time
	Actor, Remote, Action                string
	Resource, ResourceID, Detail, Target string // Target: a link to the resource, or ""
}

// ChangesPage is the admin change log.
type ChangesPage struct {
	Common
	Changes []ChangeRow
	NextURL string
}

// ErrorPage explains a failure in plain words.
type ErrorPage struct {
	Common
	Status  int
	Message string
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"short": func(jkt string) string {
		if len(jkt) <= 12 {
			return jkt
		}
		return "…" + jkt[len(jkt)-8:]
	},
	"join": strings.Join,
}

var pages = map[string]*template.Template{}

func init() {
	for _, name := range []string{"login", "dashboard", "attesters", "clients", "decisions", "instance", "instances", "changes", "error"} {
		pages[name] = template.Must(template.New(name+".html").Funcs(funcs).ParseFS(files, "html/layout.html", "html/"+name+".html"))
	}
}

// render executes a page into a buffer first, so a failure never leaves half a page.
func render(w io.Writer, name string, data any) error {
	t, ok := pages[name]
	if !ok {
		return fmt.Errorf("console: no page %q", name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name+".html", data); err != nil {
		return fmt.Errorf("console: render %s: %w", name, err)
	}
	if _, err := buf.WriteTo(w); err != nil {
		return fmt.Errorf("console: write %s: %w", name, err)
	}
	return nil
}

// RenderLogin writes the sign-in page.
func RenderLogin(w io.Writer, p LoginPage) error { return render(w, "login", p) }

// RenderDashboard writes the dashboard.
func RenderDashboard(w io.Writer, p DashboardPage) error { return render(w, "dashboard", p) }

// RenderAttesters writes the attesters page.
func RenderAttesters(w io.Writer, p AttestersPage) error { return render(w, "attesters", p) }

// RenderClients writes the clients page.
func RenderClients(w io.Writer, p ClientsPage) error { return render(w, "clients", p) }

// RenderDecisions writes the decisions view.
func RenderDecisions(w io.Writer, p DecisionsPage) error { return render(w, "decisions", p) }

// RenderInstance writes one instance key's page.
func RenderInstance(w io.Writer, p InstancePage) error { return render(w, "instance", p) }

// RenderInstances writes the instance lookup page.
func RenderInstances(w io.Writer, p InstancesPage) error { return render(w, "instances", p) }

// RenderChanges writes the admin change log.
func RenderChanges(w io.Writer, p ChangesPage) error { return render(w, "changes", p) }

// RenderError writes an error page.
func RenderError(w io.Writer, p ErrorPage) error { return render(w, "error", p) }
