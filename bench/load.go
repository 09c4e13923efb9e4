package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Phases of a run: requests completed during the measuring phase are counted, the others not.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// LoadOptions describe one timed run.
type LoadOptions struct {
	Targets     []string      // host:port of each replica; requests go round-robin over them
	Concurrency int           // workers, each with one keep-alive connection per target
	Warmup      time.Duration // not measured: connections, caches, database pages
	Duration    time.Duration // measured
	// OnMeasure is called right when measuring starts and right when it ends (server CPU
	// snapshots); it must be quick.
	OnMeasure func(start bool)
}

// LoadResult is what a run measured (only requests completed while measuring count).
type LoadResult struct {
	Elapsed   time.Duration // the measuring window actually run
	OK        int           // 200 responses carrying an access_token
	Errors    int           // any other status, transport errors
	Latencies []time.Duration
	Exhausted bool // the request pool ran out before Duration: the window was shortened
	// FirstError describes one failure (status and body start), for the report.
	FirstError string
}

// Rate is successful tokens per second.
func (r *LoadResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// Percentile returns the q-quantile (0..1) of the latencies, nearest rank.
func (r *LoadResult) Percentile(q float64) time.Duration {
	return percentile(r.Latencies, q)
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// worker state, merged after the run.
type workerResult struct {
	ok, errs   int
	latencies  []time.Duration
	firstError string
}

// Run drives pool's requests at the targets: Concurrency workers, each sending one request at a
// time over keep-alive HTTP/1.1 (closed-loop load), for Warmup and then Duration.
func Run(ctx context.Context, pool *Pool, o LoadOptions) (*LoadResult, error) {
	if len(o.Targets) == 0 || o.Concurrency <= 0 {
		return nil, errors.New("bench: no targets or no concurrency")
	}
	var phase atomic.Int32
	var start time.Time
	measure := func() { // the window opens: server CPU is read, then completions count
		if o.OnMeasure != nil {
			o.OnMeasure(true)
		}
		start = time.Now()
		phase.Store(phaseMeasure)
	}
	if o.Warmup <= 0 {
		// Open the window before any worker starts: a request completing before the main
		// goroutine got to it would otherwise be lost (TestRun_EveryScenarioIssuesTokens saw
		// one fewer token than the pool under a loaded CI machine).
		measure()
	}
	exhausted := make(chan struct{})
	var exhaustOnce sync.Once
	results := make([]workerResult, o.Concurrency)
	var wg sync.WaitGroup
	for w := range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[w] = runWorker(ctx, pool, o.Targets, w, &phase, func() { exhaustOnce.Do(func() { close(exhausted) }) })
		}()
	}

	res := &LoadResult{}
	wait := func(d time.Duration) bool { // false when the pool ran dry or ctx ended
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-exhausted:
			return false
		case <-ctx.Done():
			return false
		}
	}
	if o.Warmup > 0 {
		if !wait(o.Warmup) {
			phase.Store(phaseStop)
			wg.Wait()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, errors.New("bench: the request pool ran out during warm-up; raise --max-rate")
		}
		measure()
	}
	res.Exhausted = !wait(o.Duration)
	phase.Store(phaseStop)
	res.Elapsed = time.Since(start)
	if o.OnMeasure != nil {
		o.OnMeasure(false)
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	n := 0
	for _, r := range results {
		n += len(r.latencies)
	}
	res.Latencies = make([]time.Duration, 0, n)
	for _, r := range results {
		res.OK += r.ok
		res.Errors += r.errs
		res.Latencies = append(res.Latencies, r.latencies...)
		if res.FirstError == "" {
			res.FirstError = r.firstError
		}
	}
	slices.Sort(res.Latencies)
	return res, nil
}

// conn is one keep-alive connection of a worker.
type conn struct {
	c  net.Conn
	br *bufio.Reader
}

func runWorker(ctx context.Context, pool *Pool, targets []string, w int, phase *atomic.Int32, exhausted func()) workerResult {
	var res workerResult
	conns := make([]*conn, len(targets))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.c.Close()
			}
		}
	}()
	res.latencies = make([]time.Duration, 0, 4096)
	body := make([]byte, 0, 4096)
	var bufs net.Buffers
	dialer := net.Dialer{Timeout: 5 * time.Second, KeepAlive: -1}
	for turn := w; ; turn++ {
		if phase.Load() == phaseStop || ctx.Err() != nil {
			return res
		}
		req, ok := pool.Take()
		if !ok {
			exhausted()
			return res
		}
		t := turn % len(targets)
		if conns[t] == nil {
			c, err := dialer.DialContext(ctx, "tcp", targets[t])
			if err != nil {
				res.fail(phase, "dial "+targets[t]+": "+err.Error())
				continue
			}
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetNoDelay(true)
			}
			conns[t] = &conn{c: c, br: bufio.NewReaderSize(c, 8192)}
		}
		c := conns[t]
		start := time.Now()
		bufs = append(bufs[:0], req...)
		status, keep, err := roundTrip(c, &bufs, &body)
		elapsed := time.Since(start)
		if err != nil || !keep {
			c.c.Close()
			conns[t] = nil
		}
		if phase.Load() != phaseMeasure {
			continue
		}
		switch {
		case err != nil:
			res.fail(phase, err.Error())
		case status != http.StatusOK || !bytes.Contains(body, []byte(`"access_token"`)):
			res.fail(phase, fmt.Sprintf("HTTP %d: %.200s", status, body))
		default:
			res.ok++
			res.latencies = append(res.latencies, elapsed)
		}
	}
}

func (r *workerResult) fail(phase *atomic.Int32, msg string) {
	if phase.Load() != phaseMeasure {
		return
	}
	r.errs++
	if r.firstError == "" {
		r.firstError = msg
	}
}

// roundTrip writes one request and reads its response into body. keep is false when the server
// will close the connection.
func roundTrip(c *conn, bufs *net.Buffers, body *[]byte) (status int, keep bool, err error) {
	if err := c.c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return 0, false, err
	}
	if _, err := bufs.WriteTo(c.c); err != nil {
		return 0, false, fmt.Errorf("write: %w", err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, false, fmt.Errorf("read: %w", err)
	}
	defer resp.Body.Close()
	*body = (*body)[:0]
	buf := bytes.NewBuffer(*body)
	if _, err := io.Copy(buf, io.LimitReader(resp.Body, 1<<20)); err != nil {
		return resp.StatusCode, false, fmt.Errorf("read body: %w", err)
	}
	*body = buf.Bytes()
	return resp.StatusCode, !resp.Close, nil
}
