package reliability

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// privatePostgres is a PostgreSQL server of this test alone: its own data directory, socket
// directory and loopback port, so stopping it never touches the machine's shared server.
type privatePostgres struct {
	t       *testing.T
	bin     string   // directory holding initdb and pg_ctl
	runAs   []string // prefix that runs a command as the postgres OS user (when we are root)
	dir     string   // owned by the server's user: data/, the socket, the log
	port    int
	stopped bool
}

// findPostgresBin returns the directory of initdb and pg_ctl, or "" when PostgreSQL is not
// installed.
func findPostgresBin() string {
	candidates := []string{"/usr/local/bin"}
	if p, err := exec.LookPath("initdb"); err == nil {
		candidates = append(candidates, filepath.Dir(p))
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	candidates = append(candidates, matches...)
	for _, dir := range candidates {
		if isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "pg_ctl")) {
			return dir
		}
	}
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// requirePostgresTools skips the test when PostgreSQL is not installed, except in CI
// (CI=true), where the database-fault test is required (issue 7).
func requirePostgresTools(t *testing.T) string {
	t.Helper()
	bin := findPostgresBin()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("PostgreSQL (initdb, pg_ctl) is required in CI for the database-fault test")
		}
		t.Skip("PostgreSQL tools (initdb, pg_ctl) not found; the database-fault test needs them (required when CI=true)")
	}
	return bin
}

// newPrivatePostgres initialises a cluster in a fresh temporary directory and starts it on a
// free loopback port. Running as root, every PostgreSQL command runs as the postgres user, which
// owns the directory. The cluster is stopped and removed when the test ends.
func newPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	p := &privatePostgres{t: t, bin: requirePostgresTools(t)}
	dir, err := os.MkdirTemp("", "authz-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir = dir
	t.Cleanup(func() {
		if !p.stopped {
			_ = p.pgctl("stop", "-m", "immediate", "-w")
		}
		_ = os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs a postgres OS user for initdb: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			t.Fatalf("running as root needs runuser to become postgres: %v", err)
		}
		p.runAs = []string{runuser, "-u", "postgres", "--"}
	}
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, portStr, _ := net.SplitHostPort(addr)
	p.port, _ = strconv.Atoi(portStr)

	if out, err := p.run(filepath.Join(p.bin, "initdb"), "-D", p.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.start()
	return p
}

func (p *privatePostgres) data() string { return filepath.Join(p.dir, "data") }

// DSN is the authz database URL of the private server.
func (p *privatePostgres) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// start starts the server and waits until it accepts connections (pg_ctl -w).
func (p *privatePostgres) start() {
	p.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", p.port, p.dir)
	if err := p.pgctl("start", "-w", "-t", "60", "-l", filepath.Join(p.dir, "server.log"), "-o", opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "server.log"))
		p.t.Fatalf("pg_ctl start: %v\n%s", err, log)
	}
	p.stopped = false
}

// stop stops the server at once, the way a crash or an operator's emergency stop does: every
// session is cut (pg_ctl -m immediate).
func (p *privatePostgres) stop() {
	p.t.Helper()
	if err := p.pgctl("stop", "-m", "immediate", "-w"); err != nil {
		p.t.Fatalf("pg_ctl stop: %v", err)
	}
	p.stopped = true
}

func (p *privatePostgres) pgctl(args ...string) error {
	out, err := p.run(filepath.Join(p.bin, "pg_ctl"), append([]string{"-D", p.data()}, args...)...)
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

func (p *privatePostgres) run(name string, args ...string) ([]byte, error) {
	argv := append(append(append([]string(nil), p.runAs...), name), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = p.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second // never hang on a pipe a background postmaster kept open
	err := cmd.Run()
	return out.Bytes(), err
}
