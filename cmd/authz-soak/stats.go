package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/authz/authz/reliability"
)

// maxListedViolations bounds how many violations are printed (all are counted).
const maxListedViolations = 50

// stats is everything the soak observed.
type stats struct {
	mu               sync.Mutex
	start            time.Time
	answers          map[string]map[int]int // scenario -> status -> count
	transport        map[string]int         // scenario -> transport failures
	tokens           map[string]bool        // TokenKey of every token received
	attestedAnswered int                    // answered requests that carried OAuth-Client-Attestation
	replays          int
	replaysAccepted  int
	rss              []int64
	rssBaseline      int64
	rssFinal         int64
	violations       []string
	grants           int
	decisions        int
}

func newStats() *stats {
	return &stats{start: time.Now(), answers: map[string]map[int]int{}, transport: map[string]int{}, tokens: map[string]bool{}}
}

func (s *stats) answer(name string, status int, attested bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.answers[name]
	if m == nil {
		m = map[int]int{}
		s.answers[name] = m
	}
	m[status]++
	if attested {
		s.attestedAnswered++
	}
}

func (s *stats) transportError(name string, err error) {
	s.mu.Lock()
	s.transport[name]++
	s.mu.Unlock()
	s.violate("%s: transport error: %v", name, err)
}

func (s *stats) token(tok string) {
	if tok == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[reliability.TokenKey(tok)] = true
}

func (s *stats) replayTried(accepted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replays++
	if accepted {
		s.replaysAccepted++
	}
}

func (s *stats) sample(rss int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rss = append(s.rss, rss)
}

func (s *stats) violate(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
}

// checkDatabase reads the stopped server's SQLite file directly: every grant has exactly one
// accepted decision and every accepted decision its token (profile §7), every token a client
// received is stored and nothing else was issued, and each attested request left exactly one
// decision.
func checkDatabase(ctx context.Context, e *env, st *stats) error {
	db, err := reliability.OpenDB("sqlite", e.dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	rep, err := reliability.CheckAudit(ctx, db, agentID)
	if err != nil {
		return err
	}
	for _, v := range rep.Violations {
		st.violate("audit: %s", v)
	}
	stored, err := reliability.StoredAccessTokens(ctx, db)
	if err != nil {
		return err
	}
	decisions, err := reliability.CountDecisions(ctx, db, "sqlite", "/oauth2/token")
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.grants, st.decisions = rep.Grants, decisions
	missing := 0
	for k := range st.tokens {
		if !stored[k] {
			missing++
		}
	}
	if missing > 0 {
		st.violations = append(st.violations, fmt.Sprintf("tokens: %d received tokens have no row", missing))
	}
	if len(stored) != len(st.tokens) {
		st.violations = append(st.violations, fmt.Sprintf("tokens: %d stored, %d received (a token issued that no client got?)", len(stored), len(st.tokens)))
	}
	if decisions != st.attestedAnswered {
		st.violations = append(st.violations, fmt.Sprintf("audit: %d decisions at /oauth2/token for %d answered attested requests, want one each", decisions, st.attestedAnswered))
	}
	return nil
}

// checkMemory compares the median anonymous RSS of the run's second quarter (after warm-up)
// with that of its last quarter.
func checkMemory(st *stats, maxGrowth int64) {
	st.mu.Lock()
	samples := slices.Clone(st.rss)
	st.mu.Unlock()
	q := len(samples) / 4
	if q == 0 {
		st.violate("memory: only %d RSS samples; run longer", len(samples))
		return
	}
	st.rssBaseline = median(samples[q : 2*q])
	st.rssFinal = median(samples[3*q:])
	if growth := st.rssFinal - st.rssBaseline; growth > maxGrowth {
		st.violate("memory: anonymous RSS grew %s (from %s to %s), more than %s", mib(growth), mib(st.rssBaseline), mib(st.rssFinal), mib(maxGrowth))
	}
}

func median(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// print writes the report.
func (s *stats) print(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(w, "\nauthz soak report (%s)\n", time.Since(s.start).Round(time.Second))
	names := make([]string, 0, len(s.answers))
	total := 0
	for n, m := range s.answers {
		names = append(names, n)
		for _, c := range m {
			total += c
		}
	}
	sort.Strings(names)
	fmt.Fprintf(w, "requests answered: %d\n", total)
	for _, n := range names {
		codes := make([]int, 0, len(s.answers[n]))
		for c := range s.answers[n] {
			codes = append(codes, c)
		}
		sort.Ints(codes)
		parts := make([]string, len(codes))
		for i, c := range codes {
			parts[i] = fmt.Sprintf("%d×%d", c, s.answers[n][c])
		}
		line := fmt.Sprintf("  %-20s %s", n, strings.Join(parts, " "))
		if t := s.transport[n]; t > 0 {
			line += fmt.Sprintf(" transport-errors×%d", t)
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "tokens received: %d; grants stored: %d\n", len(s.tokens), s.grants)
	fmt.Fprintf(w, "attested requests answered: %d; decisions at /oauth2/token: %d\n", s.attestedAnswered, s.decisions)
	fmt.Fprintf(w, "replays tried: %d; accepted: %d\n", s.replays, s.replaysAccepted)
	if len(s.rss) > 0 {
		fmt.Fprintf(w, "server anonymous RSS (heap and stacks; the SQLite memory map is file-backed): first %s, max %s, last %s; baseline (2nd quarter median) %s, final (last quarter median) %s; %d samples\n",
			mib(s.rss[0]), mib(slices.Max(s.rss)), mib(s.rss[len(s.rss)-1]), mib(s.rssBaseline), mib(s.rssFinal), len(s.rss))
	}
	fmt.Fprintf(w, "violations: %d\n", len(s.violations))
	for i, v := range s.violations {
		if i == maxListedViolations {
			fmt.Fprintf(w, "  ... and %d more\n", len(s.violations)-maxListedViolations)
			break
		}
		fmt.Fprintln(w, "  "+v)
	}
}
