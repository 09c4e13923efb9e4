package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Token endpoint authentication methods (RFC 7591 §2, ABCA-09 §13.4, §13.5).
const (
	AuthMethodClientSecretBasic = "client_secret_basic"
	AuthMethodClientSecretPost  = "client_secret_post"
	AuthMethodPrivateKeyJWT     = "private_key_jwt"
	AuthMethodNone              = "none"
	AuthMethodAttestJWT         = "attest_jwt_client_auth"
	AuthMethodAttestJWTDPoP     = "attest_jwt_client_auth_dpop"
)

// AuthMethods lists every token_endpoint_auth_method authz supports (profile §1).
var AuthMethods = []string{
	AuthMethodClientSecretBasic, AuthMethodClientSecretPost, AuthMethodPrivateKeyJWT,
	AuthMethodNone, AuthMethodAttestJWT, AuthMethodAttestJWTDPoP,
}

// Grant types authz serves.
var GrantTypes = []string{"authorization_code", "client_credentials", "refresh_token"}

// Config is the whole configuration file (interface.md "Configuration file").
type Config struct {
	Issuer      string      `yaml:"issuer"`
	Listen      string      `yaml:"listen"`
	Database    Database    `yaml:"database"`
	Admin       Admin       `yaml:"admin"`
	Attestation Attestation `yaml:"attestation"`
	Attesters   []Attester  `yaml:"attesters"`
	Clients     []Client    `yaml:"clients"`
	Users       []User      `yaml:"users"`
	Audit       Audit       `yaml:"audit"`
	Tokens      Tokens      `yaml:"tokens"`
	DPoP        DPoP        `yaml:"dpop"`
	Log         Log         `yaml:"log"`
	HTTP        HTTP        `yaml:"http"`
	RateLimit   RateLimit   `yaml:"rate_limit"`
}

// HTTP configures browser access.
type HTTP struct {
	// CORSAllowedOrigins may call the token, PAR, challenge, introspection and revocation
	// endpoints from a browser (exact origins such as https://app.example.com; empty = none).
	CORSAllowedOrigins []string `yaml:"cors_allowed_origins"`
}

// RateLimit bounds request rates on the token, PAR and challenge endpoints, per remote address
// and per claimed client, so a flood of bad attestations cannot starve good clients.
// A rate of 0 disables that limit.
type RateLimit struct {
	PerAddress      float64 `yaml:"per_address"`       // sustained requests/second per remote address
	PerAddressBurst int     `yaml:"per_address_burst"` // burst per remote address
	PerClient       float64 `yaml:"per_client"`        // sustained requests/second per client_id
	PerClientBurst  int     `yaml:"per_client_burst"`  // burst per client_id
}

// Database selects the storage backend.
type Database struct {
	Driver string `yaml:"driver"` // sqlite | postgres
	DSN    string `yaml:"dsn"`
}

// Admin configures the admin API.
type Admin struct {
	Token string `yaml:"token"` // empty disables /admin/*
}

// Attestation holds the verifier policy (profile §5).
type Attestation struct {
	ChallengeRequired bool          `yaml:"challenge_required"`
	ChallengeTTL      time.Duration `yaml:"challenge_ttl"`
	PoPMaxAge         time.Duration `yaml:"pop_max_age"`
	ClockSkew         time.Duration `yaml:"clock_skew"`
	MaxAttestationAge time.Duration `yaml:"max_attestation_age"`
}

// Attester is one trusted client attester (profile §4, §8).
type Attester struct {
	ID             string         `yaml:"id"`
	Description    string         `yaml:"description"`
	JWKS           any            `yaml:"jwks"`
	JWKSFile       string         `yaml:"jwks_file"`
	JWKSURI        string         `yaml:"jwks_uri"`
	X5CRoots       string         `yaml:"x5c_roots"`
	JKUAllowlist   []string       `yaml:"jku_allowlist"`
	RequiredClaims map[string]any `yaml:"required_claims"`
	HMACSecret     string         `yaml:"hmac_secret"`
	Enabled        *bool          `yaml:"enabled"`
}

// IsEnabled reports the attester's enabled flag (default true, profile §8).
func (a Attester) IsEnabled() bool { return a.Enabled == nil || *a.Enabled }

// Client is one registered OAuth client.
type Client struct {
	ClientID                    string   `yaml:"client_id"`
	Description                 string   `yaml:"description"`
	TokenEndpointAuthMethod     string   `yaml:"token_endpoint_auth_method"`
	TokenEndpointAuthSigningAlg string   `yaml:"token_endpoint_auth_signing_alg"`
	GrantTypes                  []string `yaml:"grant_types"`
	Scopes                      []string `yaml:"scopes"`
	Attesters                   []string `yaml:"attesters"`
	RedirectURIs                []string `yaml:"redirect_uris"`
	ClientSecret                string   `yaml:"client_secret"`
	JWKS                        any      `yaml:"jwks"`
	RequireAttestation          bool     `yaml:"require_attestation"`
}

// User is an end user of the authorization-code flow's login page.
type User struct {
	Username     string `yaml:"username"`
	PasswordHash string `yaml:"password_hash"`
}

// Audit configures decision-record retention (profile §7).
type Audit struct {
	Retention time.Duration `yaml:"retention"`
}

// Tokens configures token lifetimes.
type Tokens struct {
	AccessTokenTTL  time.Duration `yaml:"access_token_ttl"`
	RefreshTokenTTL time.Duration `yaml:"refresh_token_ttl"`
	CodeTTL         time.Duration `yaml:"authorization_code_ttl"`
	// DefaultAudience is the aud of access tokens requested without a resource or audience
	// (RFC 9068 §3); empty means the issuer.
	DefaultAudience string `yaml:"default_audience"`
}

// DPoP configures RFC 9449 proofs outside attestation's combined mode (which always uses the
// attestation challenge as its nonce).
type DPoP struct {
	// NonceRequired makes the token and PAR endpoints demand a server-provided nonce in every
	// plain DPoP proof (RFC 9449 §8): a proof without a current one is answered with
	// use_dpop_nonce and a fresh DPoP-Nonce header.
	NonceRequired bool `yaml:"nonce_required"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Default returns a Config with every default of config.example.yaml.
func Default() Config {
	return Config{
		Issuer:   "http://127.0.0.1:8080",
		Listen:   "127.0.0.1:8080",
		Database: Database{Driver: "sqlite", DSN: "authz.db"},
		Attestation: Attestation{
			ChallengeTTL: 5 * time.Minute,
			PoPMaxAge:    60 * time.Second,
			ClockSkew:    30 * time.Second,
		},
		Audit:  Audit{Retention: 720 * time.Hour},
		Tokens: Tokens{AccessTokenTTL: 15 * time.Minute, RefreshTokenTTL: 720 * time.Hour, CodeTTL: time.Minute},
		Log:    Log{Level: "info", Format: "text"},
		RateLimit: RateLimit{
			PerAddress: 2000, PerAddressBurst: 4000,
			PerClient: 1000, PerClientBurst: 2000,
		},
	}
}

// maxConfigBytes bounds the configuration file.
const maxConfigBytes = 4 << 20

// Load reads path, decodes it strictly over the defaults, applies AUTHZ_* environment overrides
// (environ is os.Environ() in production) and validates the result.
func Load(path string, environ []string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("config: %s is larger than %d bytes", path, maxConfigBytes)
	}
	return Parse(data, environ)
}

// Parse decodes YAML like Load.
func Parse(data []byte, environ []string) (*Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// applyEnv overrides scalar keys from AUTHZ_<KEY> variables, where KEY is the YAML path joined
// by '_' in upper case (AUTHZ_DATABASE_DSN for database.dsn). Lists are not overridable.
func applyEnv(cfg *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "AUTHZ_") {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}
	var problems []string
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			name := prefix + "_" + strings.ToUpper(tag)
			fv := v.Field(i)
			if fv.Kind() == reflect.Struct {
				walk(fv, name)
				continue
			}
			val, ok := env[name]
			if !ok {
				continue
			}
			if err := setScalar(fv, val); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", name, err))
			}
		}
	}
	walk(reflect.ValueOf(cfg).Elem(), "AUTHZ")
	if len(problems) > 0 {
		return fmt.Errorf("config: environment: %s", strings.Join(problems, "; "))
	}
	return nil
}

// UnknownEnv lists the AUTHZ_* variables of environ that name no overridable key (a typo such as
// AUTHZ_DATABASE_URL would otherwise leave the default in place without a word), with a reason
// each. AUTHZ_TEST_* (the test suites') and AUTHZ_DB_PASSWORD (docker-compose.yml's) are not
// configuration and are not listed.
func UnknownEnv(environ []string) []string {
	scalars, lists := map[string]bool{}, map[string]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			name := prefix + "_" + strings.ToUpper(tag)
			switch ft := t.Field(i).Type; {
			case ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Duration(0)):
				walk(ft, name)
			case ft.Kind() == reflect.Slice || ft.Kind() == reflect.Map:
				lists[name] = true
			default:
				scalars[name] = true
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "AUTHZ")
	var unknown []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case !strings.HasPrefix(k, "AUTHZ_"), strings.HasPrefix(k, "AUTHZ_TEST_"), k == "AUTHZ_DB_PASSWORD", scalars[k]:
		case lists[k]:
			unknown = append(unknown, k+" is ignored: lists are set in the configuration file, not the environment")
		default:
			unknown = append(unknown, k+" is ignored: no configuration key has that name")
		}
	}
	sort.Strings(unknown)
	return unknown
}

func setScalar(v reflect.Value, s string) error {
	switch {
	case v.Type() == reflect.TypeOf(time.Duration(0)):
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("not a duration: %w", err)
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("not a boolean: %w", err)
		}
		v.SetBool(b)
	case v.CanInt():
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("not an integer: %w", err)
		}
		v.SetInt(n)
	case v.CanUint():
		n, err := strconv.ParseUint(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("not a non-negative integer: %w", err)
		}
		v.SetUint(n)
	case v.CanFloat():
		f, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("not a finite number: %q", s)
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var p problems
	c.validateServer(&p)
	attesterIDs := c.validateAttesters(&p)
	c.validateClients(&p, attesterIDs)
	for i, u := range c.Users {
		if u.Username == "" {
			p.addf("users[%d]: username is required", i)
		}
		if !strings.HasPrefix(u.PasswordHash, "$2") {
			p.addf("users[%d] (%s): password_hash must be a bcrypt hash ($2a$/$2b$...)", i, u.Username)
		}
	}
	return p.err()
}

func (c *Config) validateServer(p *problems) {
	if err := ValidateIssuer(c.Issuer); err != nil {
		p.addf("issuer: %v", err)
	}
	if c.Listen == "" {
		p.addf("listen: required (host:port)")
	} else if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		p.addf("listen: %v", err)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p.addf("listen: port %q is not a number from 0 to 65535", port)
	}
	switch c.Database.Driver {
	case "sqlite", "postgres":
	default:
		p.addf("database.driver: %q is not sqlite or postgres", c.Database.Driver)
	}
	if c.Database.DSN == "" {
		p.addf("database.dsn: required")
	} else if c.Database.Driver == "postgres" && !strings.HasPrefix(c.Database.DSN, "postgres://") && !strings.HasPrefix(c.Database.DSN, "postgresql://") {
		p.addf("database.dsn: a postgres dsn is a URL (postgres://user:pass@host:5432/db?sslmode=disable)")
	}
	if c.Admin.Token != "" && len(c.Admin.Token) < 16 {
		p.addf("admin.token: must be at least 16 characters (or empty to disable the admin API)")
	} else if c.Admin.Token != "" && distinctBytes(c.Admin.Token) < 8 {
		p.addf("admin.token: too predictable (fewer than 8 different characters); use a random value, e.g. openssl rand -base64 32")
	}
	a := c.Attestation
	positive := map[string]time.Duration{
		"attestation.challenge_ttl": a.ChallengeTTL, "attestation.pop_max_age": a.PoPMaxAge,
		"audit.retention": c.Audit.Retention, "tokens.access_token_ttl": c.Tokens.AccessTokenTTL,
		"tokens.refresh_token_ttl": c.Tokens.RefreshTokenTTL, "tokens.authorization_code_ttl": c.Tokens.CodeTTL,
	}
	for _, k := range []string{"attestation.challenge_ttl", "attestation.pop_max_age", "audit.retention", "tokens.access_token_ttl", "tokens.refresh_token_ttl", "tokens.authorization_code_ttl"} {
		if positive[k] <= 0 {
			p.addf("%s: must be a positive duration", k)
		}
	}
	if a.ClockSkew < 0 || a.ClockSkew > 5*time.Minute {
		p.addf("attestation.clock_skew: must be between 0s and 5m")
	}
	if a.MaxAttestationAge < 0 {
		p.addf("attestation.max_attestation_age: must not be negative")
	}
	if c.RateLimit.PerAddress < 0 || c.RateLimit.PerClient < 0 || c.RateLimit.PerAddressBurst < 0 || c.RateLimit.PerClientBurst < 0 {
		p.addf("rate_limit: rates and bursts must not be negative")
	}
	for _, o := range c.HTTP.CORSAllowedOrigins {
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" || o == "*" {
			p.addf("http.cors_allowed_origins: %q is not an origin (scheme://host[:port])", o)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.addf("log.level: %q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		p.addf("log.format: %q is not text or json", c.Log.Format)
	}
}

// ValidateIssuer checks an RFC 8414 §2 issuer: https (http only for loopback hosts), no query or
// fragment.
func ValidateIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", issuer)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.Contains(issuer, "?") || strings.Contains(issuer, "#") {
		return fmt.Errorf("%q must not have a query, fragment or user info (RFC 8414 §2)", issuer)
	}
	if strings.HasSuffix(u.Path, "/") {
		// Endpoint URLs are the issuer followed by their path, and the issuer is compared
		// byte for byte (PoP aud, iss): one spelling only.
		return fmt.Errorf("%q must not end with a slash", issuer)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !IsLoopbackHost(u.Hostname()) {
			return fmt.Errorf("%q: http is allowed only for loopback hosts; use https", issuer)
		}
	default:
		return fmt.Errorf("%q: scheme must be https", issuer)
	}
	return nil
}

// ValidateRedirectURI checks a registered redirect URI (RFC 6749 §3.1.2, RFC 9700 §4.1): an
// absolute URI without fragment or user info; https, or http on a loopback host (RFC 8252 §7.3;
// nothing leaves the machine); for public clients (native apps) also a private-use scheme
// named after a domain, which has a dot (RFC 8252 §7.1, "com.example.app:/cb"). Schemes that
// run or embed content (javascript:, data:, vbscript:, file:, ...) are refused by that rule: a
// code would be handed to a script.
func ValidateRedirectURI(raw string, public bool) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs():
		return fmt.Errorf("%q must be an absolute URI", raw)
	case strings.Contains(raw, "#"):
		return fmt.Errorf("%q must not have a fragment (RFC 6749 §3.1.2)", raw)
	case u.User != nil:
		return fmt.Errorf("%q must not have user info", raw)
	}
	switch scheme := strings.ToLower(u.Scheme); {
	case scheme == "https":
		if u.Host == "" {
			return fmt.Errorf("%q has no host", raw)
		}
	case scheme == "http":
		if !IsLoopbackHost(u.Hostname()) {
			return fmt.Errorf("%q: http is allowed only for loopback hosts (RFC 8252 §7.3); use https", raw)
		}
	case public && strings.Contains(scheme, "."):
		// a private-use scheme of a native app
	default:
		return fmt.Errorf("%q: the scheme must be https, http on a loopback host, or (public clients) a private-use scheme with a dot, such as com.example.app (RFC 8252 §7.1)", raw)
	}
	return nil
}

// IsLoopbackHost reports whether host is localhost or a loopback IP.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Config) validateAttesters(p *problems) map[string]bool {
	ids := map[string]bool{}
	for i, a := range c.Attesters {
		where := fmt.Sprintf("attesters[%d]", i)
		if a.ID == "" {
			p.addf("%s: id is required", where)
		} else {
			where = fmt.Sprintf("attesters[%d] (%s)", i, a.ID)
			if ids[a.ID] {
				p.addf("%s: duplicate id", where)
			}
			ids[a.ID] = true
		}
		if a.JWKS != nil && a.JWKSFile != "" {
			p.addf("%s: set jwks or jwks_file, not both", where)
		}
		if a.JWKS == nil && a.JWKSFile == "" && a.JWKSURI == "" && a.X5CRoots == "" && len(a.JKUAllowlist) == 0 && a.HMACSecret == "" {
			p.addf("%s: needs at least one of jwks, jwks_file, jwks_uri, x5c_roots, jku_allowlist, hmac_secret", where)
		}
		if a.HMACSecret != "" && len(a.HMACSecret) < 32 {
			p.addf("%s: hmac_secret must be at least 32 bytes", where)
		}
		if a.JWKS != nil {
			if _, err := JSONOf(a.JWKS); err != nil {
				p.addf("%s: jwks: %v", where, err)
			}
		}
		for _, u := range append([]string{a.JWKSURI}, a.JKUAllowlist...) {
			if u == "" {
				continue
			}
			if err := validateFetchURL(u); err != nil {
				p.addf("%s: %v", where, err)
			}
		}
	}
	return ids
}

func validateFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	if u.Scheme == "https" || (u.Scheme == "http" && IsLoopbackHost(u.Hostname())) {
		return nil
	}
	return fmt.Errorf("%q: only https URLs (http for loopback hosts) may be fetched", raw)
}

func (c *Config) validateClients(p *problems, attesterIDs map[string]bool) {
	ids := map[string]bool{}
	for i, cl := range c.Clients {
		where := fmt.Sprintf("clients[%d]", i)
		if cl.ClientID == "" {
			p.addf("%s: client_id is required", where)
		} else {
			where = fmt.Sprintf("clients[%d] (%s)", i, cl.ClientID)
			if ids[cl.ClientID] {
				p.addf("%s: duplicate client_id", where)
			}
			ids[cl.ClientID] = true
		}
		if !contains(AuthMethods, cl.TokenEndpointAuthMethod) {
			p.addf("%s: token_endpoint_auth_method %q is not one of %s", where, cl.TokenEndpointAuthMethod, strings.Join(AuthMethods, ", "))
		}
		if len(cl.GrantTypes) == 0 {
			p.addf("%s: grant_types is required", where)
		}
		for _, g := range cl.GrantTypes {
			if !contains(GrantTypes, g) {
				p.addf("%s: grant type %q is not one of %s", where, g, strings.Join(GrantTypes, ", "))
			}
		}
		secretMethod := cl.TokenEndpointAuthMethod == AuthMethodClientSecretBasic || cl.TokenEndpointAuthMethod == AuthMethodClientSecretPost
		if secretMethod && len(cl.ClientSecret) < 16 {
			p.addf("%s: client_secret of at least 16 characters is required for %s", where, cl.TokenEndpointAuthMethod)
		}
		if !secretMethod && cl.ClientSecret != "" {
			p.addf("%s: client_secret is only for client_secret_basic and client_secret_post", where)
		}
		if cl.TokenEndpointAuthMethod == AuthMethodPrivateKeyJWT && cl.JWKS == nil {
			p.addf("%s: jwks is required for private_key_jwt", where)
		}
		if cl.JWKS != nil {
			if _, err := JSONOf(cl.JWKS); err != nil {
				p.addf("%s: jwks: %v", where, err)
			}
		}
		if cl.TokenEndpointAuthMethod == AuthMethodNone && contains(cl.GrantTypes, "client_credentials") {
			p.addf("%s: a public client (none) cannot use client_credentials", where)
		}
		if contains(cl.GrantTypes, "authorization_code") && len(cl.RedirectURIs) == 0 {
			p.addf("%s: redirect_uris is required for authorization_code", where)
		}
		for _, r := range cl.RedirectURIs {
			if err := ValidateRedirectURI(r, cl.TokenEndpointAuthMethod == AuthMethodNone); err != nil {
				p.addf("%s: redirect_uri %v", where, err)
			}
		}
		isAttest := cl.TokenEndpointAuthMethod == AuthMethodAttestJWT || cl.TokenEndpointAuthMethod == AuthMethodAttestJWTDPoP
		if cl.RequireAttestation && isAttest {
			p.addf("%s: require_attestation is for non-attestation methods; %s always requires attestation", where, cl.TokenEndpointAuthMethod)
		}
		_ = attesterIDs // attesters may also live in the database (CLI, admin API), so references are checked at run time
	}
}

// JSONOf converts a YAML-decoded value (a map, or a string holding JSON) into JSON bytes.
func JSONOf(v any) ([]byte, error) {
	if s, ok := v.(string); ok {
		if !json.Valid([]byte(s)) {
			return nil, errors.New("not valid JSON")
		}
		return []byte(s), nil
	}
	b, err := json.Marshal(normalizeYAML(v))
	if err != nil {
		return nil, fmt.Errorf("cannot be expressed as JSON: %w", err)
	}
	return b, nil
}

// normalizeYAML turns map[any]any (never produced by yaml.v3, but possible in nested decoding)
// into map[string]any so encoding/json accepts it.
func normalizeYAML(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = normalizeYAML(x)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[fmt.Sprint(k)] = normalizeYAML(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = normalizeYAML(x)
		}
		return out
	default:
		return v
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type problems []string

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("config: %d problem(s): %s", len(p), strings.Join(p, "; "))
}

// distinctBytes counts the different bytes of s.
func distinctBytes(s string) int {
	var seen [256]bool
	n := 0
	for i := 0; i < len(s); i++ {
		if !seen[s[i]] {
			seen[s[i]] = true
			n++
		}
	}
	return n
}
