package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/authz/authz/config"
	"github.com/authz/authz/internal/testkit"
	"github.com/authz/authz/server"
	"github.com/authz/authz/storage"
)

// startServer runs a real authz server in-process over a fresh SQLite file with the bench
// configuration and returns the fixture its requests must be made from and its address.
func startServer(t testing.TB) (*Fixture, string) {
	t.Helper()
	ln := testkit.Listen(t)
	addr := ln.Addr().String()
	fx, err := NewFixture("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	data, err := fx.ConfigYAML(ServerOptions{Listen: addr, Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "authz.db")})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := storage.Open(ctx, storage.Options{Driver: cfg.Database.Driver, DSN: cfg.Database.DSN, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(ctx, cfg, st, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	testkit.Serve(t, func() error { return srv.Serve(ctx, ln) }, cancel)
	return fx, addr
}

// TestRun_EveryScenarioIssuesTokens drives every scenario's pre-generated requests at a real
// server until the pool runs out: the attestations, PoPs, DPoP proofs, client assertions and
// Basic credentials all pass the server's checks, and nothing fails. A run ends when the pool is
// exhausted; requests still in flight then are not counted, so at most concurrency-1 are missing.
func TestRun_EveryScenarioIssuesTokens(t *testing.T) {
	fx, addr := startServer(t)
	for _, sc := range Scenarios {
		t.Run(sc, func(t *testing.T) {
			n, concurrency := 40, 4
			pool, err := fx.Generate(sc, GenerateOptions{Requests: n, Instances: 3, Host: addr})
			if err != nil {
				t.Fatal(err)
			}
			if sc == ScenarioSecretBasic {
				// One bcrypt comparison per request (slow under -race): two requests, in turn.
				n, concurrency = 2, 1
				pool = &Pool{reqs: []Request{pool.reqs[0], pool.reqs[0]}}
			}
			var measured []bool
			res, err := Run(t.Context(), pool, LoadOptions{Targets: []string{addr}, Concurrency: concurrency, Duration: 10 * time.Minute,
				OnMeasure: func(start bool) { measured = append(measured, start) }})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Exhausted || res.Errors != 0 || res.OK > n || res.OK < n-(concurrency-1) {
				t.Fatalf("exhausted %v ok %d errors %d (of %d), first error %q", res.Exhausted, res.OK, res.Errors, n, res.FirstError)
			}
			if len(res.Latencies) != res.OK || res.Percentile(0.5) <= 0 || res.Percentile(1) < res.Percentile(0.5) {
				t.Fatalf("latencies: %d for %d tokens, p50 %s max %s", len(res.Latencies), res.OK, res.Percentile(0.5), res.Percentile(1))
			}
			if len(measured) != 2 || !measured[0] || measured[1] {
				t.Fatalf("OnMeasure calls = %v, want [true false]", measured)
			}
		})
	}
}

// TestRun_ReplayedRequestsAreErrors checks that the generator counts refusals as errors (and
// that the server refuses a replayed PoP, ABCA-09 §11.1): a pool whose requests all carry the
// same PoP yields one token, then 401s.
func TestRun_ReplayedRequestsAreErrors(t *testing.T) {
	fx, addr := startServer(t)
	pool, err := fx.Generate(ScenarioAttest, GenerateOptions{Requests: 1, Instances: 1, Host: addr})
	if err != nil {
		t.Fatal(err)
	}
	same := pool.reqs[0]
	replayed := &Pool{reqs: []Request{same, same, same, same, same}}
	res, err := Run(t.Context(), replayed, LoadOptions{Targets: []string{addr}, Concurrency: 1, Duration: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Exhausted || res.OK != 1 || res.Errors != 4 || !bytes.Contains([]byte(res.FirstError), []byte("HTTP 401")) {
		t.Fatalf("exhausted %v ok %d errors %d first %q, want exhausted, 1 token, 4 HTTP 401", res.Exhausted, res.OK, res.Errors, res.FirstError)
	}
}

// TestGenerate_RequestsAreWellFormed parses every scenario's requests as HTTP/1.1 and checks
// the credential each carries; proofs are unique per request, attestations shared per instance.
func TestGenerate_RequestsAreWellFormed(t *testing.T) {
	fx, err := NewFixture("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		header        string // per-request credential header ("" = in the body)
		shared        string // per-instance header
		wantDistinct  int
		wantBodyParam string
	}{
		{ScenarioAttest, "Oauth-Client-Attestation-Pop", "Oauth-Client-Attestation", 6, "client_id"},
		{ScenarioAttestDPoP, "Dpop", "Oauth-Client-Attestation", 6, "client_id"},
		{ScenarioPrivateKey, "", "", 6, "client_assertion"},
		{ScenarioSecretBasic, "Authorization", "", 1, "grant_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool, err := fx.Generate(tc.name, GenerateOptions{Requests: 6, Instances: 2, Host: "127.0.0.1:1"})
			if err != nil {
				t.Fatal(err)
			}
			proofs, shared := map[string]bool{}, map[string]bool{}
			for range 6 {
				req, ok := pool.Take()
				if !ok {
					t.Fatal("pool ran out early")
				}
				var buf bytes.Buffer
				for _, p := range req {
					buf.Write(p)
				}
				if buf.Len() != req.Len() {
					t.Fatalf("Len %d, bytes %d", req.Len(), buf.Len())
				}
				r, err := http.ReadRequest(bufio.NewReader(&buf))
				if err != nil {
					t.Fatal(err)
				}
				if err := r.ParseForm(); err != nil {
					t.Fatal(err)
				}
				if r.Method != http.MethodPost || r.URL.Path != "/oauth2/token" || r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get(tc.wantBodyParam) == "" {
					t.Fatalf("request %s %s form %v", r.Method, r.URL, r.PostForm)
				}
				if tc.header != "" {
					proofs[r.Header.Get(tc.header)] = true
				} else {
					proofs[r.PostForm.Get("client_assertion")] = true
				}
				if tc.shared != "" {
					shared[r.Header.Get(tc.shared)] = true
				}
			}
			if len(proofs) != tc.wantDistinct {
				t.Fatalf("%d distinct credentials in 6 requests, want %d", len(proofs), tc.wantDistinct)
			}
			if tc.shared != "" && len(shared) != 2 {
				t.Fatalf("%d distinct attestations for 2 instances", len(shared))
			}
			if _, ok := pool.Take(); ok != (tc.name == ScenarioSecretBasic) {
				t.Fatalf("Take after 6: ok=%v", ok)
			}
		})
	}
}

func TestGenerate_UnknownScenario(t *testing.T) {
	fx, err := NewFixture("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.Generate("client_secret_jwt", GenerateOptions{Requests: 1}); err == nil {
		t.Fatal("unknown scenario accepted")
	}
}

func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr error
	}{
		{"plain", "1234 (authz) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0", 3 * time.Second, nil},
		{"name_with_spaces_and_parens", "1234 (my (odd) name) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0", 100 * time.Millisecond, nil},
		{"no_parenthesis", "1234 authz S 1", 0, ErrNoProc},
		{"short", "1234 (authz) S 1 2 3", 0, ErrNoProc},
		{"not_a_number", "1234 (authz) S 1 1 1 0 -1 0 0 0 0 0 x 3 0 0 20 0 1 0", 0, ErrNoProc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tc.stat))
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Fatalf("parseStatCPU = %s, %v; want %s, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseStatusKB(t *testing.T) {
	status := "Name:\tauthz\nVmPeak:\t  900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40000 kB\n"
	for _, tc := range []struct {
		name    string
		key     string
		want    int64
		wantErr error
	}{
		{"vmhwm", "VmHWM:", 50 << 20, nil},
		{"missing", "VmSwap:", 0, ErrNoProc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatusKB([]byte(status), tc.key)
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Fatalf("parseStatusKB = %d, %v; want %d, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestProcessAccounting reads this test process's own CPU time and peak RSS.
func TestProcessAccounting(t *testing.T) {
	cpu, err := ProcessCPU(os.Getpid())
	if errors.Is(err, ErrNoProc) {
		t.Skip("no /proc on this system")
	}
	if err != nil || cpu < 0 {
		t.Fatalf("ProcessCPU = %s, %v", cpu, err)
	}
	rss, err := PeakRSS(os.Getpid())
	if err != nil || rss <= 0 {
		t.Fatalf("PeakRSS = %d, %v", rss, err)
	}
}

func TestParseKernelCounters(t *testing.T) {
	io := "rchar: 5000\nwchar: 600\nsyscr: 12\nsyscw: 30\nread_bytes: 0\n"
	status := "Name:\tauthz\nvoluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t3\n"
	for _, tc := range []struct {
		name    string
		parse   func([]byte) (int64, error)
		data    string
		want    int64
		wantErr error
	}{
		{"io", parseIOCalls, io, 42, nil},
		{"io_missing_syscw", parseIOCalls, "syscr: 12\n", 0, ErrNoProc},
		{"io_not_a_number", parseIOCalls, "syscr: x\nsyscw: 1\n", 0, ErrNoProc},
		{"io_negative", parseIOCalls, "syscr: -1\nsyscw: 1\n", 0, ErrNoProc},
		{"io_empty", parseIOCalls, "", 0, ErrNoProc},
		{"status", parseCtxSwitches, status, 10, nil},
		{"status_missing_involuntary", parseCtxSwitches, "voluntary_ctxt_switches:\t7\n", 0, ErrNoProc},
		{"status_overflow", parseCtxSwitches, "voluntary_ctxt_switches: 99999999999999999999\nnonvoluntary_ctxt_switches: 1\n", 0, ErrNoProc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.parse([]byte(tc.data))
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Fatalf("got %d, %v; want %d, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
	user, sys, err := parseStatTimes([]byte("1234 (authz) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0"))
	if err != nil || user != 2500*time.Millisecond || sys != 500*time.Millisecond {
		t.Fatalf("parseStatTimes = %s, %s, %v", user, sys, err)
	}
}

// TestProcessKernel reads this test process's own kernel counters: it has read files and
// switched context, so both counts are positive.
func TestProcessKernel(t *testing.T) {
	k, err := ProcessKernel(os.Getpid())
	if errors.Is(err, ErrNoProc) {
		t.Skip("no /proc on this system")
	}
	if err != nil || k.IOCalls <= 0 || k.CtxSwitches <= 0 || k.SysCPU < 0 {
		t.Fatalf("ProcessKernel = %+v, %v", k, err)
	}
	c, err := MeasureKernelCost(100)
	if err != nil || c.Syscall <= 0 || c.WakeupTrip <= 0 {
		t.Fatalf("MeasureKernelCost = %+v, %v", c, err)
	}
}

func TestMedianRun(t *testing.T) {
	runs := func(rates ...float64) []Result {
		out := make([]Result, len(rates))
		for i, r := range rates {
			out[i] = Result{Rate: r, Tokens: int(r) * 10}
		}
		return out
	}
	for _, tc := range []struct {
		name               string
		in                 []Result
		want, wantMin, max float64
	}{
		{"one", runs(3000), 3000, 3000, 3000},
		{"odd", runs(3100, 2700, 3500), 3100, 2700, 3500},
		{"even_takes_lower_middle", runs(4000, 3000, 3200, 2000), 3000, 2000, 4000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rates := func(rs []Result) []float64 {
				var out []float64
				for _, r := range rs {
					out = append(out, r.Rate)
				}
				return out
			}
			before := rates(tc.in)
			got := medianRun(tc.in)
			if got.Rate != tc.want || got.Tokens != int(tc.want)*10 || got.RateMin != tc.wantMin || got.RateMax != tc.max || got.Runs != len(tc.in) {
				t.Fatalf("medianRun = %+v", got)
			}
			if !slices.Equal(before, rates(tc.in)) {
				t.Fatal("medianRun reordered its argument")
			}
		})
	}
}

func TestIsBackendOf(t *testing.T) {
	for _, tc := range []struct {
		name, title string
		want        bool
	}{
		{"idle_backend", "postgres: postgres authz_bench_01 127.0.0.1(5432) idle\x00", true},
		{"with_cluster_name", "postgres: 15/main: postgres authz_bench_01 127.0.0.1(40522) idle in transaction", true},
		{"cluster_background_process", "postgres: 15/main: checkpointer ", false},
		{"other_database", "postgres: postgres authz_test_99 127.0.0.1(5432) idle", false},
		{"prefix_of_name", "postgres: postgres authz_bench_01x 127.0.0.1(5432) idle", false},
		{"walwriter", "postgres: walwriter ", false},
		{"not_postgres", "authz serve --config authz_bench_01", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := isBackendOf(tc.title, "authz_bench_01"); got != tc.want {
				t.Fatalf("isBackendOf(%q) = %v, want %v", tc.title, got, tc.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"median_of_four", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p99_of_hundred", ms(seq(100)...), 0.99, 99 * time.Millisecond},
		{"max", ms(1, 5, 9), 1, 9 * time.Millisecond},
		{"min", ms(1, 5, 9), 0, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.q); got != tc.want {
				t.Fatalf("percentile(%v) = %s, want %s", tc.q, got, tc.want)
			}
		})
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

func TestMeasureCrypto(t *testing.T) {
	c, err := MeasureCrypto(20)
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]time.Duration{
		"verify_attestation": c.VerifyAttestation, "verify_pop": c.VerifyPoP, "verify_dpop": c.VerifyDPoP,
		"verify_assertion": c.VerifyAssertion, "sign_access_token": c.SignAccessToken,
		"raw_verify": c.RawVerify, "raw_sign": c.RawSign,
	} {
		if d < 0 {
			t.Errorf("%s = %s", name, d)
		}
	}
	if c.PerRequest(ScenarioAttest) != c.VerifyAttestation+c.VerifyPoP+c.SignAccessToken || c.PerRequest("other") != 0 {
		t.Fatalf("PerRequest = %s", c.PerRequest(ScenarioAttest))
	}
}

// BenchmarkCryptoBound measures each unavoidable step of an attested token request, the figures
// `make bench` divides by the server's CPU per token.
func BenchmarkCryptoBound(b *testing.B) {
	m, err := newCryptoMaterial()
	if err != nil {
		b.Fatal(err)
	}
	cnf, err := m.verifyAttestation()
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		op   func() error
	}{
		{"verify_attestation", func() error { _, err := m.verifyAttestation(); return err }},
		{"verify_pop", func() error { return m.verifyPoP(cnf) }},
		{"verify_dpop", m.verifyDPoP},
		{"verify_client_assertion", m.verifyAssertion},
		{"sign_access_token", m.signAccessToken},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.op(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTokenEndpoint issues b.N tokens per scenario from an in-process server on SQLite over
// loopback HTTP/1.1 (8 connections). Client and server share the process, so for the server's
// own cost use `make bench`; this one is for quick comparisons and profiles:
//
//	go test -run '^$' -bench 'TokenEndpoint/attest_jwt_client_auth$' -cpuprofile cpu.out ./bench
func BenchmarkTokenEndpoint(b *testing.B) {
	fx, addr := startServer(b)
	for _, sc := range []string{ScenarioAttest, ScenarioAttestDPoP, ScenarioPrivateKey} {
		b.Run(sc, func(b *testing.B) {
			pool, err := fx.Generate(sc, GenerateOptions{Requests: b.N, Instances: 8, Host: addr})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			res, err := Run(b.Context(), pool, LoadOptions{Targets: []string{addr}, Concurrency: 8, Duration: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			if res.Errors > 0 {
				b.Fatalf("%d errors, first %q", res.Errors, res.FirstError)
			}
			b.ReportMetric(res.Rate(), "tokens/s")
		})
	}
}
