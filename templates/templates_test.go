package templates

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

const hostile = `Acme <script>alert("x")</script> & "Co" 'quoted'`

const caveat = "Being verified says where the software comes from; it does not make its requests safe — only approve what you expect."

// page is a rendered page parsed back into a DOM, with small finders for assertions.
type page struct {
	raw  string
	root *html.Node
}

func parsePage(t *testing.T, raw string) *page {
	t.Helper()
	root, err := html.Parse(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("rendered page does not parse: %v", err)
	}
	return &page{raw: raw, root: root}
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// all returns every element named tag whose attributes include each of the key=value pairs.
func (p *page) all(tag string, kv ...string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == tag {
			ok := true
			for i := 0; i+1 < len(kv); i += 2 {
				if v, has := attr(n, kv[i]); !has || v != kv[i+1] {
					ok = false
				}
			}
			if ok {
				out = append(out, n)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(p.root)
	return out
}

func (p *page) one(t *testing.T, tag string, kv ...string) *html.Node {
	t.Helper()
	got := p.all(tag, kv...)
	if len(got) != 1 {
		t.Fatalf("want exactly one <%s %v>, found %d in:\n%s", tag, kv, len(got), p.raw)
	}
	return got[0]
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// checkSelfContained asserts the page runs no script and loads nothing from elsewhere.
func checkSelfContained(t *testing.T, p *page) {
	t.Helper()
	for _, tag := range []string{"script", "link", "img", "iframe", "object", "embed"} {
		if n := p.all(tag); len(n) != 0 {
			t.Errorf("page has a <%s> element:\n%s", tag, p.raw)
		}
	}
	if n := p.all("style"); len(n) != 1 {
		t.Errorf("want one inline <style>, found %d", len(n))
	}
}

func renderLogin(t *testing.T, d LoginData) *page {
	t.Helper()
	var buf bytes.Buffer
	if err := RenderLogin(&buf, d); err != nil {
		t.Fatalf("RenderLogin: %v", err)
	}
	return parsePage(t, buf.String())
}

func renderConsent(t *testing.T, d ConsentData) *page {
	t.Helper()
	var buf bytes.Buffer
	if err := RenderConsent(&buf, d); err != nil {
		t.Fatalf("RenderConsent: %v", err)
	}
	return parsePage(t, buf.String())
}

func renderError(t *testing.T, d ErrorData) *page {
	t.Helper()
	var buf bytes.Buffer
	if err := RenderError(&buf, d); err != nil {
		t.Fatalf("RenderError: %v", err)
	}
	return parsePage(t, buf.String())
}

func TestRenderLogin(t *testing.T) {
	tests := []struct {
		name       string
		data       LoginData
		wantAction string
		wantName   string
		wantUser   string
		wantAlert  string
	}{
		{
			name:       "first_visit",
			data:       LoginData{Action: "/oauth2/authorize?client_id=web&state=a%20b", ClientID: "web", ClientDescription: "Demo web app", CSRF: "csrf-token-1"},
			wantAction: "/oauth2/authorize?client_id=web&state=a%20b",
			wantName:   "to continue to Demo web app (web).",
		},
		{
			name:       "failed_attempt_prefills_username",
			data:       LoginData{Action: "/oauth2/authorize?x=1", ClientID: "web", Username: "alice", Error: "Wrong username or password.", CSRF: "c"},
			wantAction: "/oauth2/authorize?x=1",
			wantName:   "to continue to web.",
			wantUser:   "alice",
			wantAlert:  "Wrong username or password.",
		},
		{
			name:       "hostile_input_is_escaped",
			data:       LoginData{Action: "/oauth2/authorize?q=\"><script>", ClientID: "web", ClientDescription: hostile, Username: `"><script>x</script>`, Error: "<b>bad</b>", CSRF: `"><x>`},
			wantAction: "/oauth2/authorize?q=%22%3e%3cscript%3e",
			wantName:   "to continue to " + hostile + " (web).",
			wantUser:   `"><script>x</script>`,
			wantAlert:  "<b>bad</b>",
		},
		{
			name:       "javascript_action_is_neutralised",
			data:       LoginData{Action: "javascript:alert(1)", ClientID: "web", CSRF: "c"},
			wantAction: "#ZgotmplZ",
			wantName:   "to continue to web.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := renderLogin(t, tt.data)
			checkSelfContained(t, p)
			form := p.one(t, "form", "method", "post")
			if got, _ := attr(form, "action"); got != tt.wantAction {
				t.Errorf("action = %q, want %q", got, tt.wantAction)
			}
			if got := text(p.one(t, "h1")); got != "Sign in" {
				t.Errorf("h1 = %q", got)
			}
			if got := text(p.all("h1")[0].NextSibling.NextSibling); got != tt.wantName {
				t.Errorf("client line = %q, want %q", got, tt.wantName)
			}
			user := p.one(t, "input", "name", FieldUsername)
			if typ, _ := attr(user, "type"); typ != "text" {
				t.Errorf("username type = %q", typ)
			}
			if v, _ := attr(user, "value"); v != tt.wantUser {
				t.Errorf("username value = %q, want %q", v, tt.wantUser)
			}
			pass := p.one(t, "input", "name", FieldPassword, "type", "password")
			if v, has := attr(pass, "value"); has {
				t.Errorf("password field is pre-filled with %q", v)
			}
			csrf := p.one(t, "input", "name", FieldCSRF, "type", "hidden")
			if v, _ := attr(csrf, "value"); v != tt.data.CSRF {
				t.Errorf("csrf = %q, want %q", v, tt.data.CSRF)
			}
			p.one(t, "button", "type", "submit")
			alerts := p.all("p", "role", "alert")
			switch {
			case tt.wantAlert == "" && len(alerts) != 0:
				t.Errorf("unexpected alert %q", text(alerts[0]))
			case tt.wantAlert != "" && (len(alerts) != 1 || text(alerts[0]) != tt.wantAlert):
				t.Errorf("alerts = %d, want one saying %q", len(alerts), tt.wantAlert)
			}
		})
	}
}

func TestRenderConsent(t *testing.T) {
	tests := []struct {
		name       string
		data       ConsentData
		wantMode   string
		wantText   string
		wantH1     string
		wantScopes []string
	}{
		{
			name: "attested_with_known_attester",
			data: ConsentData{
				ClientID: "agent", ClientDescription: "Acme Agent", Username: "alice", Scopes: []string{"read", "write"},
				Attested: true, Attestation: &AttestationInfo{Attester: "Acme Attester", KeyHint: "4F2A"},
			},
			wantMode:   attestationVerified,
			wantText:   "This is a verified instance of Acme Agent, vouched for by Acme Attester (key …4F2A). " + caveat,
			wantH1:     "Allow Acme Agent to access your account?",
			wantScopes: []string{"read", "write"},
		},
		{
			name: "attester_description_named_with_its_id",
			data: ConsentData{
				ClientID: "agent", Scopes: []string{"read"},
				Attested: true, Attestation: &AttestationInfo{Attester: "ci-fleet", AttesterDescription: "Acme CI fleet <b>", KeyHint: "4F2A"},
			},
			wantMode:   attestationVerified,
			wantText:   "This is a verified instance of agent, vouched for by Acme CI fleet <b> (ci-fleet) (key …4F2A). " + caveat,
			wantH1:     "Allow agent to access your account?",
			wantScopes: []string{"read"},
		},
		{
			name: "key_hint_trimmed_to_last_four",
			data: ConsentData{
				ClientID: "agent", Scopes: []string{"read"},
				Attested: true, Attestation: &AttestationInfo{Attester: "dev-attester", KeyHint: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
			},
			wantMode:   attestationVerified,
			wantText:   "This is a verified instance of agent, vouched for by dev-attester (key …C9Xs). " + caveat,
			wantH1:     "Allow agent to access your account?",
			wantScopes: []string{"read"},
		},
		{
			name: "attested_without_key_hint",
			data: ConsentData{
				ClientID: "agent", ClientDescription: "Acme Agent", Scopes: []string{"read"},
				Attested: true, Attestation: &AttestationInfo{Attester: "dev-attester"},
			},
			wantMode:   attestationVerified,
			wantText:   "This is a verified instance of Acme Agent, vouched for by dev-attester. " + caveat,
			wantH1:     "Allow Acme Agent to access your account?",
			wantScopes: []string{"read"},
		},
		{
			name: "attested_attester_unnamed",
			data: ConsentData{
				ClientID: "agent", ClientDescription: "Acme Agent", Scopes: []string{"read"}, Attested: true,
			},
			wantMode:   attestationVerified,
			wantText:   "This is a verified instance of Acme Agent, vouched for by an attester authz trusts. " + caveat,
			wantH1:     "Allow Acme Agent to access your account?",
			wantScopes: []string{"read"},
		},
		{
			name: "attestation_proven_at_token_time",
			data: ConsentData{
				ClientID: "agent", ClientDescription: "Acme Agent", Scopes: []string{"read"},
				Attested: true, AttestationMethodNote: true,
			},
			wantMode:   attestationPending,
			wantText:   "Acme Agent is registered as attested software, but this copy proves it is a verified instance only when it redeems your approval for a token, so authz cannot yet tell which copy is asking. " + caveat,
			wantH1:     "Allow Acme Agent to access your account?",
			wantScopes: []string{"read"},
		},
		{
			name: "not_attested",
			data: ConsentData{
				ClientID: "web", ClientDescription: "Demo web app", Scopes: []string{"read"},
			},
			wantMode:   attestationNone,
			wantText:   "This application is not attested: authz cannot tell which copy of it is asking.",
			wantH1:     "Allow Demo web app to access your account?",
			wantScopes: []string{"read"},
		},
		{
			name:     "attestation_info_without_attested_is_ignored",
			data:     ConsentData{ClientID: "web", Attestation: &AttestationInfo{Attester: "dev-attester", KeyHint: "4F2A"}},
			wantMode: attestationNone,
			wantText: "This application is not attested: authz cannot tell which copy of it is asking.",
			wantH1:   "Allow web to access your account?",
		},
		{
			name: "hostile_input_is_escaped",
			data: ConsentData{
				ClientID: "agent<i>", ClientDescription: hostile, Username: "<b>alice</b>", Scopes: []string{"<script>s</script>", "read"},
				Attested: true, Attestation: &AttestationInfo{Attester: "<img src=x>", KeyHint: "<u>AB</u>"},
			},
			wantMode:   attestationVerified,
			wantText:   "This is a verified instance of " + hostile + ", vouched for by <img src=x> (key …</u>). " + caveat,
			wantH1:     "Allow " + hostile + " to access your account?",
			wantScopes: []string{"<script>s</script>", "read"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.data
			d.Action, d.CSRF = "/oauth2/authorize?client_id=agent&scope=read", "csrf-value"
			p := renderConsent(t, d)
			checkSelfContained(t, p)

			if got := text(p.one(t, "h1")); got != tt.wantH1 {
				t.Errorf("h1 = %q, want %q", got, tt.wantH1)
			}
			att := p.one(t, "p", "data-attestation", tt.wantMode)
			if got := text(att); got != tt.wantText {
				t.Errorf("attestation sentence =\n  %q\nwant\n  %q", got, tt.wantText)
			}
			if n := len(p.all("p", "class", "att att-verified")) + len(p.all("p", "class", "att att-pending")) + len(p.all("p", "class", "att att-none")); n != 1 {
				t.Errorf("want one attestation statement, found %d", n)
			}

			var scopes []string
			for _, li := range p.all("li") {
				scopes = append(scopes, text(li))
			}
			if strings.Join(scopes, "|") != strings.Join(tt.wantScopes, "|") {
				t.Errorf("scopes = %q, want %q", scopes, tt.wantScopes)
			}
			if len(tt.wantScopes) == 0 && !strings.Contains(p.raw, "It asks for no specific permissions.") {
				t.Error("no-scope sentence missing")
			}

			form := p.one(t, "form", "method", "post")
			if got, _ := attr(form, "action"); got != d.Action {
				t.Errorf("action = %q, want %q", got, d.Action)
			}
			if v, _ := attr(p.one(t, "input", "name", FieldCSRF, "type", "hidden"), "value"); v != d.CSRF {
				t.Errorf("csrf = %q", v)
			}
			p.one(t, "button", "type", "submit", "name", FieldConsent, "value", ConsentAllow)
			p.one(t, "button", "type", "submit", "name", FieldConsent, "value", ConsentDeny)
			if strings.Contains(p.raw, "<script>") || strings.Contains(p.raw, "<img") {
				t.Errorf("raw markup leaked:\n%s", p.raw)
			}
		})
	}
}

func TestRenderConsentUsername(t *testing.T) {
	tests := []struct {
		name     string
		username string
		want     int
	}{
		{name: "signed_in_user_shown", username: "alice", want: 1},
		{name: "no_user_line_when_empty", username: "", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := renderConsent(t, ConsentData{ClientID: "web", Username: tt.username})
			n := 0
			for _, el := range p.all("p", "class", "muted") {
				if strings.HasPrefix(text(el), "Signed in as") {
					n++
					if text(el) != "Signed in as "+tt.username+"." {
						t.Errorf("user line = %q", text(el))
					}
				}
			}
			if n != tt.want {
				t.Errorf("user lines = %d, want %d", n, tt.want)
			}
		})
	}
}

func TestRenderError(t *testing.T) {
	tests := []struct {
		name       string
		data       ErrorData
		wantTitle  string
		wantStatus string
	}{
		{name: "forbidden", data: ErrorData{Title: "Request refused", Message: "The form expired.", Status: 403}, wantTitle: "Request refused", wantStatus: "Error 403 · Forbidden"},
		{name: "default_title", data: ErrorData{Message: "Try again.", Status: 500}, wantTitle: "Something went wrong", wantStatus: "Error 500 · Internal Server Error"},
		{name: "no_status", data: ErrorData{Title: "Oops", Message: "m"}, wantTitle: "Oops"},
		{name: "unknown_status_code", data: ErrorData{Title: "Odd", Message: "m", Status: 599}, wantTitle: "Odd", wantStatus: "Error 599"},
		{name: "hostile_input_is_escaped", data: ErrorData{Title: "<script>t</script>", Message: hostile, Status: 400}, wantTitle: "<script>t</script>", wantStatus: "Error 400 · Bad Request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := renderError(t, tt.data)
			checkSelfContained(t, p)
			if got := text(p.one(t, "h1")); got != tt.wantTitle {
				t.Errorf("h1 = %q, want %q", got, tt.wantTitle)
			}
			if got := text(p.one(t, "title")); got != tt.wantTitle+" · authz" {
				t.Errorf("title = %q", got)
			}
			if !strings.Contains(text(p.root), tt.data.Message) {
				t.Errorf("message %q missing", tt.data.Message)
			}
			var status string
			for _, el := range p.all("p", "class", "muted") {
				status = text(el)
			}
			if status != tt.wantStatus {
				t.Errorf("status line = %q, want %q", status, tt.wantStatus)
			}
			if len(p.all("form")) != 0 {
				t.Error("error page has a form")
			}
		})
	}
}

type failingWriter struct{}

var errDiskFull = errors.New("disk full")

func (failingWriter) Write([]byte) (int, error) { return 0, errDiskFull }

func TestRenderWriteError(t *testing.T) {
	tests := []struct {
		name   string
		render func() error
	}{
		{name: "login", render: func() error { return RenderLogin(failingWriter{}, LoginData{}) }},
		{name: "consent", render: func() error { return RenderConsent(failingWriter{}, ConsentData{}) }},
		{name: "error", render: func() error { return RenderError(failingWriter{}, ErrorData{}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.render()
			if !errors.Is(err, ErrWrite) || !errors.Is(err, errDiskFull) {
				t.Fatalf("err = %v, want ErrWrite wrapping the writer's error", err)
			}
		})
	}
}

// FuzzRenderConsent renders the consent page from arbitrary strings: it never fails, never lets
// markup through, and always has exactly one form with both decisions.
func FuzzRenderConsent(f *testing.F) {
	f.Add("agent", hostile, "alice", "read", "dev-attester", "4F2A", "/oauth2/authorize?a=b", true, false)
	f.Add("", "", "", "", "", "", "javascript:alert(1)", false, true)
	f.Add("\x00\xff", "</style><script>", "{{.}}", "</ul>", "\"'><", "…", "//evil.example/", true, true)
	f.Fuzz(func(t *testing.T, id, desc, user, scope, attester, hint, action string, attested, note bool) {
		var buf bytes.Buffer
		err := RenderConsent(&buf, ConsentData{
			Action: action, ClientID: id, ClientDescription: desc, Username: user, Scopes: []string{scope},
			Attested: attested, Attestation: &AttestationInfo{Attester: attester, KeyHint: hint},
			AttestationMethodNote: note, CSRF: "c",
		})
		if err != nil {
			t.Fatalf("RenderConsent: %v", err)
		}
		p := parsePage(t, buf.String())
		if len(p.all("script")) != 0 || len(p.all("img")) != 0 {
			t.Fatalf("markup injected:\n%s", p.raw)
		}
		if len(p.all("form")) != 1 || len(p.all("button", "name", FieldConsent)) != 2 {
			t.Fatalf("form structure broken:\n%s", p.raw)
		}
	})
}
