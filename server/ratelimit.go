package server

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// maxLimiterKeys bounds each limiter table; the least recently used entries go first.
const maxLimiterKeys = 100_000

// limiterTable holds one token bucket per key (remote address or client id).
type limiterTable struct {
	mu    sync.Mutex
	rate  rate.Limit
	burst int
	m     map[string]*limiterEntry
}

type limiterEntry struct {
	l    *rate.Limiter
	seen time.Time
}

func newLimiterTable(perSecond float64, burst int) *limiterTable {
	if perSecond <= 0 {
		return nil
	}
	if burst < 1 {
		burst = int(math.Ceil(perSecond))
	}
	return &limiterTable{rate: rate.Limit(perSecond), burst: burst, m: map[string]*limiterEntry{}}
}

// wait reports how long key must wait for a token, without taking one (0: one is there).
func (t *limiterTable) wait(key string, now time.Time) time.Duration {
	if t == nil || key == "" {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[key]
	if !ok {
		return 0
	}
	if tokens := e.l.TokensAt(now); tokens < 1 {
		return time.Duration((1 - tokens) / float64(t.rate) * float64(time.Second))
	}
	return 0
}

// reserve takes a token for key; it returns 0 when allowed, else how long to wait.
func (t *limiterTable) reserve(key string, now time.Time) time.Duration {
	if t == nil || key == "" {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[key]
	if !ok {
		if len(t.m) >= maxLimiterKeys {
			t.evict(now)
		}
		e = &limiterEntry{l: rate.NewLimiter(t.rate, t.burst)}
		t.m[key] = e
	}
	e.seen = now
	r := e.l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// evict drops entries idle for a minute, or half the table when none are.
func (t *limiterTable) evict(now time.Time) {
	for k, e := range t.m {
		if now.Sub(e.seen) > time.Minute {
			delete(t.m, k)
		}
	}
	if len(t.m) < maxLimiterKeys {
		return
	}
	n := 0
	for k := range t.m {
		delete(t.m, k)
		if n++; n >= maxLimiterKeys/2 {
			return
		}
	}
}

// rateLimiter limits the token, PAR and challenge endpoints per remote address and per claimed
// client (issue: a flood of bad attestations must not starve good clients). Over the limit the
// answer is 429 with Retry-After (RFC 6585 §4).
type rateLimiter struct {
	byAddress *limiterTable
	byClient  *limiterTable
}

func (s *Server) newRateLimiter() *rateLimiter {
	rl := s.cfg.RateLimit
	return &rateLimiter{
		byAddress: newLimiterTable(rl.PerAddress, rl.PerAddressBurst),
		byClient:  newLimiterTable(rl.PerClient, rl.PerClientBurst),
	}
}

// connAddr is the host of the connection's remote address: the key of per-address limits.
// Headers such as X-Forwarded-For are the client's to choose and never part of it.
func connAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) rateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		rl := s.limiter
		r := c.Request()
		now := time.Now()
		wait := rl.byAddress.reserve(connAddr(r), now)
		if wait == 0 && rl.byClient != nil && r.Method == http.MethodPost {
			// The claimed client, before anything is verified: enough to keep one noisy
			// client id from using up everyone's capacity.
			if err := r.ParseForm(); err == nil {
				wait = rl.byClient.reserve(claimedClientID(r, r.PostForm), now)
			}
		}
		if wait > 0 {
			secs := int(math.Ceil(wait.Seconds()))
			c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
			if r.URL.Path != "/oauth2/challenge" {
				// profile §5: every token and PAR response carries a fresh challenge.
				s.setChallengeHeaders(c.Response(), false)
			}
			s.log.WarnContext(r.Context(), "rate limited", "path", r.URL.Path, "remote", connAddr(r))
			writeJSON(c.Response(), http.StatusTooManyRequests, errorBody{Error: "temporarily_unavailable", Description: "Too many requests; retry after " + strconv.Itoa(secs) + "s."})
			return nil
		}
		return next(c)
	}
}
