package clientauth

import (
	"crypto/x509"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/internal/testkit"
)

func TestNew(t *testing.T) {
	key := testkit.ECKey(t)
	pub := publicJWK(t, key, "k")
	valid := func() Config {
		return Config{Issuer: testIssuer, Attesters: []Attester{{ID: "a", Keys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}, Enabled: true}}}
	}
	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantErr string
	}{
		{"valid", func(c *Config) {}, ""},
		{"no_attesters", func(c *Config) { c.Attesters = nil }, ""},
		{"issuer_missing", func(c *Config) { c.Issuer = "" }, "issuer"},
		{"pop_hs256", func(c *Config) { c.PoPAlgorithms = []string{"ES256", "HS256"} }, "HS256"},
		{"pop_none", func(c *Config) { c.PoPAlgorithms = []string{"none"} }, "none"},
		{"attestation_hs256_listed", func(c *Config) { c.AttestationAlgorithms = []string{"HS256"} }, "HS256"},
		{"dpop_unknown_alg", func(c *Config) { c.DPoPAlgorithms = []string{"ES256K"} }, "ES256K"},
		{"negative_skew", func(c *Config) { c.ClockSkew = -time.Second }, "clock_skew"},
		{"no_skew", func(c *Config) { c.ClockSkew = NoClockSkew }, ""},
		{"short_challenge_secret", func(c *Config) { c.ChallengeSecret = []byte("short") }, "challenge secret"},
		{"challenge_required_without_secret", func(c *Config) { c.ChallengeRequired = true }, "challenge_required"},
		{"attester_problem_reported", func(c *Config) { c.Attesters[0].HMACSecret = []byte("x") }, "hmac_secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.mutate(&cfg)
			_, err := New(cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// The zero ClockSkew selects the default; NoClockSkew tolerates none (a configured 0s).
func TestNewClockSkew(t *testing.T) {
	for _, tc := range []struct {
		in, want time.Duration
	}{{0, DefaultClockSkew}, {NoClockSkew, 0}, {5 * time.Second, 5 * time.Second}} {
		v, err := New(Config{Issuer: testIssuer, ClockSkew: tc.in})
		if err != nil {
			t.Fatal(err)
		}
		if v.cfg.ClockSkew != tc.want {
			t.Errorf("ClockSkew %v: effective %v, want %v", tc.in, v.cfg.ClockSkew, tc.want)
		}
	}
}

// TestSetAttestersValidation covers profile §4, §8 attester configuration rules.
func TestSetAttestersValidation(t *testing.T) {
	e := newEnv(t, nil)
	k1 := testkit.ECKey(t)
	k2 := testkit.ECKey(t)
	set := func(keys ...jose.JSONWebKey) *jose.JSONWebKeySet { return &jose.JSONWebKeySet{Keys: keys} }
	root := issueCert(t, certSpec{cn: "r", ca: true, notBefore: testNow.Add(-time.Hour), notAfter: testNow.Add(time.Hour), keyUsage: x509.KeyUsageCertSign}, &k1.PublicKey, k1, nil)
	tests := []struct {
		name      string
		attesters []Attester
		wantErr   string
	}{
		{"valid_kinds", []Attester{
			{ID: "a", Keys: set(publicJWK(t, k1, "k1")), Enabled: true},
			{ID: "b", JWKSURI: "https://attester.example/jwks", Enabled: true},
			{ID: "c", X5CRoots: []*x509.Certificate{root}, Enabled: true},
			{ID: "d", JKUAllowlist: []string{"http://127.0.0.1:9/jwks", "http://localhost/jwks", "http://[::1]/jwks"}, Enabled: true},
			{ID: "e", HMACSecret: []byte(strings.Repeat("s", 32)), Enabled: true},
		}, ""},
		{"duplicate_kid_across_attesters", []Attester{
			{ID: "a", Keys: set(publicJWK(t, k1, "same")), Enabled: true},
			{ID: "b", Keys: set(publicJWK(t, k2, "same")), Enabled: true},
		}, "kid"},
		{"duplicate_kid_with_disabled_attester", []Attester{
			{ID: "a", Keys: set(publicJWK(t, k1, "same")), Enabled: true},
			{ID: "b", Keys: set(publicJWK(t, k2, "same")), Enabled: false},
		}, ""},
		{"duplicate_id", []Attester{
			{ID: "a", Keys: set(publicJWK(t, k1, "k1")), Enabled: true},
			{ID: "a", Keys: set(publicJWK(t, k2, "k2")), Enabled: true},
		}, "duplicate id"},
		{"missing_id", []Attester{{Keys: set(publicJWK(t, k1, "k1")), Enabled: true}}, "id is required"},
		{"no_key_source", []Attester{{ID: "a", Enabled: true}}, "at least one"},
		{"private_key", []Attester{{ID: "a", Keys: set(jose.JSONWebKey{Key: k1, KeyID: "k"}), Enabled: true}}, "public"},
		{"symmetric_key", []Attester{{ID: "a", Keys: set(jose.JSONWebKey{Key: []byte(strings.Repeat("k", 32)), KeyID: "k"}), Enabled: true}}, "public"},
		{"short_rsa_key", []Attester{{ID: "a", Keys: set(publicJWK(t, testkit.RSAKey(t, 1024), "k")), Enabled: true}}, "2048"},
		{"short_hmac_secret", []Attester{{ID: "a", HMACSecret: []byte(strings.Repeat("s", 31)), Enabled: true}}, "32 bytes"},
		{"jku_http_not_loopback", []Attester{{ID: "a", JKUAllowlist: []string{"http://attester.example/jwks"}, Enabled: true}}, "loopback"},
		{"jwks_uri_ftp", []Attester{{ID: "a", JWKSURI: "ftp://attester.example/jwks", Enabled: true}}, "https"},
		{"jku_relative", []Attester{{ID: "a", JKUAllowlist: []string{"/jwks"}, Enabled: true}}, "absolute"},
		{"jku_on_two_attesters", []Attester{
			{ID: "a", JKUAllowlist: []string{"https://x.example/jwks"}, Enabled: true},
			{ID: "b", JKUAllowlist: []string{"https://x.example/jwks"}, Enabled: true},
		}, "jku"},
		{"root_on_two_attesters", []Attester{
			{ID: "a", X5CRoots: []*x509.Certificate{root}, Enabled: true},
			{ID: "b", X5CRoots: []*x509.Certificate{root}, Enabled: true},
		}, "root"},
		{"required_claim_not_json", []Attester{{ID: "a", Keys: set(publicJWK(t, k1, "k1")), RequiredClaims: map[string]json.RawMessage{"x": json.RawMessage(`{`)}, Enabled: true}}, "required claim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.v.trust.Load()
			err := e.v.SetAttesters(tt.attesters)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("SetAttesters: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("SetAttesters error = %v, want one mentioning %q", err, tt.wantErr)
			}
			if e.v.trust.Load() != before {
				t.Error("a rejected attester set replaced the trusted one")
			}
		})
	}
}

// TestAlgorithmLists covers profile §3, §8: metadata lists exactly what the verifier accepts.
func TestAlgorithmLists(t *testing.T) {
	def := DefaultAlgorithms()
	tests := []struct {
		name    string
		secrets []int
		want    []string
	}{
		{"no_mac_attester", nil, def},
		{"secret_32", []int{32}, append(slices.Clone(def), "HS256")},
		{"secret_48", []int{48}, append(slices.Clone(def), "HS256", "HS384")},
		{"secret_64", []int{32, 64}, append(slices.Clone(def), "HS256", "HS384", "HS512")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			atts := []Attester{}
			for i, n := range tt.secrets {
				atts = append(atts, Attester{ID: "mac" + string(rune('a'+i)), HMACSecret: []byte(strings.Repeat("s", n)), Enabled: true})
			}
			if err := e.v.SetAttesters(atts); err != nil {
				t.Fatal(err)
			}
			if got := e.v.AttestationAlgorithms(); !slices.Equal(got, tt.want) {
				t.Errorf("AttestationAlgorithms = %v, want %v", got, tt.want)
			}
		})
	}
	v, err := New(Config{Issuer: testIssuer, PoPAlgorithms: []string{"EdDSA"}, DPoPAlgorithms: []string{"ES256", "ES256"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.PoPAlgorithms(); !slices.Equal(got, []string{"EdDSA"}) {
		t.Errorf("PoPAlgorithms = %v", got)
	}
	if got := v.DPoPAlgorithms(); !slices.Equal(got, []string{"ES256"}) {
		t.Errorf("DPoPAlgorithms = %v", got)
	}
	v.DPoPAlgorithms()[0] = "none"
	if v.DPoPAlgorithms()[0] != "ES256" {
		t.Error("DPoPAlgorithms exposes internal state")
	}
}

// TestVerifiedCache checks that the cache keeps freshness checks per request and is invalidated
// by SetAttesters.
func TestVerifiedCache(t *testing.T) {
	e := newEnv(t, nil)
	att := e.attestation(func(h, c map[string]any) { c["exp"] = testNow.Add(10 * time.Minute).Unix() })
	_, err := e.authenticate(att, e.pop(nil))
	checkErr(t, err, nil)

	e.clock.Advance(11 * time.Minute)
	_, err = e.authenticate(att, e.pop(nil))
	checkErr(t, err, ErrAttestationExpired)

	e.clock.Advance(-11 * time.Minute)
	_, err = e.authenticate(att, e.pop(nil))
	checkErr(t, err, nil)
	if err := e.v.SetAttesters(nil); err != nil {
		t.Fatal(err)
	}
	_, err = e.authenticate(att, e.pop(nil))
	checkErr(t, err, ErrAttestationUnknownKey)
}

// TestSetAttestersConcurrent runs Authenticate while the attesters are swapped (run with -race).
func TestSetAttestersConcurrent(t *testing.T) {
	e := newEnv(t, nil)
	atts := e.cfg.Attesters
	other := []Attester{{ID: "other", Keys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{publicJWK(t, testkit.ECKey(t), "o")}}, Enabled: true}}
	tokens := make([]string, 8)
	pops := make([]string, 8)
	for i := range tokens {
		tokens[i] = e.attestation(func(h, c map[string]any) { c["n"] = i })
		pops[i] = e.pop(nil)
	}
	var wg sync.WaitGroup
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				_, err := e.authenticate(tokens[i], pops[i])
				if err != nil && !errorsIsAny(err, ErrAttestationUnknownKey) {
					t.Errorf("unexpected error: %v", err)
					return
				}
			}
		}()
	}
	for i := range 20 {
		next := atts
		if i%2 == 0 {
			next = other
		}
		if err := e.v.SetAttesters(next); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}
