package clientauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/internal/testkit"
)

// jwksServer serves a mutable JWK set on loopback and counts fetches per path.
type jwksServer struct {
	srv   *httptest.Server
	keys  atomic.Pointer[jose.JSONWebKeySet]
	hits  atomic.Int64
	other atomic.Int64 // requests to any path but /jwks
}

func newJWKSServer(t *testing.T, keys ...jose.JSONWebKey) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.keys.Store(&jose.JSONWebKeySet{Keys: keys})
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/jwks":
			s.hits.Add(1)
			w.Header().Set("Content-Type", "application/jwk-set+json")
			_ = json.NewEncoder(w).Encode(s.keys.Load())
		case "/redirect":
			s.other.Add(1)
			http.Redirect(w, r, "/jwks", http.StatusFound)
		default:
			s.other.Add(1)
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *jwksServer) url(path string) string { return s.srv.URL + path }

// TestKeyResolution covers profile §4/§8 precedence and each resolution path end to end.
func TestKeyResolution(t *testing.T) {
	second := testkit.ECKey(t)
	noKid := testkit.ECKey(t)
	jkuKey := testkit.ECKey(t)
	srv := newJWKSServer(t, publicJWK(t, jkuKey, "jku-key"))
	macSecret := []byte(strings.Repeat("m", 64))
	e := newEnv(t, func(e *testEnv, cfg *Config) {
		cfg.Attesters = append(cfg.Attesters,
			Attester{ID: "att2", Keys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{publicJWK(t, second, "att2-key"), publicJWK(t, noKid, "")}}, Enabled: true},
			Attester{ID: "jku-att", JKUAllowlist: []string{srv.url("/jwks")}, Enabled: true},
			Attester{ID: "mac-att", HMACSecret: macSecret, Enabled: true},
		)
	})
	tests := []struct {
		name           string
		key            any
		header         map[string]any
		allowed        []string
		wantErr        error
		wantAttester   string
		wantResolution string
	}{
		{"kid_first_attester", e.attKey, map[string]any{"alg": "ES256", "kid": testKid}, nil, nil, testAttester, ResolutionKID},
		{"kid_second_attester", second, map[string]any{"alg": "ES256", "kid": "att2-key"}, nil, nil, "att2", ResolutionKID},
		{"kid_unknown", second, map[string]any{"alg": "ES256", "kid": "nope"}, nil, ErrAttestationUnknownKey, "", ResolutionKID},
		{"kid_names_the_wrong_key", second, map[string]any{"alg": "ES256", "kid": testKid}, nil, ErrAttestationSignature, testAttester, ResolutionKID},
		{"kid_of_attester_not_allowed", second, map[string]any{"alg": "ES256", "kid": "att2-key"}, []string{testAttester}, ErrAttesterNotAllowed, "att2", ResolutionKID},
		{"keys_tried_finds_keyless_kid", noKid, map[string]any{"alg": "ES256"}, nil, nil, "att2", ResolutionKeysTried},
		{"keys_tried_only_allowed_attesters", noKid, map[string]any{"alg": "ES256"}, []string{testAttester}, ErrAttestationSignature, "", ResolutionKeysTried},
		{"keys_tried_unknown_key", testkit.ECKey(t), map[string]any{"alg": "ES256"}, nil, ErrAttestationSignature, "", ResolutionKeysTried},
		{"keys_tried_no_fitting_key", testkit.ECKeyOn(t, elliptic.P384()), map[string]any{"alg": "ES384"}, nil, ErrAttestationUnknownKey, "", ResolutionKeysTried},
		{"jku_allow_listed", jkuKey, map[string]any{"alg": "ES256", "kid": "jku-key", "jku": srv.url("/jwks")}, nil, nil, "jku-att", ResolutionJKU},
		{"jku_wins_over_kid_lookup", jkuKey, map[string]any{"alg": "ES256", "kid": "jku-key", "jku": srv.url("/jwks")}, []string{"jku-att"}, nil, "jku-att", ResolutionJKU},
		{"jku_without_kid", jkuKey, map[string]any{"alg": "ES256", "jku": srv.url("/jwks")}, nil, nil, "jku-att", ResolutionJKU},
		{"jku_unknown_kid", jkuKey, map[string]any{"alg": "ES256", "kid": "other", "jku": srv.url("/jwks")}, nil, ErrAttestationUnknownKey, "jku-att", ResolutionJKU},
		{"jku_not_allow_listed", jkuKey, map[string]any{"alg": "ES256", "kid": "jku-key", "jku": srv.url("/other")}, nil, ErrJKUNotAllowed, "", ResolutionJKU},
		{"jku_trailing_slash_differs", jkuKey, map[string]any{"alg": "ES256", "kid": "jku-key", "jku": srv.url("/jwks/")}, nil, ErrJKUNotAllowed, "", ResolutionJKU},
		{"jku_not_a_string", jkuKey, map[string]any{"alg": "ES256", "kid": "jku-key", "jku": 5}, nil, ErrAttestationMalformed, "", ""},
		{"kid_not_a_string", e.attKey, map[string]any{"alg": "ES256", "kid": 5}, nil, ErrAttestationMalformed, "", ""},
		{"hmac_with_kid", macSecret, map[string]any{"alg": "HS512", "kid": "mac-att"}, nil, nil, "mac-att", ResolutionHMAC},
		{"hmac_without_kid", macSecret, map[string]any{"alg": "HS256"}, nil, nil, "mac-att", ResolutionHMAC},
		{"hmac_without_kid_not_allowed", macSecret, map[string]any{"alg": "HS256"}, []string{testAttester}, ErrAttestationUnknownKey, "", ResolutionHMAC},
		{"hmac_kid_names_attester_without_secret", macSecret, map[string]any{"alg": "HS256", "kid": testAttester}, nil, ErrAttestationUnknownKey, "", ResolutionHMAC},
		{"hmac_wrong_secret", []byte(strings.Repeat("x", 64)), map[string]any{"alg": "HS256", "kid": "mac-att"}, nil, ErrAttestationSignature, "mac-att", ResolutionHMAC},
		{"hmac_with_jku", macSecret, map[string]any{"alg": "HS256", "jku": srv.url("/jwks")}, nil, ErrAttestationAlg, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			h["typ"] = TypAttestation
			att := signJWT(t, tt.key, h, e.attClaims())
			client := e.client()
			client.AllowedAttesters = tt.allowed
			res, err := e.v.Authenticate(t.Context(), e.request(headerWith(HeaderClientAttestation, att, HeaderClientAttestationPoP, e.pop(nil))), client)
			checkErr(t, err, tt.wantErr)
			if res.Attester != tt.wantAttester || res.Resolution != tt.wantResolution {
				t.Errorf("attester, resolution = %q, %q, want %q, %q", res.Attester, res.Resolution, tt.wantAttester, tt.wantResolution)
			}
		})
	}
	if n := srv.other.Load(); n != 0 {
		t.Errorf("%d requests to URLs that are not allow-listed", n)
	}
	if n := srv.hits.Load(); n < 1 || n > 2 {
		t.Errorf("jku set fetched %d times, want once plus at most one refresh", n)
	}
}

// TestX5CResolution covers ABCA-09 §9.7 x5c with profile §8: chains only to configured roots,
// validity, key usage, and the precedence of x5c over kid.
func TestX5CResolution(t *testing.T) {
	rootKey := testkit.ECKey(t)
	interKey := testkit.ECKey(t)
	leafKey := testkit.ECKey(t)
	evilKey := testkit.ECKey(t)
	valid := certSpec{notBefore: testNow.Add(-time.Hour), notAfter: testNow.Add(24 * time.Hour)}
	caSpec := valid
	caSpec.ca, caSpec.keyUsage, caSpec.cn = true, x509.KeyUsageCertSign, "root"
	root := issueCert(t, caSpec, &rootKey.PublicKey, rootKey, nil)
	caSpec.cn = "intermediate"
	inter := issueCert(t, caSpec, &interKey.PublicKey, rootKey, root)
	evilSpec := caSpec
	evilSpec.cn = "root"
	evilRoot := issueCert(t, evilSpec, &evilKey.PublicKey, evilKey, nil)

	leaf := func(spec certSpec, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) *x509.Certificate {
		spec.cn = "attester"
		return issueCert(t, spec, &leafKey.PublicKey, parentKey, parent)
	}
	expired := valid
	expired.notAfter = testNow.Add(-time.Minute)
	notYet := valid
	notYet.notBefore = testNow.Add(time.Hour)
	sigUsage := valid
	sigUsage.keyUsage = x509.KeyUsageDigitalSignature
	encUsage := valid
	encUsage.keyUsage = x509.KeyUsageKeyEncipherment

	e := newEnv(t, func(e *testEnv, cfg *Config) {
		cfg.Attesters = append(cfg.Attesters, Attester{ID: "pki-att", X5CRoots: []*x509.Certificate{root}, Enabled: true})
	})
	tests := []struct {
		name    string
		chain   []*x509.Certificate
		key     any
		kid     string
		wantErr error
	}{
		{"leaf_under_root", []*x509.Certificate{leaf(valid, root, rootKey)}, leafKey, "", nil},
		{"leaf_with_intermediate", []*x509.Certificate{leaf(valid, inter, interKey), inter}, leafKey, "", nil},
		{"configured_root_included", []*x509.Certificate{leaf(valid, root, rootKey), root}, leafKey, "", nil},
		{"digital_signature_usage", []*x509.Certificate{leaf(sigUsage, root, rootKey)}, leafKey, "", nil},
		{"x5c_wins_over_kid", []*x509.Certificate{leaf(valid, root, rootKey)}, leafKey, testKid, nil},
		{"expired_leaf", []*x509.Certificate{leaf(expired, root, rootKey)}, leafKey, "", ErrX5CChain},
		{"leaf_not_yet_valid", []*x509.Certificate{leaf(notYet, root, rootKey)}, leafKey, "", ErrX5CChain},
		{"leaf_without_digital_signature", []*x509.Certificate{leaf(encUsage, root, rootKey)}, leafKey, "", ErrX5CChain},
		{"root_inside_x5c_ignored", []*x509.Certificate{leaf(valid, evilRoot, evilKey), evilRoot}, leafKey, "", ErrX5CChain},
		{"missing_intermediate", []*x509.Certificate{leaf(valid, inter, interKey)}, leafKey, "", ErrX5CChain},
		{"signed_by_another_key", []*x509.Certificate{leaf(valid, root, rootKey)}, evilKey, "", ErrAttestationSignature},
		{"empty_chain", nil, leafKey, "", ErrX5CChain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]any{"typ": TypAttestation, "alg": "ES256", "x5c": x5cOf(tt.chain...)}
			if tt.kid != "" {
				h["kid"] = tt.kid
			}
			res, err := e.authenticate(signJWT(t, tt.key, h, e.attClaims()), e.pop(nil))
			checkErr(t, err, tt.wantErr)
			if res.Resolution != ResolutionX5C {
				t.Errorf("resolution = %q, want x5c", res.Resolution)
			}
			if err == nil && res.Attester != "pki-att" {
				t.Errorf("attester = %q", res.Attester)
			}
		})
	}
}

// TestAmbiguousKid covers profile §8: a kid known to two attesters is rejected, never guessed.
func TestAmbiguousKid(t *testing.T) {
	k1 := testkit.ECKey(t)
	k2 := testkit.ECKey(t)
	srv1 := newJWKSServer(t, publicJWK(t, k1, "shared"))
	srv2 := newJWKSServer(t, publicJWK(t, k2, "shared"))
	e := newEnv(t, func(e *testEnv, cfg *Config) {
		cfg.Attesters = append(cfg.Attesters,
			Attester{ID: "a1", JWKSURI: srv1.url("/jwks"), Enabled: true},
			Attester{ID: "a2", JWKSURI: srv2.url("/jwks"), Enabled: true})
	})
	tests := []struct {
		name    string
		key     any
		kid     string
		wantErr error
	}{
		{"shared_kid_from_first", k1, "shared", ErrAmbiguousKid},
		{"shared_kid_from_second", k2, "shared", ErrAmbiguousKid},
		{"unique_kid", e.attKey, testKid, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.authenticate(signJWT(t, tt.key, map[string]any{"typ": TypAttestation, "alg": "ES256", "kid": tt.kid}, e.attClaims()), e.pop(nil))
			checkErr(t, err, tt.wantErr)
		})
	}
}

// TestDisabledAttester covers profile §8: a disabled attester is ignored everywhere.
func TestDisabledAttester(t *testing.T) {
	e := newEnv(t, func(e *testEnv, cfg *Config) {
		cfg.Attesters[0].Enabled = false
		cfg.Attesters = append(cfg.Attesters, Attester{ID: "other", HMACSecret: []byte(strings.Repeat("x", 64)), Enabled: false})
	})
	_, err := e.authenticate(e.attestation(nil), e.pop(nil))
	checkErr(t, err, ErrAttestationUnknownKey)
	_, err = e.authenticate(e.attestation(func(h, c map[string]any) { delete(h, "kid") }), e.pop(nil))
	checkErr(t, err, ErrAttestationUnknownKey)
	if got := e.v.AttestationAlgorithms(); strings.Contains(strings.Join(got, " "), "HS") {
		t.Errorf("a disabled MAC attester enables %v", got)
	}
}

// TestJWKSURIFetchAndCache covers profile §8 jwks_uri: fetched once, cached five minutes,
// refreshed at most once a minute on an unknown kid.
func TestJWKSURIFetchAndCache(t *testing.T) {
	k1 := testkit.ECKey(t)
	k2 := testkit.ECKey(t)
	srv := newJWKSServer(t, publicJWK(t, k1, "k1"))
	e := newEnv(t, func(e *testEnv, cfg *Config) {
		cfg.Attesters = []Attester{{ID: "remote", JWKSURI: srv.url("/jwks"), Enabled: true}}
	}, withoutCache())
	run := func(key any, kid string) error {
		_, err := e.authenticate(signJWT(t, key, map[string]any{"typ": TypAttestation, "alg": "ES256", "kid": kid}, e.attClaims()), e.pop(nil))
		return err
	}
	steps := []struct {
		name     string
		advance  time.Duration
		rotate   bool
		key      any
		kid      string
		wantErr  error
		wantHits int64
	}{
		{"first_use_fetches", 0, false, k1, "k1", nil, 1},
		{"second_use_is_cached", 10 * time.Second, false, k1, "k1", nil, 1},
		{"unknown_kid_within_a_minute_of_the_fetch", 0, true, k2, "k2", ErrAttestationUnknownKey, 1},
		{"unknown_kid_after_a_minute_refreshes", time.Minute, false, k2, "k2", nil, 2},
		{"unknown_kid_again_within_a_minute", 10 * time.Second, false, k2, "k3", ErrAttestationUnknownKey, 2},
		{"unknown_kid_again_after_a_minute", time.Minute, false, k2, "k3", ErrAttestationUnknownKey, 3},
		{"known_kid_cached", time.Minute, false, k2, "k2", nil, 3},
		{"cache_expires_after_five_minutes", 5 * time.Minute, false, k2, "k2", nil, 4},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			e.clock.Advance(s.advance)
			if s.rotate {
				srv.keys.Store(&jose.JSONWebKeySet{Keys: []jose.JSONWebKey{publicJWK(t, k2, "k2")}})
			}
			checkErr(t, run(s.key, s.kid), s.wantErr)
			if got := srv.hits.Load(); got != s.wantHits {
				t.Errorf("fetches = %d, want %d", got, s.wantHits)
			}
		})
	}
}

// TestJKUFetchPolicy covers profile §8 jku: never a URL outside the allow-list, no redirects,
// bad responses rejected.
func TestJKUFetchPolicy(t *testing.T) {
	key := testkit.ECKey(t)
	srv := newJWKSServer(t, publicJWK(t, key, "k"))
	e := newEnv(t, func(e *testEnv, cfg *Config) {
		cfg.Attesters = append(cfg.Attesters, Attester{ID: "jku-att", JKUAllowlist: []string{srv.url("/redirect"), srv.url("/missing")}, Enabled: true})
	})
	tests := []struct {
		name    string
		jku     string
		wantErr error
	}{
		{"redirect_not_followed", srv.url("/redirect"), ErrAttestationUnknownKey},
		{"not_found", srv.url("/missing"), ErrAttestationUnknownKey},
		{"not_allow_listed", srv.url("/jwks"), ErrJKUNotAllowed},
		{"other_host", "https://attacker.example/jwks", ErrJKUNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]any{"typ": TypAttestation, "alg": "ES256", "kid": "k", "jku": tt.jku}
			_, err := e.authenticate(signJWT(t, key, h, e.attClaims()), e.pop(nil))
			checkErr(t, err, tt.wantErr)
		})
	}
	if n := srv.hits.Load(); n != 0 {
		t.Errorf("the key set behind a redirect or outside the allow-list was fetched %d times", n)
	}
}

// TestParseJWKS covers the key set parser: only public asymmetric signature keys are kept.
func TestParseJWKS(t *testing.T) {
	ec := testkit.ECKey(t)
	pub := string(testkit.MustJSON(t, jwkMap(t, publicJWK(t, ec, "pub"))))
	priv := string(testkit.MustJSON(t, jwkMap(t, jose.JSONWebKey{Key: ec, KeyID: "priv"})))
	tests := []struct {
		name     string
		body     string
		wantKeys int
		wantErr  bool
	}{
		{"one_public_key", `{"keys":[` + pub + `]}`, 1, false},
		{"private_key_skipped", `{"keys":[` + pub + `,` + priv + `]}`, 1, false},
		{"symmetric_key_skipped", `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`, 0, false},
		{"unknown_kty_skipped", `{"keys":[{"kty":"XYZ"},` + pub + `]}`, 1, false},
		{"duplicate_members", `{"keys":[],"keys":[` + pub + `]}`, 0, true},
		{"not_an_object", `[` + pub + `]`, 0, true},
		{"keys_not_an_array", `{"keys":{}}`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := parseJWKS([]byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if len(keys) != tt.wantKeys {
				t.Errorf("keys = %d, want %d", len(keys), tt.wantKeys)
			}
		})
	}
}

// Profile §8: x5c validity periods are checked at every use. The verified-attestation cache
// keeps a result no longer than the earliest NotAfter of its chain, so an attestation verified
// while its leaf was valid is refused once the leaf has expired, although its exp is an hour away.
func TestX5CExpiryHoldsForCachedAttestations(t *testing.T) {
	rootKey, leafKey := testkit.ECKey(t), testkit.ECKey(t)
	root := issueCert(t, certSpec{cn: "root", ca: true, keyUsage: x509.KeyUsageCertSign, notBefore: testNow.Add(-time.Hour), notAfter: testNow.Add(24 * time.Hour)}, &rootKey.PublicKey, rootKey, nil)
	leaf := issueCert(t, certSpec{cn: "attester", notBefore: testNow.Add(-time.Hour), notAfter: testNow.Add(2 * time.Minute)}, &leafKey.PublicKey, rootKey, root)
	e := newEnv(t, func(e *testEnv, cfg *Config) {
		cfg.Attesters = append(cfg.Attesters, Attester{ID: "pki-att", X5CRoots: []*x509.Certificate{root}, Enabled: true})
	})
	att := signJWT(t, leafKey, map[string]any{"typ": TypAttestation, "alg": "ES256", "x5c": x5cOf(leaf)}, e.attClaims())
	if _, err := e.authenticate(att, e.pop(nil)); err != nil {
		t.Fatalf("first use, leaf valid: %v", err)
	}
	e.clock.Advance(time.Minute) // still valid: served from the cache
	if _, err := e.authenticate(att, e.pop(nil)); err != nil {
		t.Fatalf("second use, leaf valid for another minute: %v", err)
	}
	e.clock.Advance(2 * time.Minute) // the leaf expired a minute ago
	_, err := e.authenticate(att, e.pop(nil))
	checkErr(t, err, ErrX5CChain)
}

// TestOnKeySetFetchReportsOutcomes: a caller hears every jwks_uri fetch's outcome (an operator
// otherwise sees only attestation_unknown_key), a failure with the URL and the cause.
func TestOnKeySetFetchReportsOutcomes(t *testing.T) {
	k1 := testkit.ECKey(t)
	srv := newJWKSServer(t, publicJWK(t, k1, "k1"))
	type report struct {
		url string
		err error
	}
	var mu sync.Mutex
	var reports []report
	e := newEnv(t, func(e *testEnv, cfg *Config) {
		cfg.Attesters = []Attester{
			{ID: "remote", JWKSURI: srv.url("/jwks"), Enabled: true},
			{ID: "gone", JWKSURI: srv.url("/missing"), Enabled: true},
		}
		cfg.OnKeySetFetch = func(url string, err error) {
			mu.Lock()
			defer mu.Unlock()
			reports = append(reports, report{url, err})
		}
	}, withoutCache())
	_, err := e.authenticate(signJWT(t, k1, map[string]any{"typ": TypAttestation, "alg": "ES256", "kid": "k1"}, e.attClaims()), e.pop(nil))
	checkErr(t, err, nil)
	mu.Lock()
	defer mu.Unlock()
	var ok, failed bool
	for _, r := range reports {
		switch {
		case r.url == srv.url("/jwks") && r.err == nil:
			ok = true
		case r.url == srv.url("/missing") && r.err != nil:
			failed = true
		}
	}
	if !ok || !failed {
		t.Fatalf("reports = %+v, want a success for /jwks and a failure for /missing", reports)
	}
}
