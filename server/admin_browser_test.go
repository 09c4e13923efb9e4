package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authz/authz/storage"
)

// Browser tests of the admin console in headless Chromium (Debian's chromium package; the
// Makefile installs it with scripts/ensure-chromium.sh). Chromium is driven over the Chrome
// DevTools Protocol on --remote-debugging-pipe (NUL-delimited JSON on file descriptors 3 and 4),
// so no Go dependency is needed. A screenshot of every page is saved to artifacts/screenshots/.
// Without Chromium the tests skip, except in CI (CI=true), where they fail.

// findChromium returns the Chromium binary, or skips (fails in CI).
func findChromium(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("AUTHZ_TEST_CHROMIUM"), "chromium", "chromium-browser", "google-chrome-stable", "google-chrome"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	msg := "headless Chromium not found: run scripts/ensure-chromium.sh (apt-get install chromium) or set AUTHZ_TEST_CHROMIUM"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " — required in CI")
	}
	t.Skip(msg)
	return ""
}

// screenshotDir is <module root>/artifacts/screenshots (gitignored).
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
	out := filepath.Join(dir, "artifacts", "screenshots")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	return out
}

// cdpMessage is one DevTools protocol message (a response when ID is set, else an event).
type cdpMessage struct {
	ID        int64           `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// browser is one headless Chromium with one page attached in flat session mode.
type browser struct {
	t       *testing.T
	cmd     *exec.Cmd
	w       io.WriteCloser
	stderr  *bytes.Buffer
	session string
	shots   string

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan cdpMessage
	loads   chan struct{} // Page.loadEventFired of our session
	done    chan struct{}
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	bin := findChromium(t)
	toChrome, ourWriter, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ourReader, fromChrome, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, w: ourWriter, stderr: &bytes.Buffer{}, shots: screenshotDir(t),
		pending: map[int64]chan cdpMessage{}, loads: make(chan struct{}, 16), done: make(chan struct{})}
	b.cmd = exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--disable-extensions", "--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe",
		"--user-data-dir="+t.TempDir(), "--window-size=1200,900", "about:blank")
	b.cmd.ExtraFiles = []*os.File{toChrome, fromChrome} // fd 3: commands in, fd 4: messages out
	b.cmd.Stderr = b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	toChrome.Close()
	fromChrome.Close()
	go b.readLoop(ourReader)
	t.Cleanup(func() {
		ourWriter.Close()
		_ = b.cmd.Process.Kill()
		_ = b.cmd.Wait()
		<-b.done
		if t.Failed() {
			t.Logf("chromium stderr:\n%s", b.stderr.String())
		}
	})

	var target struct {
		TargetID string `json:"targetId"`
	}
	b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	b.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	b.session = attached.SessionID
	b.call(b.session, "Page.enable", nil, nil)
	b.call(b.session, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": false}, nil)
	return b
}

func (b *browser) readLoop(r io.ReadCloser) {
	defer close(b.done)
	defer r.Close()
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		raw, err := br.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var m cdpMessage
		if json.Unmarshal(raw[:len(raw)-1], &m) != nil {
			continue
		}
		if m.ID != 0 {
			b.mu.Lock()
			ch := b.pending[m.ID]
			delete(b.pending, m.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		if m.Method == "Page.loadEventFired" && m.SessionID == b.session && b.session != "" {
			select {
			case b.loads <- struct{}{}:
			default:
			}
		}
	}
}

// call sends one command and decodes its result into out (when non-nil).
func (b *browser) call(session, method string, params any, out any) {
	b.t.Helper()
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	ch := make(chan cdpMessage, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	raw, err := json.Marshal(msg)
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := b.w.Write(append(raw, 0)); err != nil {
		b.t.Fatalf("cdp %s: write: %v", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			b.t.Fatalf("cdp %s: chromium exited", method)
		}
		if m.Error != nil {
			b.t.Fatalf("cdp %s: %d %s", method, m.Error.Code, m.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(m.Result, out); err != nil {
				b.t.Fatalf("cdp %s: decode: %v", method, err)
			}
		}
	case <-time.After(30 * time.Second):
		b.t.Fatalf("cdp %s: no answer within 30s", method)
	}
}

func (b *browser) drainLoads() {
	for {
		select {
		case <-b.loads:
		default:
			return
		}
	}
}

func (b *browser) waitLoad(what string) {
	b.t.Helper()
	select {
	case <-b.loads:
	case <-time.After(30 * time.Second):
		b.t.Fatalf("%s: the page did not load within 30s", what)
	}
}

// navigate opens url and waits for its load event.
func (b *browser) navigate(url string) {
	b.t.Helper()
	b.drainLoads()
	var res struct {
		ErrorText string `json:"errorText"`
	}
	b.call(b.session, "Page.navigate", map[string]any{"url": url}, &res)
	if res.ErrorText != "" {
		b.t.Fatalf("navigate %s: %s", url, res.ErrorText)
	}
	b.waitLoad(url)
}

// eval runs a JavaScript expression in the page (the test drives the page like a user; the
// console itself has no script) and returns its value.
func (b *browser) eval(expr string) any {
	b.t.Helper()
	var res struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	b.call(b.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res)
	if res.ExceptionDetails != nil {
		b.t.Fatalf("eval %q: %s", expr, res.ExceptionDetails.Text)
	}
	return res.Result.Value
}

// submit runs expr (which fills and submits a form or clicks a button) and waits for the next page.
func (b *browser) submit(what, expr string) {
	b.t.Helper()
	b.drainLoads()
	b.eval(expr)
	b.waitLoad(what)
}

func (b *browser) text() string {
	b.t.Helper()
	s, _ := b.eval("document.body.innerText").(string)
	return s
}

func (b *browser) location() string {
	b.t.Helper()
	s, _ := b.eval("location.pathname + location.search").(string)
	return s
}

// screenshot saves the whole page as <name>.png and checks it is a PNG of the page's size.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	var metrics struct {
		CSSContentSize struct {
			Width, Height float64
		} `json:"cssContentSize"`
	}
	b.call(b.session, "Page.getLayoutMetrics", nil, &metrics)
	w, h := metrics.CSSContentSize.Width, metrics.CSSContentSize.Height
	if w < 1200 {
		w = 1200
	}
	h = min(max(h, 900), 6000)
	var shot struct {
		Data string `json:"data"`
	}
	b.call(b.session, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true,
		"clip": map[string]any{"x": 0, "y": 0, "width": w, "height": h, "scale": 1}}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 2000 {
		b.t.Fatalf("screenshot %s: not a PNG (%d bytes, %v)", name, len(png), err)
	}
	path := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", path)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestBrowser_Console logs into the console in Chromium, looks at the dashboard, adds an
// attester by pasting its JWK set, disables it, views and filters decisions, opens an instance
// and revokes it, and reads the change log — with a screenshot of each page.
func TestBrowser_Console(t *testing.T) {
	b := startBrowser(t)
	env := newAdminServer(t)
	inst1, _ := seedDecisions(t, env)
	ctx := context.Background()

	b.navigate(env.URL + "/admin/ui/")
	if loc := b.location(); loc != "/admin/ui/login" {
		t.Fatalf("signed out: at %s, want the login page", loc)
	}
	b.screenshot("01-login")
	b.submit("sign in with a wrong token", `document.querySelector('#token').value = 'not-the-token-0000000'; document.querySelector('#signin').click()`)
	if !strings.Contains(b.text(), "not the admin token") {
		t.Fatalf("wrong token page: %s", b.text())
	}
	b.submit("sign in", `document.querySelector('#token').value = `+jsString(adminToken)+`; document.querySelector('#signin').click()`)
	if loc := b.location(); loc != "/admin/ui/" {
		t.Fatalf("after sign-in at %s: %s", loc, b.text())
	}
	dash := b.text()
	for _, want := range []string{"Dashboard", "attestations accepted", "test-attester", "Recent rejections", "pop_signature_invalid"} {
		if !strings.Contains(dash, want) {
			t.Fatalf("dashboard lacks %q:\n%s", want, dash)
		}
	}
	if bars := b.eval(`document.querySelectorAll('#chart rect[fill="#1f8a4c"]').length`); bars.(float64) < 2 {
		t.Fatalf("chart has %v accepted bars", bars)
	}
	b.screenshot("02-dashboard")

	b.navigate(env.URL + "/admin/ui/attesters")
	b.screenshot("03-attesters")
	key := newECKey(t)
	jwks, _ := json.Marshal(publicJWKS(t, key, "acme-2026"))
	b.submit("add attester", `
		document.querySelector('#id').value = 'acme';
		document.querySelector('#description').value = 'Acme Attester';
		document.querySelector('#keys').value = `+jsString(string(jwks))+`;
		document.querySelector('#add').click()`)
	if txt := b.text(); !strings.Contains(txt, "Attester acme added") || !strings.Contains(txt, "acme-2026") {
		t.Fatalf("after adding: %s", txt)
	}
	b.screenshot("04-attester-added")
	if a, err := env.Store.GetAttester(ctx, "acme"); err != nil || !a.Enabled || a.Source != "console" {
		t.Fatalf("stored attester %+v %v", a, err)
	}
	b.submit("refused add", `
		document.querySelector('#id').value = 'acme';
		document.querySelector('#keys').value = '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}';
		document.querySelector('#add').click()`)
	if txt := b.text(); !strings.Contains(txt, "2 problems to fix") || !strings.Contains(txt, "already exists") || !strings.Contains(txt, "symmetric") {
		t.Fatalf("refused add: %s", txt)
	}
	b.screenshot("05-attester-problems")
	b.submit("disable acme", `document.querySelector('form[action="/admin/ui/attesters/acme/disable"] button').click()`)
	if a, _ := env.Store.GetAttester(ctx, "acme"); a.Enabled {
		t.Fatal("acme still enabled after clicking Disable")
	}

	b.navigate(env.URL + "/admin/ui/clients")
	if txt := b.text(); !strings.Contains(txt, "not attested") || !strings.Contains(txt, "vouched for by test-attester") {
		t.Fatalf("clients page: %s", txt)
	}
	b.screenshot("06-clients")

	b.navigate(env.URL + "/admin/ui/decisions")
	b.submit("filter decisions", `document.querySelector('#f_decision').value = 'rejected'; document.querySelector('#filters').submit()`)
	if loc := b.location(); !strings.Contains(loc, "decision=rejected") {
		t.Fatalf("filter URL %s", loc)
	}
	if rows := b.eval(`document.querySelectorAll('tbody tr').length`); rows.(float64) != 2 {
		t.Fatalf("%v rejected rows, want 2", rows)
	}
	b.screenshot("07-decisions-rejected")

	jkt := thumbprint(t, inst1)
	b.navigate(env.URL + "/admin/ui/decisions?instance_jkt=" + jkt)
	b.submit("open instance", `document.querySelector('a[href="/admin/ui/instances/`+jkt+`"]').click()`)
	if txt := b.text(); !strings.Contains(txt, jkt) || !strings.Contains(txt, "Revoke this instance key") {
		t.Fatalf("instance page: %s", txt)
	}
	b.screenshot("08-instance")
	b.submit("revoke", `document.querySelector('#reason').value = 'device reported stolen'; document.querySelector('#revoke-button').click()`)
	if txt := b.text(); !strings.Contains(txt, "Instance key revoked") || !strings.Contains(txt, "device reported stolen") {
		t.Fatalf("after revoke: %s", txt)
	}
	b.screenshot("09-instance-revoked")
	if revoked, _ := env.Store.IsInstanceRevoked(ctx, jkt); !revoked {
		t.Fatal("instance not revoked in the database")
	}
	if r := env.post("/oauth2/token", ccForm, env.attestedHeaders(agentID, inst1, "")); r.Status != 401 || r.Error != "invalid_client" {
		t.Fatalf("token for the revoked instance: %d %s", r.Status, r.Error)
	}

	b.navigate(env.URL + "/admin/ui/changes")
	txt := b.text()
	for _, want := range []string{"revoke", "disable", "create", "device reported stolen"} {
		if !strings.Contains(txt, want) {
			t.Fatalf("change log lacks %q: %s", want, txt)
		}
	}
	b.screenshot("10-change-log")
	changes, err := env.Store.ListAdminChanges(ctx, storage.AdminChangeFilter{})
	if err != nil || len(changes) != 3 {
		t.Fatalf("changes = %+v %v", changes, err)
	}
	for _, c := range changes {
		if c.Actor != "console" {
			t.Fatalf("change by %q, want console", c.Actor)
		}
	}

	b.submit("sign out", `document.querySelector('header form button').click()`)
	if loc := b.location(); loc != "/admin/ui/login" {
		t.Fatalf("after sign-out at %s", loc)
	}
	b.navigate(env.URL + "/admin/ui/decisions")
	if loc := b.location(); loc != "/admin/ui/login" {
		t.Fatalf("signed-out decisions at %s", loc)
	}
}
