package resource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/authz/authz/dpop"
)

// Attestation is the client_attestation evidence authz puts in tokens (profile §6).
type Attestation struct {
	Attester    string `json:"attester"`
	InstanceJKT string `json:"instance_jkt"`
	PoPMethod   string `json:"pop_method"`
}

// Token is a validated access token.
type Token struct {
	Subject     string
	ClientID    string
	Scopes      []string
	JTI         string
	Expiry      time.Time
	JKT         string       // cnf.jkt when DPoP-bound
	Attestation *Attestation // nil when the client was not attested
}

// HasScope reports whether the token grants scope.
func (t *Token) HasScope(scope string) bool {
	for _, s := range t.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// Config configures a Verifier.
type Config struct {
	Issuer string // authz's issuer; tokens must carry iss == Issuer
	// JWKSURL defaults to Issuer + "/jwks.json".
	JWKSURL string
	// Audience is this resource server's identifier; a token's aud must contain it (RFC 9068
	// §4, required). authz puts the resource indicator (RFC 8707) a client asked for in aud, or
	// else tokens.default_audience (default: the issuer).
	Audience string
	// BaseURL is this resource server's external origin (scheme://host[:port]); DPoP htu is
	// compared with BaseURL + request path. Required for DPoP tokens.
	BaseURL    string
	ClockSkew  time.Duration // default 30s
	ProofAge   time.Duration // DPoP iat window, default 60s
	HTTPClient *http.Client
	Now        func() time.Time
}

// Verifier validates access tokens.
type Verifier struct {
	cfg Config

	mu      sync.Mutex
	keys    *jose.JSONWebKeySet
	fetched time.Time
	failed  time.Time            // last failed fetch: none is tried again for keyRetryInterval
	seen    map[string]time.Time // DPoP proof jti -> expiry

	fetchMu sync.Mutex // one fetch at a time; requests that waited use its result
}

// New returns a Verifier.
func New(cfg Config) (*Verifier, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("resource: Issuer is required")
	}
	if cfg.Audience == "" {
		return nil, errors.New("resource: Audience is required (RFC 9068 §4: the token's aud must name this resource server)")
	}
	if cfg.JWKSURL == "" {
		cfg.JWKSURL = strings.TrimSuffix(cfg.Issuer, "/") + "/jwks.json"
	}
	if cfg.ClockSkew <= 0 {
		cfg.ClockSkew = 30 * time.Second
	}
	if cfg.ProofAge <= 0 {
		cfg.ProofAge = 60 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{cfg: cfg, seen: map[string]time.Time{}}, nil
}

// Errors, mapped to RFC 6750 §3.1 / RFC 9449 §7.1 responses by Middleware.
var (
	ErrNoToken    = errors.New("resource: no access token")
	ErrInvalid    = errors.New("resource: invalid access token")
	ErrDPoP       = errors.New("resource: invalid DPoP proof")
	ErrDPoPNeeded = errors.New("resource: the token is DPoP-bound; use Authorization: DPoP with a proof")
	// ErrKeysUnavailable: the issuer's key set could not be fetched (a 503, not the client's
	// fault; the cause stays out of the response).
	ErrKeysUnavailable = errors.New("resource: the authorization server's keys are unavailable")
)

// dpopAlgs is the algs parameter of DPoP challenges (RFC 9449 §7.1): the proof algorithms the
// dpop package accepts.
const dpopAlgs = "ES256 ES384 ES512 PS256 PS384 PS512 EdDSA RS256"

// jwksMaxAge is how long a fetched key set is used before it is fetched again, so a key the
// issuer removed stops being trusted (authz serves /jwks.json with max-age=300). While the
// issuer cannot be reached, the last set serves for up to jwksMaxStale, so a short outage of
// the authorization server does not take the resource server down with it.
const (
	jwksMaxAge   = 5 * time.Minute
	jwksMaxStale = time.Hour
	// keyRetryInterval bounds fetches: an unknown kid refetches at most this often, and a failed
	// fetch is not retried sooner.
	keyRetryInterval = 30 * time.Second
)

type ctxKey struct{}

// FromContext returns the token Middleware validated.
func FromContext(ctx context.Context) (*Token, bool) {
	t, ok := ctx.Value(ctxKey{}).(*Token)
	return t, ok
}

// Middleware rejects requests without a valid token and passes the token in the context.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := v.Verify(r)
		if err != nil {
			writeChallenge(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, tok)))
	})
}

// writeChallenge answers a refused request (RFC 6750 §3, RFC 9449 §7.1): the challenge uses the
// scheme the request used (DPoP for a bound token presented as Bearer), DPoP challenges list
// algs, and a request without credentials gets challenges without an error code (RFC 6750 §3.1).
func writeChallenge(w http.ResponseWriter, r *http.Request, err error) {
	h := w.Header()
	if errors.Is(err, ErrKeysUnavailable) {
		h.Set("Content-Type", "application/json")
		h.Set("Retry-After", "5")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":"temporarily_unavailable"}`+"\n")
		return
	}
	if errors.Is(err, ErrNoToken) {
		h.Add("WWW-Authenticate", `DPoP algs="`+dpopAlgs+`"`)
		h.Add("WWW-Authenticate", `Bearer`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	code := "invalid_token"
	switch {
	case errors.Is(err, ErrDPoP):
		code, scheme = "invalid_dpop_proof", "DPoP"
	case errors.Is(err, ErrDPoPNeeded):
		scheme = "DPoP"
	}
	challenge := fmt.Sprintf(`Bearer error="%s", error_description="%s"`, code, challengeText(err))
	if strings.EqualFold(scheme, "DPoP") {
		challenge = fmt.Sprintf(`DPoP error="%s", error_description="%s", algs="%s"`, code, challengeText(err), dpopAlgs)
	}
	h.Set("WWW-Authenticate", challenge)
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

// challengeText is err's message restricted to RFC 6750 §3's error_description characters
// (%x20-21 / %x23-5B / %x5D-7E): quotes and backslashes become apostrophes, others are dropped.
func challengeText(err error) string {
	msg := strings.TrimPrefix(err.Error(), "resource: ")
	var b strings.Builder
	for _, c := range msg {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\'')
		case c >= 0x20 && c <= 0x7e:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// Verify validates the request's access token (and DPoP proof when the token is bound).
func (v *Verifier) Verify(r *http.Request) (*Token, error) {
	scheme, raw, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || raw == "" {
		return nil, ErrNoToken
	}
	if !strings.EqualFold(scheme, "DPoP") && !strings.EqualFold(scheme, "Bearer") {
		return nil, ErrNoToken
	}
	tok, err := v.verifyJWT(r.Context(), raw)
	if err != nil {
		return nil, err
	}
	if tok.JKT == "" {
		if strings.EqualFold(scheme, "DPoP") {
			return nil, fmt.Errorf("%w: the token is not DPoP-bound", ErrInvalid)
		}
		return tok, nil
	}
	// RFC 9449 §7.1: a bound token is presented with the DPoP scheme and a proof by its key.
	if !strings.EqualFold(scheme, "DPoP") {
		return nil, ErrDPoPNeeded
	}
	proofHeader, err := dpop.ExtractHeader(r.Header, 16<<10)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDPoP, err)
	}
	if v.cfg.BaseURL == "" {
		return nil, fmt.Errorf("%w: resource server BaseURL not configured", ErrDPoP)
	}
	proof, err := dpop.Verify(proofHeader, dpop.Expect{Method: r.Method, URL: strings.TrimSuffix(v.cfg.BaseURL, "/") + r.URL.EscapedPath(), AccessToken: raw},
		dpop.Config{MaxAge: v.cfg.ProofAge, ClockSkew: v.cfg.ClockSkew, Now: v.cfg.Now})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDPoP, err)
	}
	if proof.JKT != tok.JKT {
		return nil, fmt.Errorf("%w: the proof is not signed by the key the token is bound to", ErrDPoP)
	}
	if !v.firstUse(proof.JKT+":"+proof.JTI, proof.IssuedAt.Add(v.cfg.ProofAge+2*v.cfg.ClockSkew)) {
		return nil, fmt.Errorf("%w: proof jti already used", ErrDPoP)
	}
	return tok, nil
}

// firstUse records a proof jti (in memory: a resource server replica's own replay window).
func (v *Verifier) firstUse(key string, exp time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.cfg.Now()
	if len(v.seen) > 100000 {
		for k, e := range v.seen {
			if now.After(e) {
				delete(v.seen, k)
			}
		}
	}
	h := sha256.Sum256([]byte(key))
	k := hex.EncodeToString(h[:])
	if e, ok := v.seen[k]; ok && now.Before(e) {
		return false
	}
	v.seen[k] = exp
	return true
}

type claims struct {
	jwt.Claims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	Cnf      *struct {
		JKT string `json:"jkt"`
	} `json:"cnf"`
	Attestation *Attestation `json:"client_attestation"`
}

var tokenAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.PS256, jose.EdDSA}

func (v *Verifier) verifyJWT(ctx context.Context, raw string) (*Token, error) {
	if len(raw) > 16<<10 {
		return nil, fmt.Errorf("%w: too large", ErrInvalid)
	}
	parsed, err := jwt.ParseSigned(raw, tokenAlgs)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	// RFC 9068 §4: typ must be at+jwt.
	if typ, _ := parsed.Headers[0].ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return nil, fmt.Errorf("%w: typ is not at+jwt", ErrInvalid)
	}
	key, err := v.key(ctx, parsed.Headers[0].KeyID)
	if err != nil {
		return nil, err
	}
	var c claims
	if err := parsed.Claims(key.Key, &c); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrInvalid, err)
	}
	exp := jwt.Expected{Issuer: v.cfg.Issuer, AnyAudience: jwt.Audience{v.cfg.Audience}, Time: v.cfg.Now()}
	if err := c.ValidateWithLeeway(exp, v.cfg.ClockSkew); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.Expiry == nil {
		return nil, fmt.Errorf("%w: no exp", ErrInvalid)
	}
	tok := &Token{Subject: c.Subject, ClientID: c.ClientID, Scopes: strings.Fields(c.Scope), JTI: c.ID, Expiry: c.Expiry.Time(), Attestation: c.Attestation}
	if c.Cnf != nil {
		tok.JKT = c.Cnf.JKT
	}
	return tok, nil
}

// key finds the verification key by kid. The key set is fetched again when it is older than
// jwksMaxAge (a removed key stops being trusted) and on an unknown kid (a new key), at most
// every keyRetryInterval for the latter. Fetches are one at a time, and after a failure none is
// tried for keyRetryInterval; meanwhile a set younger than jwksMaxStale serves, else
// ErrKeysUnavailable.
func (v *Verifier) key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	if k, done, err := v.cachedKey(kid); done {
		return k, err
	}
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	if k, done, err := v.cachedKey(kid); done {
		return k, err // another request fetched, or failed to, while this one waited
	}
	set, fetched, _ := v.keyState()
	fresh, err := v.fetchKeys(ctx)
	if err != nil {
		if ctx.Err() == nil {
			v.mu.Lock()
			v.failed = v.cfg.Now()
			v.mu.Unlock()
		}
		if set != nil && v.cfg.Now().Sub(fetched) < jwksMaxStale {
			return lookupKey(set, kid)
		}
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	}
	v.mu.Lock()
	v.keys, v.fetched = fresh, v.cfg.Now()
	v.mu.Unlock()
	return lookupKey(fresh, kid)
}

// cachedKey answers from the cached key set when no fetch is due (done): the set is younger than
// jwksMaxAge and has kid (or was fetched under keyRetryInterval ago), or a fetch failed under
// keyRetryInterval ago (then a set younger than jwksMaxStale serves, else ErrKeysUnavailable).
func (v *Verifier) cachedKey(kid string) (key *jose.JSONWebKey, done bool, err error) {
	set, fetched, failed := v.keyState()
	now := v.cfg.Now()
	age := now.Sub(fetched)
	if set != nil && age < jwksMaxAge {
		if key, err = lookupKey(set, kid); err == nil || age < keyRetryInterval {
			return key, true, err
		}
	}
	if since := now.Sub(failed); since < keyRetryInterval {
		if set != nil && age < jwksMaxStale {
			key, err = lookupKey(set, kid)
			return key, true, err
		}
		return nil, true, fmt.Errorf("%w: the last fetch failed %s ago", ErrKeysUnavailable, since.Round(time.Second))
	}
	return nil, false, nil
}

// lookupKey finds kid in set.
func lookupKey(set *jose.JSONWebKeySet, kid string) (*jose.JSONWebKey, error) {
	if ks := set.Key(kid); len(ks) == 1 {
		return &ks[0], nil
	}
	return nil, fmt.Errorf("%w: unknown kid", ErrInvalid)
}

// keyState reads the cached key set, when it was fetched, and when a fetch last failed.
func (v *Verifier) keyState() (*jose.JSONWebKeySet, time.Time, time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.keys, v.fetched, v.failed
}

// fetchKeys GETs the issuer's key set (at most 1 MiB).
func (v *Verifier) fetchKeys(ctx context.Context) (*jose.JSONWebKeySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return nil, fmt.Errorf("resource: fetch %s: %w", v.cfg.JWKSURL, err)
	}
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("resource: fetch %s: %w", v.cfg.JWKSURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("resource: fetch %s: status %d", v.cfg.JWKSURL, resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("resource: decode %s: %w", v.cfg.JWKSURL, err)
	}
	return &set, nil
}
