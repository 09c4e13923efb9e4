package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Backends.
const (
	BackendSQLite   = "sqlite"
	BackendPostgres = "postgres"
)

// Options configure a whole `make bench` run.
type Options struct {
	// Command returns the executable and arguments that run one server with the configuration
	// file cfgPath; profilePath is where a profiling server writes its CPU profile ("" = none).
	Command     func(cfgPath, profilePath string) (string, []string)
	Scenarios   []string
	Backends    []string // sqlite, postgres (postgres needs PostgresDSN)
	Concurrency int
	Warmup      time.Duration
	Duration    time.Duration
	// MaxRate sizes the pre-generated pool: MaxRate × (Warmup+Duration) requests. A run that
	// uses them all ends early and says so.
	MaxRate   int
	Instances int // client instances per attestation scenario (default Concurrency)
	// PostgresDSN is a postgres:// URL of a server on which fresh databases are created and
	// dropped; empty skips PostgreSQL.
	PostgresDSN      string
	Replicas         int      // replicas sharing one PostgreSQL database for the replica runs (< 2: none)
	ReplicaScenarios []string // scenarios run against the replicas
	CryptoIterations int
	// Repeat runs every (backend, scenario) this many times, in rounds so that the repetitions of
	// one alternate with the others, and reports the run with the median tokens/s (and the range).
	Repeat     int
	WorkDir    string // configurations, databases, logs
	ProfileDir string // when set, each server writes a CPU profile there
	Log        io.Writer
}

// Result is one (backend, replicas, scenario) run.
type Result struct {
	Backend     string        `json:"backend"`
	Replicas    int           `json:"replicas"`
	Scenario    string        `json:"scenario"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	Tokens      int           `json:"tokens"`
	Errors      int           `json:"errors"`
	Rate        float64       `json:"tokens_per_second"`
	P50         time.Duration `json:"p50_ns"`
	P90         time.Duration `json:"p90_ns"`
	P99         time.Duration `json:"p99_ns"`
	Max         time.Duration `json:"max_ns"`
	ServerCPU   time.Duration `json:"server_cpu_ns"`                 // all replicas, measuring window only
	CPUPerTok   time.Duration `json:"server_cpu_per_token_ns"`       // ServerCPU / Tokens
	DBCPUPerTok time.Duration `json:"db_cpu_per_token_ns,omitempty"` // PostgreSQL backends of the run's database, per token
	WALPerTok   int64         `json:"wal_bytes_per_token,omitempty"` // PostgreSQL WAL written per token (cluster-wide)
	PeakRSS     int64         `json:"peak_rss_bytes"`                // largest VmHWM of its replicas
	// Kernel figures of the servers in the window (ProcessKernel): the share of their CPU spent
	// in the kernel, and read/write system calls and context switches per token.
	KernelShare    float64       `json:"kernel_cpu_share"`
	IOCallsPerTok  float64       `json:"io_syscalls_per_token"`
	CtxSwitchPerTk float64       `json:"context_switches_per_token"`
	CryptoReq      time.Duration `json:"crypto_per_request_ns"`    // the scenario's crypto bound
	Efficiency     float64       `json:"efficiency"`               // CryptoReq / CPUPerTok
	Exhausted      bool          `json:"pool_exhausted,omitempty"` // window shortened
	FirstError     string        `json:"first_error,omitempty"`
	Profiles       []string      `json:"profiles,omitempty"`
	// Runs is how many runs of this (backend, scenario) were made (Options.Repeat); the figures
	// are those of the run with the median tokens/s, RateMin and RateMax the range.
	Runs    int     `json:"runs"`
	RateMin float64 `json:"tokens_per_second_min"`
	RateMax float64 `json:"tokens_per_second_max"`
}

// Label names the backend with its replica count.
func (r Result) Label() string {
	if r.Replicas > 1 {
		return fmt.Sprintf("%s x%d", r.Backend, r.Replicas)
	}
	return r.Backend
}

// Report is everything one run printed.
type Report struct {
	Started     time.Time     `json:"started"`
	CPUs        int           `json:"cpus"`
	GoVersion   string        `json:"go_version"`
	LoadAverage string        `json:"load_average_at_start"`
	Concurrency int           `json:"concurrency"`
	Duration    time.Duration `json:"duration_ns"`
	Crypto      CryptoBound   `json:"crypto"`
	Kernel      KernelCost    `json:"kernel"`
	Results     []Result      `json:"results"`
	Notes       []string      `json:"notes,omitempty"`
}

// Execute runs the crypto bound, then every scenario on every backend, then the replica runs.
// Failures of one run (a server that does not start, say) are noted and the others still run.
func Execute(ctx context.Context, o Options) (*Report, error) {
	if o.Command == nil {
		return nil, errors.New("bench: no server command")
	}
	o.Concurrency = max(o.Concurrency, 1)
	if o.Instances <= 0 {
		o.Instances = o.Concurrency
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	rep := &Report{
		Started: time.Now().UTC(), CPUs: runtime.NumCPU(), GoVersion: runtime.Version(),
		LoadAverage: loadAverage(), Concurrency: o.Concurrency, Duration: o.Duration,
	}
	fmt.Fprintf(o.Log, "measuring the crypto bound (%d iterations per step, one goroutine)...\n", o.CryptoIterations)
	var err error
	if rep.Crypto, err = MeasureCrypto(o.CryptoIterations); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "  %s\n", rep.Crypto.Summary())
	if rep.Kernel, err = MeasureKernelCost(200_000); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "  machine: %s\n", rep.Kernel.Summary())

	type run struct {
		backend  string
		replicas int
		scenario string
	}
	var plan []run
	for _, backend := range o.Backends {
		if backend == BackendPostgres && o.PostgresDSN == "" {
			rep.Notes = append(rep.Notes, "PostgreSQL skipped: no server reachable")
			continue
		}
		for _, sc := range o.Scenarios {
			plan = append(plan, run{backend, 1, sc})
		}
	}
	if o.Replicas > 1 && o.PostgresDSN != "" {
		for _, sc := range o.ReplicaScenarios {
			plan = append(plan, run{BackendPostgres, o.Replicas, sc})
		}
	}
	rounds := max(o.Repeat, 1)
	runs := make([][]Result, len(plan))
	// An interrupted bench still reports the runs it completed.
	defer func() {
		for _, rs := range runs {
			if len(rs) > 0 {
				rep.Results = append(rep.Results, medianRun(rs))
			}
		}
	}()
	for round := range rounds {
		if rounds > 1 {
			fmt.Fprintf(o.Log, "round %d of %d\n", round+1, rounds)
		}
		for i, p := range plan {
			if r, ok := rep.runLogged(ctx, o, p.backend, p.replicas, p.scenario); ok {
				runs[i] = append(runs[i], r)
			}
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
		}
	}
	return rep, nil
}

// medianRun is the run with the median tokens/s (the lower middle one of an even count), with
// the number of runs and their range.
func medianRun(rs []Result) Result {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b Result) int { return cmp.Compare(a.Rate, b.Rate) })
	m := sorted[(len(sorted)-1)/2]
	m.Runs, m.RateMin, m.RateMax = len(sorted), sorted[0].Rate, sorted[len(sorted)-1].Rate
	return m
}

// runLogged makes one run and logs its headline figures; a failure becomes a note.
func (rep *Report) runLogged(ctx context.Context, o Options, backend string, replicas int, scenario string) (Result, bool) {
	label := Result{Backend: backend, Replicas: replicas}.Label()
	fmt.Fprintf(o.Log, "%-12s %-28s ", label, scenario)
	r, err := runOne(ctx, o, backend, replicas, scenario)
	if err != nil {
		fmt.Fprintf(o.Log, "FAILED: %v\n", err)
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s %s: %v", label, scenario, err))
		return Result{}, false
	}
	r.CryptoReq = rep.Crypto.PerRequest(scenario)
	if r.CPUPerTok > 0 {
		r.Efficiency = float64(r.CryptoReq) / float64(r.CPUPerTok)
	}
	fmt.Fprintf(o.Log, "%8.0f tokens/s  p99 %s  errors %d  cpu/token %s\n", r.Rate, fmtDur(r.P99), r.Errors, fmtMicros(r.CPUPerTok))
	if r.FirstError != "" {
		fmt.Fprintf(o.Log, "             first error: %s\n", r.FirstError)
	}
	return *r, true
}

// runOne starts the servers of one run on a fresh database, drives the load, and stops them.
func runOne(ctx context.Context, o Options, backend string, replicas int, scenario string) (res *Result, err error) {
	name := fmt.Sprintf("%s-%d-%s", backend, replicas, scenario)
	addrs := make([]string, replicas)
	for i := range addrs {
		if addrs[i], err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	fx, err := NewFixture("http://" + addrs[0])
	if err != nil {
		return nil, err
	}
	dsn := filepath.Join(o.WorkDir, name+".db")
	dbName := ""
	if backend == BackendPostgres {
		var drop func() error
		dsn, drop, err = FreshDatabase(ctx, o.PostgresDSN, "authz_bench")
		if err != nil {
			return nil, err
		}
		if u, perr := url.Parse(dsn); perr == nil {
			dbName = strings.TrimPrefix(u.Path, "/")
		}
		defer func() {
			if derr := drop(); derr != nil && err == nil {
				err = derr
			}
		}()
	}

	// Start every replica at once: schema migration and shared secrets are safe to race
	// (profile §8 "Replicas").
	procs := make([]*Process, replicas)
	profiles := make([]string, replicas)
	errs := make([]error, replicas)
	done := make(chan int, replicas)
	for i := range procs {
		go func() {
			defer func() { done <- i }()
			cfg, err := fx.ConfigYAML(ServerOptions{Listen: addrs[i], Driver: backend, DSN: dsn})
			if err != nil {
				errs[i] = err
				return
			}
			cfgPath := filepath.Join(o.WorkDir, fmt.Sprintf("%s-%d.yaml", name, i))
			if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
				errs[i] = fmt.Errorf("bench: write config: %w", err)
				return
			}
			if o.ProfileDir != "" {
				profiles[i] = filepath.Join(o.ProfileDir, fmt.Sprintf("%s-%d.pprof", name, i))
			}
			path, args := o.Command(cfgPath, profiles[i])
			procs[i], errs[i] = Start(ctx, StartOptions{Path: path, Args: args, Addr: addrs[i], LogPath: filepath.Join(o.WorkDir, fmt.Sprintf("%s-%d.log", name, i))})
		}()
	}
	for range procs {
		<-done
	}
	defer func() {
		for _, p := range procs {
			if p != nil {
				if serr := p.Stop(); serr != nil && err == nil {
					err = serr
				}
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	// Pre-generate every request now, right before timing (the PoP iat window runs from here).
	n := int(float64(o.MaxRate) * (o.Warmup + o.Duration).Seconds())
	pool, err := fx.Generate(scenario, GenerateOptions{Requests: n, Instances: o.Instances, Host: addrs[0]})
	if err != nil {
		return nil, err
	}

	pids := make([]int, replicas)
	for i, p := range procs {
		pids[i] = p.PID()
	}
	var cpuStart, cpuEnd, dbStart, dbEnd time.Duration
	var cpuErr, dbErr, walErr error
	var walStart, walEnd int64
	var wal *walProbe
	if backend == BackendPostgres {
		if wal, walErr = newWALProbe(o.PostgresDSN); walErr == nil {
			defer wal.close()
		}
	}
	var kStart, kEnd KernelCounters
	var kErr error
	snapshot := func(k *KernelCounters) time.Duration {
		var sum time.Duration
		*k = KernelCounters{}
		for _, pid := range pids {
			c, err := ProcessCPU(pid)
			if err != nil {
				cpuErr = err
			}
			sum += c
			pk, err := ProcessKernel(pid)
			if err != nil {
				kErr = err
			}
			k.SysCPU += pk.SysCPU
			k.IOCalls += pk.IOCalls
			k.CtxSwitches += pk.CtxSwitches
		}
		return sum
	}
	lr, err := Run(ctx, pool, LoadOptions{
		Targets: addrs, Concurrency: o.Concurrency, Warmup: o.Warmup, Duration: o.Duration,
		OnMeasure: func(start bool) {
			if start {
				cpuStart = snapshot(&kStart)
				if dbName != "" {
					dbStart, dbErr = PostgresBackendCPU(dbName)
				}
				if wal != nil && walErr == nil {
					walStart, walErr = wal.position(ctx)
				}
			} else {
				cpuEnd = snapshot(&kEnd)
				if dbName != "" && dbErr == nil {
					dbEnd, dbErr = PostgresBackendCPU(dbName)
				}
				if wal != nil && walErr == nil {
					walEnd, walErr = wal.position(ctx)
				}
			}
		},
	})
	if err != nil {
		return nil, err
	}
	res = &Result{
		Backend: backend, Replicas: replicas, Scenario: scenario, Elapsed: lr.Elapsed,
		Tokens: lr.OK, Errors: lr.Errors, Rate: lr.Rate(),
		P50: lr.Percentile(0.50), P90: lr.Percentile(0.90), P99: lr.Percentile(0.99),
		Exhausted: lr.Exhausted, FirstError: lr.FirstError,
	}
	if len(lr.Latencies) > 0 {
		res.Max = lr.Latencies[len(lr.Latencies)-1]
	}
	if cpuErr == nil {
		res.ServerCPU = cpuEnd - cpuStart
		if lr.OK > 0 {
			res.CPUPerTok = res.ServerCPU / time.Duration(lr.OK)
		}
		if dbName != "" && dbErr == nil && lr.OK > 0 {
			res.DBCPUPerTok = (dbEnd - dbStart) / time.Duration(lr.OK)
		}
		if wal != nil && walErr == nil && lr.OK > 0 {
			res.WALPerTok = (walEnd - walStart) / int64(lr.OK)
		}
		if kErr == nil && lr.OK > 0 && res.ServerCPU > 0 {
			res.KernelShare = float64(kEnd.SysCPU-kStart.SysCPU) / float64(res.ServerCPU)
			res.IOCallsPerTok = float64(kEnd.IOCalls-kStart.IOCalls) / float64(lr.OK)
			res.CtxSwitchPerTk = float64(kEnd.CtxSwitches-kStart.CtxSwitches) / float64(lr.OK)
		}
		for _, pid := range pids {
			if rss, err := PeakRSS(pid); err == nil {
				res.PeakRSS = max(res.PeakRSS, rss)
			}
		}
	}
	for _, p := range profiles {
		if p != "" {
			res.Profiles = append(res.Profiles, p)
		}
	}
	return res, nil
}

// loadAverage is /proc/loadavg's first three fields ("" elsewhere): other work on the machine
// shows up in the latencies, much less in the CPU-time figures.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
