package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// FreeAddr returns a loopback host:port that was free a moment ago (the kernel picked it). The
// server binds it itself, so there is a small window in which another process could take it.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: free port: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("bench: free port: %w", err)
	}
	return addr, nil
}

// Process is a running server child process.
type Process struct {
	cmd     *exec.Cmd
	Addr    string // host:port it listens on
	LogPath string // its stderr
	done    chan struct{}
	waitErr error
}

// StartOptions describe a child server.
type StartOptions struct {
	Path    string   // executable
	Args    []string // e.g. serve --config FILE
	Addr    string   // host:port it will listen on; readiness is polled there
	LogPath string   // stdout and stderr go here
	Env     []string // extra environment
	Ready   time.Duration
}

// Start runs the child and waits until GET /readyz answers 200 (database reachable), the child
// exits, or o.Ready (default 60 s) passes.
func Start(ctx context.Context, o StartOptions) (*Process, error) {
	logf, err := os.Create(o.LogPath)
	if err != nil {
		return nil, fmt.Errorf("bench: server log: %w", err)
	}
	cmd := exec.Command(o.Path, o.Args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), o.Env...)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("bench: start %s: %w", o.Path, err)
	}
	p := &Process{cmd: cmd, Addr: o.Addr, LogPath: o.LogPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	ready := o.Ready
	if ready <= 0 {
		ready = 60 * time.Second
	}
	if err := p.waitReady(ctx, ready); err != nil {
		_ = p.Stop()
		return nil, err
	}
	return p, nil
}

// PID is the child's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

func (p *Process) waitReady(ctx context.Context, limit time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	url := "http://" + p.Addr + "/readyz"
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("bench: server exited before it was ready (%v); log %s:\n%s", p.waitErr, p.LogPath, p.LogTail(20))
		case <-deadline.C:
			return fmt.Errorf("bench: server not ready on %s after %s; log %s:\n%s", p.Addr, limit, p.LogPath, p.LogTail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Stop sends SIGTERM (authz drains and exits 0, interface.md) and waits up to 30 s, then kills.
func (p *Process) Stop() error {
	select {
	case <-p.done:
		return p.exitErr()
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("bench: stop server: %w", err)
	}
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-p.done:
		return p.exitErr()
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("bench: server %d did not exit within 30s of SIGTERM; killed", p.PID())
	}
}

func (p *Process) exitErr() error {
	if p.waitErr != nil {
		return fmt.Errorf("bench: server exited: %w; log %s:\n%s", p.waitErr, p.LogPath, p.LogTail(20))
	}
	return nil
}

// LogTail returns the last n lines of the child's log.
func (p *Process) LogTail(n int) string {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
