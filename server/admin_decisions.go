package server

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/authz/authz/storage"
)

// Admin decisions (issue 5, profile §7): the audit records filtered by client, attester,
// decision, reason, instance key thumbprint and time range, newest first, with cursor
// pagination; and an export of every matching record as CSV or JSON (the JSON export is exactly
// `authz decisions list --json`).

const (
	decisionsPageDefault = 100
	decisionsPageMax     = 1000
	exportBatch          = 1000
)

// decisionFilterParams are the query parameters shared by the list, the export and the console.
var decisionFilterParams = []string{"client_id", "attester", "decision", "reason", "instance_jkt", "since", "until"}

// decisionItem is one record in a page: the profile §7 members plus its cursor id.
type decisionItem struct {
	ID               string    `json:"id"`
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

func itemOf(d storage.Decision) decisionItem {
	return decisionItem{
		ID: strconv.FormatInt(d.ID, 10), Time: d.Time.UTC(), Endpoint: d.Endpoint, ClientID: d.ClientID,
		VerifiedClientID: d.VerifiedClientID, Attester: d.Attester, Resolution: d.Resolution,
		InstanceJKT: d.InstanceJKT, PoPMethod: d.PoPMethod, PoPAud: d.PoPAud, Challenge: d.Challenge,
		Decision: d.Decision, Reason: d.Reason, TokenRequestID: d.TokenRequestID,
	}
}

// parseDecisionFilter reads the filter parameters of q. since and until take an RFC 3339 time
// or a Go duration counted back from now ("24h"). Every problem is listed; unknown parameters
// are problems too (a misspelt filter must not silently return everything).
func parseDecisionFilter(q url.Values, now time.Time, extra ...string) (storage.DecisionFilter, []string) {
	var f storage.DecisionFilter
	var p []string
	allowed := append(slices.Clone(decisionFilterParams), extra...)
	for name, values := range q {
		if !slices.Contains(allowed, name) {
			p = append(p, fmt.Sprintf("%s: unknown parameter (filters: %s)", name, strings.Join(allowed, ", ")))
			continue
		}
		if len(values) > 1 {
			p = append(p, fmt.Sprintf("%s: given %d times; give it once", name, len(values)))
		}
	}
	f.ClientID = q.Get("client_id")
	f.Attester = q.Get("attester")
	f.Reason = q.Get("reason")
	f.InstanceJKT = q.Get("instance_jkt")
	switch f.Decision = q.Get("decision"); f.Decision {
	case "", decisionAccepted, decisionRejected:
	default:
		p = append(p, fmt.Sprintf("decision: %q is not accepted or rejected", f.Decision))
	}
	var err error
	if f.Since, err = parseTimeParam(q.Get("since"), now); err != nil {
		p = append(p, "since: "+err.Error())
	}
	if f.Until, err = parseTimeParam(q.Get("until"), now); err != nil {
		p = append(p, "until: "+err.Error())
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		p = append(p, "since: must be before until")
	}
	return f, p
}

// parseTimeParam reads an RFC 3339 time, or a positive Go duration before now.
func parseTimeParam(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a positive duration such as 24h", v)
	}
	return now.Add(-d), nil
}

// parseLimit reads limit: def when absent, 1..maxN otherwise (maxN 0 = unbounded).
func parseLimit(v string, def, maxN int) (int, string) {
	if v == "" {
		return def, ""
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || (maxN > 0 && n > maxN) {
		if maxN > 0 {
			return def, fmt.Sprintf("limit: %q must be a number from 1 to %d", v, maxN)
		}
		return def, fmt.Sprintf("limit: %q must be a positive number", v)
	}
	return n, ""
}

func (s *Server) adminListDecisions(c echo.Context) error {
	q := c.Request().URL.Query()
	f, problems := parseDecisionFilter(q, time.Now(), "limit", "cursor")
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
	f.Limit, f.BeforeID = limit+1, cursor
	rows, err := s.store.ListDecisions(c.Request().Context(), f)
	if err != nil {
		return s.adminStoreError(c, "decisions", err)
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		next = strconv.FormatInt(rows[limit-1].ID, 10)
	}
	items := make([]decisionItem, 0, len(rows))
	for _, d := range rows {
		items = append(items, itemOf(d))
	}
	writeJSON(c.Response(), http.StatusOK, map[string]any{"decisions": items, "next_cursor": next})
	return nil
}

// adminExportDecisions streams every record matching the filters (newest first; limit caps the
// count) as CSV or JSON, read from the database in batches.
func (s *Server) adminExportDecisions(c echo.Context) error {
	q := c.Request().URL.Query()
	f, problems := parseDecisionFilter(q, time.Now(), "limit", "format")
	limit, problem := parseLimit(q.Get("limit"), 0, 0)
	if problem != "" {
		problems = append(problems, problem)
	}
	format := q.Get("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "csv" {
		problems = append(problems, fmt.Sprintf("format: %q is not csv or json", format))
	}
	if len(problems) > 0 {
		return writeProblems(c, problems)
	}
	return s.exportDecisions(c, f, limit, format)
}

// exportDecisions writes the export; shared with the console.
func (s *Server) exportDecisions(c echo.Context, f storage.DecisionFilter, limit int, format string) error {
	ctx := c.Request().Context()
	rw := c.Response()
	name := "authz-decisions-" + time.Now().UTC().Format("20060102T150405Z") + "." + format
	h := rw.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	if format == "csv" {
		h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	} else {
		h.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	}
	rw.WriteHeader(http.StatusOK)

	var cw *csv.Writer
	if format == "csv" {
		cw = csv.NewWriter(rw)
		_ = cw.Write(csvHeader)
	} else {
		_, _ = rw.Write([]byte("["))
	}
	written := 0
	for {
		batch := exportBatch
		if limit > 0 && limit-written < batch {
			batch = limit - written
		}
		if batch <= 0 {
			break
		}
		f.Limit = batch
		rows, err := s.store.ListDecisions(ctx, f)
		if err != nil {
			// The status is already sent: log, and leave a visibly truncated document.
			s.log.ErrorContext(ctx, "admin: decision export failed midway", "written", written, "error", err)
			return nil
		}
		for _, d := range rows {
			if cw != nil {
				_ = cw.Write(csvRecord(d))
			} else {
				b, err := json.Marshal(d)
				if err != nil {
					continue
				}
				if written > 0 {
					_, _ = rw.Write([]byte(",\n"))
				} else {
					_, _ = rw.Write([]byte("\n"))
				}
				_, _ = rw.Write(b)
			}
			written++
		}
		if cw != nil {
			cw.Flush()
		}
		if len(rows) < batch {
			break
		}
		f.BeforeID = rows[len(rows)-1].ID
	}
	if cw == nil {
		_, _ = rw.Write([]byte("\n]\n"))
	}
	return nil
}

// csvHeader is the profile §7 member names, in order.
var csvHeader = []string{"time", "endpoint", "client_id", "verified_client_id", "attester", "resolution",
	"instance_jkt", "pop_method", "pop_aud", "challenge", "decision", "reason", "token_request_id"}

func csvRecord(d storage.Decision) []string {
	fields := []string{d.Time.UTC().Format(time.RFC3339), d.Endpoint, d.ClientID, d.VerifiedClientID,
		d.Attester, d.Resolution, d.InstanceJKT, d.PoPMethod, d.PoPAud, d.Challenge, d.Decision, d.Reason,
		d.TokenRequestID}
	for i, v := range fields {
		fields[i] = csvSafe(v)
	}
	return fields
}

// csvSafe defuses spreadsheet formula injection (CWE-1236): client ids and PoP audiences come
// from requests, so a cell that a spreadsheet would evaluate as a formula is prefixed with an
// apostrophe. Base64url values (thumbprints may start with '-') are left intact: they cannot
// form a formula.
func csvSafe(v string) string {
	if v == "" {
		return v
	}
	switch v[0] {
	case '=', '+', '@', '\t', '\r', '|', '%':
		return "'" + v
	case '-':
		if strings.IndexFunc(v, func(r rune) bool {
			return !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}) >= 0 {
			return "'" + v
		}
	}
	return v
}
