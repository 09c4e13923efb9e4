package clientauth

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/dpop"
)

// DraftRevision pins the revision of the draft this package implements.
const DraftRevision = "draft-ietf-oauth-attestation-based-client-auth-09"

// Wire values (ABCA-09 §4, §5.1, §6.2, §13.4, §13.5; profile §6, §7).
const (
	HeaderClientAttestation          = "OAuth-Client-Attestation"
	HeaderClientAttestationPoP       = "OAuth-Client-Attestation-PoP"
	HeaderClientAttestationChallenge = "OAuth-Client-Attestation-Challenge"

	AuthMethodAttestJWT     = "attest_jwt_client_auth"
	AuthMethodAttestJWTDPoP = "attest_jwt_client_auth_dpop"

	PoPMethodJWT  = "attestation_pop_jwt"
	PoPMethodDPoP = "dpop_combined"

	TypAttestation = "oauth-client-attestation+jwt"
	TypPoP         = "oauth-client-attestation-pop+jwt"
)

// Result.Resolution values: how the attester key was found (profile §7, §8).
const (
	ResolutionKID       = "kid"
	ResolutionX5C       = "x5c"
	ResolutionJKU       = "jku"
	ResolutionKeysTried = "keys_tried"
	ResolutionHMAC      = "hmac"
)

// Result.Challenge values (profile §7).
const (
	ChallengeNone    = "none"
	ChallengeValid   = "valid"
	ChallengeMissing = "missing"
	ChallengeInvalid = "invalid"
)

// Defaults (profile §3, §5).
const (
	// NoClockSkew as Config.ClockSkew tolerates no clock difference (the zero value selects
	// DefaultClockSkew); it is dpop's, so dpop.Skew maps a configured 0 for both packages.
	NoClockSkew          = dpop.NoClockSkew
	DefaultClockSkew     = 30 * time.Second
	DefaultPoPMaxAge     = 60 * time.Second
	DefaultChallengeTTL  = 5 * time.Minute
	DefaultMaxTokenBytes = 16 << 10
	DefaultHTTPTimeout   = 5 * time.Second

	minHMACSecret      = 32 // bytes, profile §8 (RFC 7518 §3.2 for HS256)
	minChallengeSecret = 32 // bytes
	minRSABits         = 2048
)

// DefaultAlgorithms returns the asymmetric allow-list used for attestations, PoPs and DPoP proofs
// when the configuration names none (profile §3). The slice is a fresh copy.
func DefaultAlgorithms() []string {
	return []string{"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA", "RS256"}
}

// asymmetricAlgorithms are every algorithm a configuration may list (RFC 7518 §3.1, RFC 8037).
var asymmetricAlgorithms = map[string]bool{
	"ES256": true, "ES384": true, "ES512": true,
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"EdDSA": true,
}

// hmacAlgorithms maps each MAC algorithm to the shortest secret it accepts (profile §8,
// RFC 7518 §3.2).
var hmacAlgorithms = []struct {
	alg     jose.SignatureAlgorithm
	minimum int
}{{jose.HS256, 32}, {jose.HS384, 48}, {jose.HS512, 64}}

// Attester is one trusted client attester (ABCA-09 §9.7; profile §4, §8).
type Attester struct {
	ID             string
	Keys           *jose.JSONWebKeySet        // static keys (config jwks / jwks_file); public keys only
	JWKSURI        string                     // attester's published key set (cached 5 min, refreshed at most once a minute on an unknown kid)
	X5CRoots       []*x509.Certificate        // trust anchors for x5c chains
	JKUAllowlist   []string                   // exact URLs allowed for jku
	RequiredClaims map[string]json.RawMessage // claim -> exact JSON value (profile §8)
	HMACSecret     []byte                     // raw bytes; MAC attestations only (>= 32 bytes; HS384 needs 48, HS512 64)
	Enabled        bool
}

// Config is the verifier's policy. Zero fields take the defaults noted.
type Config struct {
	Issuer                string        // RFC 8414 issuer; PoP aud must equal it exactly (required)
	Attesters             []Attester    // may be empty; see SetAttesters
	PoPAlgorithms         []string      // default DefaultAlgorithms(); asymmetric only
	AttestationAlgorithms []string      // default DefaultAlgorithms(); asymmetric only, HS* are added while an attester's secret allows them
	ClockSkew             time.Duration // default 30s; NoClockSkew for none
	PoPMaxAge             time.Duration // default 60s
	MaxAttestationAge     time.Duration // 0 = only exp limits an attestation
	ChallengeTTL          time.Duration // default 5m
	ChallengeRequired     bool
	ChallengeSecret       []byte       // >= 32 bytes when set; shared by replicas
	MaxTokenBytes         int          // default 16 KiB per header value
	HTTPClient            *http.Client // jwks_uri / jku fetches; default 5s timeout; redirects are never followed
	DPoPAlgorithms        []string     // combined mode; default DefaultAlgorithms()
	// OnKeySetFetch, when set, hears the outcome of every jwks_uri / jku fetch (err nil on
	// success; at most one attempt a minute per URL), so the caller can tell an operator why an
	// attester's keys are missing — a request only sees attestation_unknown_key.
	OnKeySetFetch func(url string, err error)
}

// Option is a test seam for New.
type Option func(*Verifier)

// WithClock makes the verifier read the time from now (tests use a fixed clock).
func WithClock(now func() time.Time) Option {
	return func(v *Verifier) {
		if now != nil {
			v.now = now
		}
	}
}

// withoutCache disables the verified-attestation cache (tests and benchmarks).
func withoutCache() Option {
	return func(v *Verifier) { v.cache = nil }
}

// Verifier verifies attestation-based client authentication. It is safe for concurrent use;
// SetAttesters swaps the trusted attesters atomically.
type Verifier struct {
	cfg      Config
	now      func() time.Time
	popAlgs  []jose.SignatureAlgorithm
	baseAtt  []jose.SignatureAlgorithm
	dpopAlgs []string
	trust    atomic.Pointer[trustSet]
	gen      atomic.Uint64
	fetcher  *jwksFetcher
	cache    *verifiedCache
}

// New validates cfg (issuer, algorithms, durations, challenge secret, and the attesters as
// SetAttesters does) and returns a verifier.
func New(cfg Config, opts ...Option) (*Verifier, error) {
	var problems []error
	if cfg.Issuer == "" {
		problems = append(problems, errors.New("issuer is required"))
	}
	popAlgs, err := asymmetricList("pop_algorithms", cfg.PoPAlgorithms)
	problems = appendErr(problems, err)
	attAlgs, err := asymmetricList("attestation_algorithms", cfg.AttestationAlgorithms)
	problems = appendErr(problems, err)
	dpopAlgs, err := asymmetricList("dpop_algorithms", cfg.DPoPAlgorithms)
	problems = appendErr(problems, err)

	switch {
	case cfg.ClockSkew == 0:
		cfg.ClockSkew = DefaultClockSkew
	case cfg.ClockSkew == NoClockSkew:
		cfg.ClockSkew = 0
	}
	if cfg.PoPMaxAge == 0 {
		cfg.PoPMaxAge = DefaultPoPMaxAge
	}
	if cfg.ChallengeTTL == 0 {
		cfg.ChallengeTTL = DefaultChallengeTTL
	}
	if cfg.MaxTokenBytes == 0 {
		cfg.MaxTokenBytes = DefaultMaxTokenBytes
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"clock_skew", cfg.ClockSkew}, {"pop_max_age", cfg.PoPMaxAge}, {"challenge_ttl", cfg.ChallengeTTL}, {"max_attestation_age", cfg.MaxAttestationAge}} {
		if d.v < 0 {
			problems = append(problems, fmt.Errorf("%s must not be negative", d.name))
		}
	}
	if cfg.MaxTokenBytes < 0 {
		problems = append(problems, errors.New("max_token_bytes must not be negative"))
	}
	if len(cfg.ChallengeSecret) > 0 && len(cfg.ChallengeSecret) < minChallengeSecret {
		problems = append(problems, fmt.Errorf("challenge secret must have at least %d bytes", minChallengeSecret))
	}
	if cfg.ChallengeRequired && len(cfg.ChallengeSecret) == 0 {
		problems = append(problems, errors.New("challenge_required needs a challenge secret"))
	}
	cfg.ChallengeSecret = slices.Clone(cfg.ChallengeSecret)

	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	noRedirect := *client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return errRedirect }
	cfg.HTTPClient = &noRedirect

	v := &Verifier{
		cfg:      cfg,
		now:      time.Now,
		popAlgs:  popAlgs,
		baseAtt:  attAlgs,
		dpopAlgs: algNames(dpopAlgs),
		cache:    newVerifiedCache(defaultCacheEntries),
	}
	for _, o := range opts {
		o(v)
	}
	v.fetcher = newJWKSFetcher(cfg.HTTPClient, v.now)
	v.fetcher.report = cfg.OnKeySetFetch
	ts, err := v.buildTrust(cfg.Attesters)
	problems = appendErr(problems, err)
	if len(problems) > 0 {
		return nil, fmt.Errorf("clientauth: invalid configuration: %w", errors.Join(problems...))
	}
	v.trust.Store(ts)
	v.cfg.Attesters = nil // the trust set owns them
	return v, nil
}

// SetAttesters replaces the trusted attesters (hot reload). The new set is validated as in New
// (unique ids, unique kids and jku URLs across enabled attesters, public asymmetric keys, secret
// lengths, URL schemes) and swapped in atomically: a concurrent Authenticate sees either the old
// or the new set. The verified-attestation cache is invalidated. On error nothing changes.
func (v *Verifier) SetAttesters(attesters []Attester) error {
	ts, err := v.buildTrust(attesters)
	if err != nil {
		return fmt.Errorf("clientauth: invalid attesters: %w", err)
	}
	v.trust.Store(ts)
	if v.cache != nil {
		v.cache.reset()
	}
	return nil
}

// ValidateAttesters checks a set of attesters exactly as SetAttesters would, without a
// verifier: a configuration file can be refused before anything starts.
func ValidateAttesters(attesters []Attester) error {
	if _, err := (&Verifier{}).buildTrust(attesters); err != nil {
		return fmt.Errorf("clientauth: invalid attesters: %w", err)
	}
	return nil
}

// AttestationAlgorithms returns exactly the algorithms the verifier accepts for attestations
// (ABCA-09 §8 client_attestation_signing_alg_values_supported; profile §8): the configured
// asymmetric list plus HS256, HS384, HS512 while some enabled attester's secret allows each.
func (v *Verifier) AttestationAlgorithms() []string {
	return algNames(v.trust.Load().attAlgs)
}

// PoPAlgorithms returns the PoP allow-list (ABCA-09 §8
// client_attestation_pop_signing_alg_values_supported).
func (v *Verifier) PoPAlgorithms() []string { return algNames(v.popAlgs) }

// DPoPAlgorithms returns the combined-mode DPoP allow-list (RFC 9449 §5.1
// dpop_signing_alg_values_supported).
func (v *Verifier) DPoPAlgorithms() []string { return slices.Clone(v.dpopAlgs) }

// ChallengesEnabled reports whether a challenge secret is set: then every token and PAR
// response carries a fresh challenge (ABCA-09 §6.2, profile §5).
func (v *Verifier) ChallengesEnabled() bool { return len(v.cfg.ChallengeSecret) > 0 }

// asymmetricList validates an algorithm allow-list: only registered asymmetric algorithms,
// never HS* or none (ABCA-09 §5.1 rule 2, profile §3, §8). Empty means DefaultAlgorithms().
func asymmetricList(name string, in []string) ([]jose.SignatureAlgorithm, error) {
	if len(in) == 0 {
		in = DefaultAlgorithms()
	}
	var out []jose.SignatureAlgorithm
	var problems []error
	for _, a := range in {
		switch {
		case !asymmetricAlgorithms[a]:
			problems = append(problems, fmt.Errorf("%s: %q is not an allowed asymmetric algorithm", name, a))
		case slices.Contains(out, jose.SignatureAlgorithm(a)):
		default:
			out = append(out, jose.SignatureAlgorithm(a))
		}
	}
	return out, errors.Join(problems...)
}

func algNames(algs []jose.SignatureAlgorithm) []string {
	out := make([]string, len(algs))
	for i, a := range algs {
		out[i] = string(a)
	}
	return out
}

func appendErr(list []error, err error) []error {
	if err != nil {
		list = append(list, err)
	}
	return list
}
