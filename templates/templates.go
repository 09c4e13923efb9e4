package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strings"
	"sync"
)

// Sentinel errors of the package; every returned error wraps one of them.
var (
	// ErrTemplate reports that an embedded template could not be parsed or executed.
	ErrTemplate = errors.New("templates: render failed")
	// ErrWrite reports that the rendered page could not be written to the destination.
	ErrWrite = errors.New("templates: write failed")
)

// Form field names shared with the handlers in server/. The login form posts FieldUsername,
// FieldPassword and FieldCSRF; the consent form posts FieldCSRF and FieldConsent with the value
// ConsentAllow or ConsentDeny.
const (
	FieldUsername = "username"
	FieldPassword = "password"
	FieldCSRF     = "csrf"
	FieldConsent  = "consent"
	ConsentAllow  = "allow"
	ConsentDeny   = "deny"
)

// keyHintLen is how many trailing characters of the instance key thumbprint the consent page shows.
const keyHintLen = 4

//go:embed html/*.html
var files embed.FS

// pages are parsed once, on first use; a parse error is returned by every render call instead of
// panicking at start.
var pages = sync.OnceValues(func() (map[string]*template.Template, error) {
	out := make(map[string]*template.Template, 3)
	for _, name := range []string{"login", "consent", "error"} {
		t, err := template.New(name).ParseFS(files, "html/layout.html", "html/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("%w: parse %s: %w", ErrTemplate, name, err)
		}
		out[name] = t
	}
	return out, nil
})

// LoginData fills the login page of the authorization endpoint.
type LoginData struct {
	Action            string // form action URL (path + original authorize query), the form POSTs there
	ClientID          string
	ClientDescription string // human name of the client; the page falls back to ClientID
	Username          string // pre-fill after a failed attempt
	Error             string // "" or a plain message such as "Wrong username or password."
	CSRF              string // hidden field name "csrf"
}

// AttestationInfo names who vouched for the client instance (ABCA-09 §1: the Client Attester)
// and which instance key it bound (§4, cnf).
type AttestationInfo struct {
	Attester            string // attester id, e.g. "dev-attester"
	AttesterDescription string // the attester's description, when it has one, e.g. "Acme CI fleet"
	KeyHint             string // last 4 chars of the instance key thumbprint
}

// ConsentData fills the consent page of the authorization endpoint.
type ConsentData struct {
	Action            string
	ClientID          string
	ClientDescription string // human name; fall back to ClientID
	Username          string
	Scopes            []string
	Attested          bool
	// Attestation is non-nil when the client authenticates by attestation and the attester is known.
	Attestation *AttestationInfo
	// AttestationMethodNote is true when the client is registered for attestation (key known only
	// at token time).
	AttestationMethodNote bool
	CSRF                  string
}

// ErrorData fills the error page. Status is the HTTP status the caller writes; 0 hides it.
type ErrorData struct {
	Title, Message string
	Status         int
}

// Attestation states the consent page can describe, each with its own plain sentence.
const (
	attestationVerified = "verified" // attested, attester known
	attestationPending  = "pending"  // registered for attestation, the instance proves itself at the token endpoint
	attestationNone     = "none"     // not attested
)

// common is what the layout needs from every page.
type common struct {
	Title string
}

type loginView struct {
	common
	LoginData
	ClientName string
	ShowID     bool
}

type consentView struct {
	common
	ConsentData
	ClientName  string
	ShowID      bool
	Mode        string
	AttesterID  string
	KeyHint     string
	HasAttester bool
}

type errorView struct {
	common
	Message    string
	Status     int
	StatusText string
}

// RenderLogin writes the login page: a form POSTing username, password and the hidden csrf
// field to d.Action.
func RenderLogin(w io.Writer, d LoginData) error {
	name, showID := clientName(d.ClientID, d.ClientDescription)
	return render(w, "login", loginView{
		common:     common{Title: "Sign in"},
		LoginData:  d,
		ClientName: name,
		ShowID:     showID,
	})
}

// RenderConsent writes the consent page: the client, the requested scopes, one plain statement
// of what attestation means for this client, and a form POSTing csrf and consent=allow|deny.
func RenderConsent(w io.Writer, d ConsentData) error {
	name, showID := clientName(d.ClientID, d.ClientDescription)
	v := consentView{
		common:      common{Title: "Allow access?"},
		ConsentData: d,
		ClientName:  name,
		ShowID:      showID,
		Mode:        attestationMode(d),
	}
	if d.Attestation != nil {
		v.AttesterID = strings.TrimSpace(d.Attestation.Attester)
		// A person recognises the description; the id stays beside it for an operator.
		if desc := strings.TrimSpace(d.Attestation.AttesterDescription); desc != "" && v.AttesterID != "" && desc != v.AttesterID {
			v.AttesterID = desc + " (" + v.AttesterID + ")"
		}
		v.KeyHint = keyHint(d.Attestation.KeyHint)
	}
	v.HasAttester = v.AttesterID != ""
	return render(w, "consent", v)
}

// RenderError writes the error page.
func RenderError(w io.Writer, d ErrorData) error {
	v := errorView{
		common:  common{Title: strings.TrimSpace(d.Title)},
		Message: d.Message,
		Status:  d.Status,
	}
	if v.Title == "" {
		v.Title = "Something went wrong"
	}
	if d.Status > 0 {
		v.StatusText = http.StatusText(d.Status)
	}
	return render(w, "error", v)
}

// render executes a page into a buffer first, so a failing template never leaves half a page
// on w.
func render(w io.Writer, name string, data any) error {
	set, err := pages()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := set[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		return fmt.Errorf("%w: execute %s: %w", ErrTemplate, name, err)
	}
	if _, err := buf.WriteTo(w); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrWrite, name, err)
	}
	return nil
}

// clientName is the name shown for a client: its description, else its client_id. showID says
// whether the client_id should be printed beside it.
func clientName(id, description string) (name string, showID bool) {
	description = strings.TrimSpace(description)
	if description == "" || description == id {
		return id, false
	}
	return description, id != ""
}

// attestationMode picks the statement the consent page makes about attestation.
func attestationMode(d ConsentData) string {
	switch {
	case d.Attested && d.Attestation != nil:
		return attestationVerified
	case d.AttestationMethodNote:
		return attestationPending
	case d.Attested:
		return attestationVerified // attested, attester not named
	default:
		return attestationNone
	}
}

// keyHint keeps the last keyHintLen characters of a thumbprint (callers may pass it whole).
func keyHint(s string) string {
	r := []rune(strings.TrimSpace(s))
	if len(r) > keyHintLen {
		r = r[len(r)-keyHintLen:]
	}
	return string(r)
}
