package reliability

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrExited is returned when the server process ended before it was ready.
var ErrExited = errors.New("reliability: authz exited")

// BuildAuthz compiles cmd/authz into dir and returns the binary's path. It must run inside the
// module (tests do; make soak does). With race the binary has the race detector (tests built with
// -race then share the compiled packages, and a data race under load shows in the server's log).
func BuildAuthz(ctx context.Context, dir string, race bool) (string, error) {
	bin := filepath.Join(dir, "authz")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "github.com/authz/authz/cmd/authz")...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("reliability: go build cmd/authz: %w: %s", err, out)
	}
	return bin, nil
}

// FreeAddr returns a loopback address with a port the kernel just handed out and released.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("reliability: listen: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// ServerConfig describes the YAML configuration the harness writes for `authz serve`
// (interface.md "Configuration file"). Attesters and clients are written as given.
type ServerConfig struct {
	Addr      string           // loopback host:port; the issuer is http://Addr
	Driver    string           // sqlite | postgres
	DSN       string           // file path or postgres URL
	Attesters []map[string]any // attesters[] entries
	Clients   []map[string]any // clients[] entries
	// RateLimit is written as rate_limit; nil disables both limits.
	RateLimit map[string]any
	// Extra top-level keys (attestation, http, tokens, ...).
	Extra map[string]any
}

// Issuer is the server's issuer identifier.
func (c ServerConfig) Issuer() string { return "http://" + c.Addr }

// Write writes the configuration as YAML to path (0600: it may hold client secrets).
func (c ServerConfig) Write(path string) error {
	doc := map[string]any{
		"issuer":    c.Issuer(),
		"listen":    c.Addr,
		"database":  map[string]any{"driver": c.Driver, "dsn": c.DSN},
		"attesters": c.Attesters,
		"clients":   c.Clients,
		"log":       map[string]any{"level": "info", "format": "json"},
		"rate_limit": map[string]any{
			"per_address": 0, "per_address_burst": 0, "per_client": 0, "per_client_burst": 0,
		},
	}
	if c.RateLimit != nil {
		doc["rate_limit"] = c.RateLimit
	}
	for k, v := range c.Extra {
		doc[k] = v
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return fmt.Errorf("reliability: marshal config: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("reliability: write config: %w", err)
	}
	return nil
}

// Process is one `authz serve` subprocess. Its stderr (JSON logs) is consumed continuously; the
// last lines are kept for failure messages and the error-level lines are counted.
type Process struct {
	URL string

	cmd  *exec.Cmd
	done chan struct{}
	err  error // the Wait result, set before done closes

	mu     sync.Mutex
	tail   []string
	errors []string
}

const tailLines = 200

// Start runs `bin serve --config cfgPath` and returns once the server logs that it serves
// (its listener is bound by then), or an error when it exits first or ctx ends.
func Start(ctx context.Context, bin, cfgPath, url string) (*Process, error) {
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("reliability: stderr pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("reliability: start authz: %w", err)
	}
	p := &Process{URL: url, cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	go p.consume(stderr, ready)
	select {
	case <-ready:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%w before serving (%v): %s", ErrExited, p.err, p.Tail())
	case <-ctx.Done():
		_ = p.Kill()
		return nil, fmt.Errorf("reliability: authz not serving: %w: %s", ctx.Err(), p.Tail())
	}
}

// consume reads the JSON log lines until the process ends, signals ready on "authz serving",
// then reaps the process.
func (p *Process) consume(r io.Reader, ready chan<- struct{}) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	signalled := false
	for sc.Scan() {
		line := sc.Text()
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		_ = json.Unmarshal([]byte(line), &rec)
		p.mu.Lock()
		p.tail = append(p.tail, line)
		if len(p.tail) > tailLines {
			p.tail = p.tail[len(p.tail)-tailLines:]
		}
		if rec.Level == "ERROR" || strings.Contains(line, "panic") || strings.Contains(line, "DATA RACE") {
			p.errors = append(p.errors, line)
		}
		p.mu.Unlock()
		if !signalled && rec.Msg == "authz serving" {
			signalled = true
			close(ready)
		}
	}
	_, _ = io.Copy(io.Discard, r)
	p.err = p.cmd.Wait()
	close(p.done)
}

// PID is the server's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Tail returns the last log lines.
func (p *Process) Tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// ErrorLines returns every error-level log line so far, and any line reporting a panic or a
// data race.
func (p *Process) ErrorLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errors...)
}

// Kill sends SIGKILL (a crash: nothing is drained or flushed) and waits for the process to die.
func (p *Process) Kill() error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("reliability: kill authz: %w", err)
	}
	<-p.done
	return nil
}

// Stop sends SIGTERM and waits up to timeout for a drained exit (interface.md: exit 0); after the
// timeout the process is killed and an error returned.
func (p *Process) Stop(timeout time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("reliability: signal authz: %w", err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("reliability: authz exit after SIGTERM: %w", p.err)
		}
		return nil
	case <-time.After(timeout):
		_ = p.Kill()
		return fmt.Errorf("reliability: authz did not drain within %s", timeout)
	}
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// RSS is the server's resident set size in bytes, from /proc/PID/status (Linux).
func (p *Process) RSS() (int64, error) {
	return ProcessRSS(p.PID())
}

// AnonRSS is the server's anonymous resident memory (heap, stacks) in bytes: RSS without the
// file-backed pages, which for authz on SQLite are mostly the database's memory map (decision
// S14) and grow with the database, not with a leak.
func (p *Process) AnonRSS() (int64, error) {
	return statusBytes(p.PID(), "RssAnon:")
}

// ProcessRSS reads VmRSS of pid from /proc (Linux).
func ProcessRSS(pid int) (int64, error) {
	return statusBytes(pid, "VmRSS:")
}

// statusBytes reads one "Key: N kB" line of /proc/PID/status.
func statusBytes(pid int, key string) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("reliability: read /proc status: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, key)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("reliability: %s %q: %w", key, rest, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("reliability: no %s in /proc/%d/status", key, pid)
}
