package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/authz/authz/config"
	"github.com/authz/authz/storage"
	"github.com/authz/authz/templates/console"
)

// The console's pages: dashboard, attesters, clients, decisions, instances, change log.

// noAttesterLabel names, in the chart, the decisions where no attester was resolved.
const noAttesterLabel = "(no attester resolved)"

func (s *Server) consoleDashboard(c echo.Context) error {
	ctx := c.Request().Context()
	now := time.Now()
	counts, err := s.store.DecisionCountsByAttester(ctx, now.Add(-dashboardWindow), time.Time{})
	if err != nil {
		return s.consoleStoreError(c, err)
	}
	attesters, err := s.store.ListAttesters(ctx)
	if err != nil {
		return s.consoleStoreError(c, err)
	}
	clients, err := s.store.ListClients(ctx)
	if err != nil {
		return s.consoleStoreError(c, err)
	}
	revoked, err := s.store.RevokedInstances(ctx)
	if err != nil {
		return s.consoleStoreError(c, err)
	}
	rejections, err := s.store.ListDecisions(ctx, storage.DecisionFilter{Decision: decisionRejected, Limit: 10})
	if err != nil {
		return s.consoleStoreError(c, err)
	}
	changes, err := s.store.ListAdminChanges(ctx, storage.AdminChangeFilter{Limit: 8})
	if err != nil {
		return s.consoleStoreError(c, err)
	}
	p := console.DashboardPage{
		Common: s.common(c, "Dashboard", console.NavDashboard), Window: "24 hours",
		Attesters: len(attesters), Clients: len(clients), RevokedInstances: len(revoked),
		RecentRejections: decisionRows(rejections), RecentChanges: changeRows(changes),
	}
	p.Chart = console.NewBarChart("Accepted and rejected attestations per attester, last 24 hours", chartSeries(attesters, counts))
	for _, ct := range counts {
		p.Accepted += ct.Accepted
		p.Rejected += ct.Rejected
	}
	for _, a := range attesters {
		if a.Enabled {
			p.EnabledAttesters++
		}
	}
	for i := range clients {
		if clientAttested(&clients[i]) {
			p.AttestedClients++
		}
	}
	return console.RenderDashboard(html(c, http.StatusOK), p)
}

// chartSeries lists every attester (zero counts included, so a silent attester shows), then
// attesters that only appear in decisions (since removed), then unresolved decisions.
func chartSeries(attesters []storage.Attester, counts []storage.AttesterCount) []console.ChartSeries {
	by := map[string]storage.AttesterCount{}
	for _, ct := range counts {
		by[ct.Attester] = ct
	}
	var out []console.ChartSeries
	seen := map[string]bool{}
	for _, a := range attesters {
		ct := by[a.ID]
		out = append(out, console.ChartSeries{Label: a.ID, Accepted: ct.Accepted, Rejected: ct.Rejected})
		seen[a.ID] = true
	}
	var gone []string
	for id := range by {
		if id != "" && !seen[id] {
			gone = append(gone, id)
		}
	}
	sort.Strings(gone)
	for _, id := range gone {
		out = append(out, console.ChartSeries{Label: id, Accepted: by[id].Accepted, Rejected: by[id].Rejected})
	}
	if ct, ok := by[""]; ok {
		out = append(out, console.ChartSeries{Label: noAttesterLabel, Accepted: ct.Accepted, Rejected: ct.Rejected})
	}
	return out
}

// attestersPage builds the attesters page around form and problems.
func (s *Server) attestersPage(c echo.Context, form console.AttesterForm, problems []string) (console.AttestersPage, error) {
	list, err := s.store.ListAttesters(c.Request().Context())
	if err != nil {
		return console.AttestersPage{}, err
	}
	p := console.AttestersPage{Common: s.common(c, "Attesters", console.NavAttesters), Form: form, AddAction: consolePath + "/attesters"}
	p.Problems = problems
	for i := range list {
		a := &list[i]
		base := consolePath + "/attesters/" + url.PathEscape(a.ID)
		kids, _ := kidsOf(a)
		p.Attesters = append(p.Attesters, console.AttesterRow{
			ID: a.ID, Description: a.Description, Source: a.Source, Enabled: a.Enabled, KeySources: KeySources(a),
			Kids: sortedSet(kids), RequiredClaims: string(a.RequiredClaims), UpdatedAt: a.UpdatedAt,
			EnableAction: base + "/enable", DisableAction: base + "/disable", DeleteAction: base + "/delete",
			DecisionsURL: decisionsURL("attester", a.ID),
		})
	}
	return p, nil
}

func (s *Server) consoleAttesters(c echo.Context) error {
	p, err := s.attestersPage(c, console.AttesterForm{Enabled: true}, nil)
	if err != nil {
		return s.consoleStoreError(c, err)
	}
	return console.RenderAttesters(html(c, http.StatusOK), p)
}

// consoleAddAttester adds an attester from the pasted keys (validated exactly as the API does).
func (s *Server) consoleAddAttester(c echo.Context) error {
	f := c.Request().PostForm
	form := console.AttesterForm{
		ID: strings.TrimSpace(f.Get("id")), Description: strings.TrimSpace(f.Get("description")), Keys: f.Get("keys"),
		JWKSURI: strings.TrimSpace(f.Get("jwks_uri")), RequiredClaims: strings.TrimSpace(f.Get("required_claims")),
		Enabled: f.Get("enabled") == "true",
	}
	jwks, roots, problems := parsePastedKeys(form.Keys)
	rec := &storage.Attester{ID: form.ID, Description: form.Description, JWKS: jwks, X5CRoots: roots,
		JWKSURI: form.JWKSURI, Enabled: form.Enabled, Source: "console"}
	if form.RequiredClaims != "" {
		rec.RequiredClaims = []byte(form.RequiredClaims)
	}
	if len(problems) == 0 {
		var err error
		_, problems, err = s.saveAttester(c.Request().Context(), s.consoleActor(c), rec, saveCreate)
		switch {
		case errors.Is(err, storage.ErrConflict):
			problems = []string{fmt.Sprintf("id: attester %q already exists", rec.ID)}
		case err != nil:
			return s.consoleStoreError(c, err)
		}
	}
	if len(problems) > 0 {
		p, err := s.attestersPage(c, form, problems)
		if err != nil {
			return s.consoleStoreError(c, err)
		}
		return console.RenderAttesters(html(c, http.StatusBadRequest), p)
	}
	state := "enabled: it is trusted from now on"
	if !rec.Enabled {
		state = "disabled: enable it to trust it"
	}
	return s.redirectWithNotice(c, consolePath+"/attesters", fmt.Sprintf("Attester %s added (%s; %s).", rec.ID, KeySources(rec), state))
}

// consoleAttesterAction enables, disables or removes an attester.
func (s *Server) consoleAttesterAction(c echo.Context) error {
	ctx := c.Request().Context()
	id := pathParam(c, "id")
	who := s.consoleActor(c)
	switch action := c.Param("action"); action {
	case "enable", "disable":
		rec, err := s.store.GetAttester(ctx, id)
		if err != nil {
			return s.consoleStoreError(c, err)
		}
		rec.Enabled = action == "enable"
		_, problems, err := s.saveAttester(ctx, who, rec, saveUpdate)
		if err != nil {
			return s.consoleStoreError(c, err)
		}
		if len(problems) > 0 {
			p, err := s.attestersPage(c, console.AttesterForm{Enabled: true}, problems)
			if err != nil {
				return s.consoleStoreError(c, err)
			}
			return console.RenderAttesters(html(c, http.StatusBadRequest), p)
		}
		return s.redirectWithNotice(c, consolePath+"/attesters", fmt.Sprintf("Attester %s %sd on every replica within seconds.", id, action))
	case "delete":
		if err := s.deleteAttester(ctx, who, id); err != nil {
			return s.consoleStoreError(c, err)
		}
		return s.redirectWithNotice(c, consolePath+"/attesters", fmt.Sprintf("Attester %s removed.", id))
	default:
		return s.consoleError(c, http.StatusNotFound, "Not found", "There is no such action.")
	}
}

// attestationNote says in plain words who may vouch for a client.
func attestationNote(cl *storage.Client) string {
	who := "any trusted attester"
	if len(cl.Attesters) > 0 {
		who = strings.Join(cl.Attesters, ", ")
	}
	switch {
	case isAttestationMethod(cl.TokenEndpointAuthMethod):
		return "Authenticates with attestation; vouched for by " + who + "."
	case cl.RequireAttestation:
		return "Must also present attestation from " + who + "."
	default:
		return "authz cannot tell which copy of this client is asking."
	}
}

func (s *Server) clientsPage(c echo.Context, form console.ClientForm, problems []string) (console.ClientsPage, error) {
	list, err := s.store.ListClients(c.Request().Context())
	if err != nil {
		return console.ClientsPage{}, err
	}
	p := console.ClientsPage{Common: s.common(c, "Clients", console.NavClients), Form: form,
		Methods: config.AuthMethods, Grants: config.GrantTypes, AddAction: consolePath + "/clients"}
	p.Problems = problems
	for i := range list {
		cl := &list[i]
		p.Clients = append(p.Clients, console.ClientRow{
			ID: cl.ID, Description: cl.Description, Method: cl.TokenEndpointAuthMethod, Attested: clientAttested(cl),
			AttestationNote: attestationNote(cl), GrantTypes: cl.GrantTypes, Scopes: cl.Scopes, RedirectURIs: cl.RedirectURIs,
			Source: cl.Source, DeleteAction: consolePath + "/clients/" + url.PathEscape(cl.ID) + "/delete",
			DecisionsURL: decisionsURL("client_id", cl.ID),
		})
	}
	return p, nil
}

func (s *Server) consoleClients(c echo.Context) error {
	p, err := s.clientsPage(c, console.ClientForm{Method: config.AuthMethodAttestJWT, GrantTypes: "client_credentials"}, nil)
	if err != nil {
		return s.consoleStoreError(c, err)
	}
	return console.RenderClients(html(c, http.StatusOK), p)
}

// splitList reads a space- or comma-separated form field.
func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// consoleAddClient registers a client; a generated secret is shown on the answer page itself
// (never put in a URL or a cookie), once.
func (s *Server) consoleAddClient(c echo.Context) error {
	f := c.Request().PostForm
	form := console.ClientForm{
		ClientID: strings.TrimSpace(f.Get("client_id")), Description: strings.TrimSpace(f.Get("description")),
		Method: f.Get("token_endpoint_auth_method"), GrantTypes: f.Get("grant_types"), Scopes: f.Get("scopes"),
		RedirectURIs: f.Get("redirect_uris"), Attesters: f.Get("attesters"), RequireAttestation: f.Get("require_attestation") == "true",
	}
	rec := &storage.Client{ID: form.ClientID, Description: form.Description, TokenEndpointAuthMethod: form.Method,
		GrantTypes: splitList(form.GrantTypes), Scopes: splitList(form.Scopes), RedirectURIs: splitList(form.RedirectURIs),
		Attesters: splitList(form.Attesters), RequireAttestation: form.RequireAttestation, Source: "console"}
	saved, secret, problems, err := s.saveClient(c.Request().Context(), s.consoleActor(c), rec, saveCreate, false)
	switch {
	case errors.Is(err, storage.ErrConflict):
		problems = []string{fmt.Sprintf("client_id: client %q already exists", rec.ID)}
	case err != nil:
		return s.consoleStoreError(c, err)
	}
	if len(problems) > 0 {
		p, err := s.clientsPage(c, form, problems)
		if err != nil {
			return s.consoleStoreError(c, err)
		}
		return console.RenderClients(html(c, http.StatusBadRequest), p)
	}
	if secret == "" {
		return s.redirectWithNotice(c, consolePath+"/clients", fmt.Sprintf("Client %s registered.", saved.ID))
	}
	p, err := s.clientsPage(c, console.ClientForm{Method: config.AuthMethodAttestJWT, GrantTypes: "client_credentials"}, nil)
	if err != nil {
		return s.consoleStoreError(c, err)
	}
	p.Notice = fmt.Sprintf("Client %s registered.", saved.ID)
	p.NewSecret = &console.IssuedSecret{ClientID: saved.ID, Secret: secret}
	return console.RenderClients(html(c, http.StatusOK), p)
}

func (s *Server) consoleDeleteClient(c echo.Context) error {
	id := pathParam(c, "id")
	if err := s.deleteClient(c.Request().Context(), s.consoleActor(c), id); err != nil {
		return s.consoleStoreError(c, err)
	}
	return s.redirectWithNotice(c, consolePath+"/clients", fmt.Sprintf("Client %s removed, with its tokens.", id))
}

// consoleDecisions is the filtered decisions view (50 a page, cursor links).
func (s *Server) consoleDecisions(c echo.Context) error {
	q := c.Request().URL.Query()
	p := console.DecisionsPage{Common: s.common(c, "Decisions", console.NavDecisions), Filter: console.DecisionFilter{
		ClientID: q.Get("client_id"), Attester: q.Get("attester"), Decision: q.Get("decision"), Reason: q.Get("reason"),
		InstanceJKT: q.Get("instance_jkt"), Since: q.Get("since"), Until: q.Get("until"),
	}}
	// Empty filter fields come from the form; they filter nothing.
	for name, v := range q {
		if len(v) == 1 && v[0] == "" {
			q.Del(name)
		}
	}
	f, problems := parseDecisionFilter(q, time.Now(), "cursor")
	cursor, ok := parseCursor(q.Get("cursor"))
	if !ok {
		problems = append(problems, "cursor: not a valid page link")
	}
	filterQuery := url.Values{}
	for _, name := range decisionFilterParams {
		if v := q.Get(name); v != "" {
			filterQuery.Set(name, v)
		}
	}
	exportQuery := func(format string) string {
		eq := url.Values{}
		for k, v := range filterQuery {
			eq[k] = v
		}
		eq.Set("format", format)
		return consolePath + "/decisions/export?" + eq.Encode()
	}
	p.ExportCSV, p.ExportJSON = exportQuery("csv"), exportQuery("json")
	if len(problems) > 0 {
		p.Problems = problems
		return console.RenderDecisions(html(c, http.StatusBadRequest), p)
	}
	f.Limit, f.BeforeID = consolePageSize+1, cursor
	list, err := s.store.ListDecisions(c.Request().Context(), f)
	if err != nil {
		return s.consoleStoreError(c, err)
	}
	if len(list) > consolePageSize {
		list = list[:consolePageSize]
		nq := url.Values{}
		for k, v := range filterQuery {
			nq[k] = v
		}
		nq.Set("cursor", strconv.FormatInt(list[len(list)-1].ID, 10))
		p.NextURL = consolePath + "/decisions?" + nq.Encode()
	}
	if cursor > 0 {
		p.FirstURL = consolePath + "/decisions"
		if len(filterQuery) > 0 {
			p.FirstURL += "?" + filterQuery.Encode()
		}
	}
	p.Rows = decisionRows(list)
	return console.RenderDecisions(html(c, http.StatusOK), p)
}

func (s *Server) consoleExport(c echo.Context) error {
	q := c.Request().URL.Query()
	for name, v := range q {
		if len(v) == 1 && v[0] == "" {
			q.Del(name)
		}
	}
	f, problems := parseDecisionFilter(q, time.Now(), "format")
	format := q.Get("format")
	if format != "csv" && format != "json" {
		problems = append(problems, "format: csv or json")
	}
	if len(problems) > 0 {
		return s.consoleError(c, http.StatusBadRequest, "Export refused", strings.Join(problems, "; "))
	}
	return s.exportDecisions(c, f, 0, format)
}

// consoleInstances is the lookup form and the list of revoked keys.
func (s *Server) consoleInstances(c echo.Context) error {
	lookup := strings.TrimSpace(c.QueryParam("jkt"))
	if lookup != "" && validJKT(lookup) {
		return c.Redirect(http.StatusSeeOther, instanceURL(lookup))
	}
	revoked, err := s.store.RevokedInstances(c.Request().Context())
	if err != nil {
		return s.consoleStoreError(c, err)
	}
	p := console.InstancesPage{Common: s.common(c, "Instances", console.NavInstances), Lookup: lookup}
	status := http.StatusOK
	if lookup != "" {
		p.Problems, status = jktProblem(lookup), http.StatusBadRequest
	}
	for i := len(revoked) - 1; i >= 0; i-- { // most recent revocation first
		p.Revoked = append(p.Revoked, console.InstanceLink{JKT: revoked[i], URL: instanceURL(revoked[i])})
	}
	return console.RenderInstances(html(c, status), p)
}

// consoleInstance shows everything known about one instance key, with the revoke button.
func (s *Server) consoleInstance(c echo.Context) error {
	jkt := pathParam(c, "jkt")
	if !validJKT(jkt) {
		return s.consoleError(c, http.StatusBadRequest, "Not an instance key", jktProblem(jkt)[0])
	}
	sum, recent, err := s.instanceSummary(c.Request().Context(), jkt)
	if err != nil {
		return s.consoleStoreError(c, err)
	}
	p := console.InstancePage{
		Common: s.common(c, "Instance "+jkt[len(jkt)-8:], console.NavInstances), JKT: jkt, Known: sum.Known(),
		FirstSeen: sum.FirstSeen, LastSeen: sum.LastSeen, Attesters: sum.Attesters, Clients: sum.Clients,
		Accepted: sum.Accepted, Rejected: sum.Rejected, Revoked: sum.Revoked, RevokedAt: sum.RevokedAt,
		RevokeReason: sum.RevokeReason, ActiveTokens: sum.ActiveTokens, Recent: decisionRows(recent),
		RevokeAction: instanceURL(jkt) + "/revoke", DecisionsURL: decisionsURL("instance_jkt", jkt),
	}
	for reason, n := range sum.Reasons {
		p.Reasons = append(p.Reasons, console.ReasonCount{Reason: reason, Count: n})
	}
	sort.Slice(p.Reasons, func(i, j int) bool {
		if p.Reasons[i].Count != p.Reasons[j].Count {
			return p.Reasons[i].Count > p.Reasons[j].Count
		}
		return p.Reasons[i].Reason < p.Reasons[j].Reason
	})
	return console.RenderInstance(html(c, http.StatusOK), p)
}

func (s *Server) consoleRevoke(c echo.Context) error {
	jkt := pathParam(c, "jkt")
	if !validJKT(jkt) {
		return s.consoleError(c, http.StatusBadRequest, "Not an instance key", jktProblem(jkt)[0])
	}
	reason := truncateRunes(strings.TrimSpace(strings.ToValidUTF8(c.Request().PostForm.Get("reason"), "\uFFFD")), maxRevokeReason)
	if err := s.revokeInstance(c.Request().Context(), s.consoleActor(c), jkt, reason); err != nil {
		return s.consoleStoreError(c, err)
	}
	return s.redirectWithNotice(c, instanceURL(jkt), "Instance key revoked: new requests with it are refused, and its tokens no longer work.")
}

// consoleChanges is the admin change log, 50 a page.
func (s *Server) consoleChanges(c echo.Context) error {
	cursor, ok := parseCursor(c.QueryParam("cursor"))
	if !ok {
		return s.consoleError(c, http.StatusBadRequest, "Bad page link", "That page link is not valid.")
	}
	list, err := s.store.ListAdminChanges(c.Request().Context(), storage.AdminChangeFilter{Limit: consolePageSize + 1, BeforeID: cursor})
	if err != nil {
		return s.consoleStoreError(c, err)
	}
	p := console.ChangesPage{Common: s.common(c, "Change log", console.NavChanges)}
	if len(list) > consolePageSize {
		list = list[:consolePageSize]
		p.NextURL = consolePath + "/changes?cursor=" + strconv.FormatInt(list[len(list)-1].ID, 10)
	}
	p.Changes = changeRows(list)
	return console.RenderChanges(html(c, http.StatusOK), p)
}
