package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Targets of issue 8 for attest_jwt_client_auth on SQLite at concurrency 32 (2-core machine).
const (
	TargetRate       = 6000.0
	TargetEfficiency = 0.6
	TargetP99        = 15 * time.Millisecond
)

// Summary is the crypto bound in one line.
func (c CryptoBound) Summary() string {
	return fmt.Sprintf("verify attestation %s + verify PoP %s + sign access token %s = %s per attested token request (DPoP proof %s, client assertion %s; bare ECDSA P-256 verify %s, sign %s)",
		fmtMicros(c.VerifyAttestation), fmtMicros(c.VerifyPoP), fmtMicros(c.SignAccessToken),
		fmtMicros(c.PerRequest(ScenarioAttest)), fmtMicros(c.VerifyDPoP), fmtMicros(c.VerifyAssertion),
		fmtMicros(c.RawVerify), fmtMicros(c.RawSign))
}

// Print writes the report as the table `make bench` shows.
func (rep *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "\nauthz-bench: %d CPUs, %s, load average at start %s, concurrency %d, %s per run\n",
		rep.CPUs, rep.GoVersion, orDash(rep.LoadAverage), rep.Concurrency, rep.Duration)
	fmt.Fprintf(w, "crypto bound (one core, go-jose v4, ES256): %s\n", rep.Crypto.Summary())
	fmt.Fprintf(w, "machine: %s\n\n", rep.Kernel.Summary())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "backend\tscenario\ttokens/s\tp50\tp90\tp99\tmax\terrors\tCPU s/1000 tokens\tDB CPU s/1000\tWAL/token\tpeak RSS\tcrypto/req\tefficiency\t")
	for _, r := range rep.Results {
		eff, cpu, rss, db, wal := "-", "-", "-", "-", "-"
		if r.WALPerTok > 0 {
			wal = fmt.Sprintf("%.1f KiB", float64(r.WALPerTok)/1024)
		}
		if r.DBCPUPerTok > 0 {
			db = fmt.Sprintf("%.3f", r.DBCPUPerTok.Seconds()*1000)
		}
		if r.CPUPerTok > 0 {
			cpu = fmt.Sprintf("%.3f", r.CPUPerTok.Seconds()*1000)
			eff = fmt.Sprintf("%.2f", r.Efficiency)
		}
		if r.PeakRSS > 0 {
			rss = fmt.Sprintf("%d MiB", r.PeakRSS>>20)
		}
		rate := fmt.Sprintf("%.0f", r.Rate)
		if r.Runs > 1 {
			rate = fmt.Sprintf("%.0f (%.0f–%.0f)", r.Rate, r.RateMin, r.RateMax)
		}
		if r.Exhausted {
			rate += "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Label(), r.Scenario, rate,
			fmtDur(r.P50), fmtDur(r.P90), fmtDur(r.P99), fmtDur(r.Max), r.Errors, cpu, db, wal, rss, fmtMicros(r.CryptoReq), eff)
	}
	tw.Flush()
	for _, r := range rep.Results {
		if r.Exhausted {
			fmt.Fprintln(w, "* the pre-generated requests ran out before the duration ended; the rate is over the shortened window (raise --max-rate)")
			break
		}
	}
	for _, r := range rep.Results {
		if r.FirstError != "" {
			fmt.Fprintf(w, "%s %s: first error: %s\n", r.Label(), r.Scenario, r.FirstError)
		}
	}
	rep.printKernel(w)
	fmt.Fprintln(w, "CPU s/1000 tokens and peak RSS come from the authz process(es) (/proc/PID/stat, VmHWM); DB CPU is the PostgreSQL backends")
	fmt.Fprintln(w, "serving the run's database (SQLite runs in-process and is in the CPU column); WAL/token is the PostgreSQL cluster's WAL")
	fmt.Fprintln(w, "written during the window (other databases included); efficiency = crypto/req ÷ server CPU per token.")
	if len(rep.Results) > 0 && rep.Results[0].Runs > 1 {
		fmt.Fprintf(w, "Each row is the run with the median tokens/s of %d (range in parentheses); the runs alternated.\n", rep.Results[0].Runs)
	}
	if t, ok := rep.find(BackendSQLite, 1, ScenarioAttest); ok {
		fmt.Fprintf(w, "issue 8 targets (attest_jwt_client_auth, SQLite, concurrency %d): tokens/s %.0f (target ≥ %.0f: %s), efficiency %.2f (≥ %.1f: %s), p99 %s (≤ %s: %s)\n",
			rep.Concurrency, t.Rate, TargetRate, met(t.Rate >= TargetRate), t.Efficiency, TargetEfficiency, met(t.Efficiency >= TargetEfficiency),
			fmtDur(t.P99), fmtDur(TargetP99), met(t.P99 <= TargetP99 && t.Tokens > 0))
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	var profiles []string
	for _, r := range rep.Results {
		profiles = append(profiles, r.Profiles...)
	}
	if len(profiles) > 0 {
		fmt.Fprintf(w, "CPU profiles: %s (go tool pprof -top FILE)\n", strings.Join(profiles, " "))
	}
}

// printKernel is the second table: how much of each run's server CPU went to the kernel, and
// what for (read/write system calls: sockets, SQLite's WAL and checkpoints; context switches).
func (rep *Report) printKernel(w io.Writer) {
	var any bool
	for _, r := range rep.Results {
		any = any || r.IOCallsPerTok > 0
	}
	if !any {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "backend\tscenario\tkernel share of server CPU\tread/write system calls/token\tcontext switches/token\t")
	for _, r := range rep.Results {
		if r.IOCallsPerTok == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f %%\t%.1f\t%.2f\t\n", r.Label(), r.Scenario, 100*r.KernelShare, r.IOCallsPerTok, r.CtxSwitchPerTk)
	}
	tw.Flush()
	fmt.Fprintln(w, "(/proc/PID/stat stime, /proc/PID/io syscr+syscw, /proc/PID/task/*/status; compare with the machine line above)")
}

func (rep *Report) find(backend string, replicas int, scenario string) (Result, bool) {
	for _, r := range rep.Results {
		if r.Backend == backend && r.Replicas == replicas && r.Scenario == scenario {
			return r, true
		}
	}
	return Result{}, false
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fmtDur prints a latency in ms with two decimals.
func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

// fmtMicros prints a CPU time in µs with one decimal.
func fmtMicros(d time.Duration) string {
	return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
}
