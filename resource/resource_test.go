package resource_test

import (
	"crypto/ecdsa"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/dpop"
	"github.com/authz/authz/internal/testkit"
	"github.com/authz/authz/resource"
)

// env is one test's issuer, the verifier's clock and the DPoP client key tokens are bound to.
type env struct {
	iss    *issuer
	clk    *testkit.Clock
	client *ecdsa.PrivateKey
	jkt    string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	client := testkit.ECKey(t)
	return &env{iss: newIssuer(t), clk: testkit.NewClock(testNow()), client: client, jkt: testkit.Thumbprint(t, client)}
}

// token signs a token from e's issuer at the current time; mutate adjusts it first.
func (e *env) token(t *testing.T, mutate func(*tokenSpec)) string {
	t.Helper()
	s := newTokenSpec(e.iss, e.clk.Now())
	if mutate != nil {
		mutate(s)
	}
	return s.sign(t)
}

// boundToken signs a token bound to e's client key; mutate adjusts it after binding.
func (e *env) boundToken(t *testing.T, mutate func(*tokenSpec)) string {
	t.Helper()
	return e.token(t, func(s *tokenSpec) {
		s.bind(e.jkt)
		if mutate != nil {
			mutate(s)
		}
	})
}

// proof signs a proof by e's client key for token; mutate adjusts it first.
func (e *env) proof(t *testing.T, token string, mutate func(*proofSpec)) string {
	t.Helper()
	p := newProofSpec(e.client, token, e.clk.Now())
	if mutate != nil {
		mutate(p)
	}
	return p.sign(t)
}

// bearer is a request presenting a non-bound token with the Bearer scheme.
func (e *env) bearer(t *testing.T, mutate func(*tokenSpec)) *http.Request {
	t.Helper()
	return newRequest("Bearer "+e.token(t, mutate), "")
}

// dpopRequest is a request presenting a bound token with the DPoP scheme and a proof.
func (e *env) dpopRequest(t *testing.T, mutateToken func(*tokenSpec), mutateProof func(*proofSpec)) *http.Request {
	t.Helper()
	tok := e.boundToken(t, mutateToken)
	return newRequest("DPoP "+tok, e.proof(t, tok, mutateProof))
}

// bearerWith is a case's request: a token changed by mutate, presented with the Bearer scheme.
func bearerWith(mutate func(e *env, s *tokenSpec)) func(*testing.T, *env) *http.Request {
	return func(t *testing.T, e *env) *http.Request {
		return e.bearer(t, func(s *tokenSpec) { mutate(e, s) })
	}
}

// proofWith is a case's request: a bound token with the DPoP scheme and a proof changed by mutate.
func proofWith(mutate func(e *env, p *proofSpec)) func(*testing.T, *env) *http.Request {
	return func(t *testing.T, e *env) *http.Request {
		return e.dpopRequest(t, nil, func(p *proofSpec) { mutate(e, p) })
	}
}

// presenting is a case's request: a token minted by mint ((*env).token or (*env).boundToken)
// with scheme and, withProof, a valid proof for it.
func presenting(scheme string, mint func(*env, *testing.T, func(*tokenSpec)) string, withProof bool) func(*testing.T, *env) *http.Request {
	return func(t *testing.T, e *env) *http.Request {
		tok := mint(e, t, nil)
		proof := ""
		if withProof {
			proof = e.proof(t, tok, nil)
		}
		return newRequest(scheme+" "+tok, proof)
	}
}

// withHeaders is a case's request with a fixed Authorization value and, when not empty, DPoP
// header.
func withHeaders(authorization, proof string) func(*testing.T, *env) *http.Request {
	return func(*testing.T, *env) *http.Request { return newRequest(authorization, proof) }
}

func TestVerify(t *testing.T) {
	const audience = "https://rs.example.com"
	withAudience := func(c *resource.Config) { c.Audience = audience }
	tests := []struct {
		name    string
		config  func(*resource.Config)
		request func(t *testing.T, e *env) *http.Request
		wantErr error
		wantJKT bool // the accepted token is DPoP-bound to e.client
	}{
		// Accepted tokens.
		{
			name:    "valid_bearer",
			request: func(t *testing.T, e *env) *http.Request { return e.bearer(t, nil) },
		},
		{name: "valid_bearer_scheme_case_insensitive", request: presenting("bEARER", (*env).token, false)},
		{name: "valid_typ_application_at_jwt", request: bearerWith(func(e *env, s *tokenSpec) { s.typ = "application/at+jwt" })},
		{
			name:    "valid_dpop_bound",
			request: func(t *testing.T, e *env) *http.Request { return e.dpopRequest(t, nil, nil) },
			wantJKT: true,
		},
		{name: "valid_dpop_scheme_case_insensitive", request: presenting("dpop", (*env).boundToken, true), wantJKT: true},
		{
			name: "valid_dpop_query_not_part_of_htu",
			request: func(t *testing.T, e *env) *http.Request {
				r := e.dpopRequest(t, nil, nil)
				r.URL.RawQuery = "page=2"
				return r
			},
			wantJKT: true,
		},
		{name: "valid_dpop_htu_with_default_port", request: proofWith(func(e *env, p *proofSpec) { p.claims["htu"] = "https://RS.example.com:443" + testPath }), wantJKT: true},
		{
			name:    "valid_dpop_base_url_with_trailing_slash",
			config:  func(c *resource.Config) { c.BaseURL = testBaseURL + "/" },
			request: func(t *testing.T, e *env) *http.Request { return e.dpopRequest(t, nil, nil) },
			wantJKT: true,
		},
		{name: "valid_proof_iat_at_edge_of_window", request: proofWith(func(e *env, p *proofSpec) { p.claims["iat"] = e.clk.Now().Add(-89 * time.Second).Unix() }), wantJKT: true},

		// No token: RFC 6750 §3.1, no error code.
		{name: "missing_authorization", request: withHeaders("", ""), wantErr: resource.ErrNoToken},
		{name: "scheme_without_credentials", request: withHeaders("Bearer", ""), wantErr: resource.ErrNoToken},
		{name: "scheme_with_empty_credentials", request: withHeaders("Bearer ", ""), wantErr: resource.ErrNoToken},
		{name: "unknown_scheme_basic", request: withHeaders("Basic dXNlcjpwYXNz", ""), wantErr: resource.ErrNoToken},
		{name: "unknown_scheme_with_valid_token", request: presenting("Token", (*env).token, false), wantErr: resource.ErrNoToken},

		// Token checks (RFC 9068 §4).
		{name: "not_a_jwt", request: withHeaders("Bearer opaque-token-value", ""), wantErr: resource.ErrInvalid},
		{name: "oversized_token", request: bearerWith(func(e *env, s *tokenSpec) { s.claims["scope"] = strings.Repeat("s ", 9<<10) }), wantErr: resource.ErrInvalid},
		{name: "wrong_typ", request: bearerWith(func(e *env, s *tokenSpec) { s.typ = "JWT" }), wantErr: resource.ErrInvalid},
		{name: "missing_typ", request: bearerWith(func(e *env, s *tokenSpec) { s.typ = "" }), wantErr: resource.ErrInvalid},
		{name: "dpop_proof_typ_as_token", request: bearerWith(func(e *env, s *tokenSpec) { s.typ = dpop.Typ }), wantErr: resource.ErrInvalid},
		{name: "wrong_issuer", request: bearerWith(func(e *env, s *tokenSpec) { s.claims["iss"] = "https://evil.example" }), wantErr: resource.ErrInvalid},
		{name: "missing_issuer", request: bearerWith(func(e *env, s *tokenSpec) { delete(s.claims, "iss") }), wantErr: resource.ErrInvalid},
		{name: "expired_beyond_skew", request: bearerWith(func(e *env, s *tokenSpec) { s.claims["exp"] = e.clk.Now().Add(-31 * time.Second).Unix() }), wantErr: resource.ErrInvalid},
		{name: "expired_within_skew", request: bearerWith(func(e *env, s *tokenSpec) { s.claims["exp"] = e.clk.Now().Add(-29 * time.Second).Unix() })},
		{name: "expired_at_skew_boundary", request: bearerWith(func(e *env, s *tokenSpec) { s.claims["exp"] = e.clk.Now().Add(-30 * time.Second).Unix() })},
		{
			name:    "expired_beyond_configured_skew",
			config:  func(c *resource.Config) { c.ClockSkew = 5 * time.Second },
			request: bearerWith(func(e *env, s *tokenSpec) { s.claims["exp"] = e.clk.Now().Add(-6 * time.Second).Unix() }),
			wantErr: resource.ErrInvalid,
		},
		{name: "missing_exp", request: bearerWith(func(e *env, s *tokenSpec) { delete(s.claims, "exp") }), wantErr: resource.ErrInvalid},
		{name: "iat_in_future_beyond_skew", request: bearerWith(func(e *env, s *tokenSpec) { s.claims["iat"] = e.clk.Now().Add(31 * time.Second).Unix() }), wantErr: resource.ErrInvalid},
		{name: "nbf_in_future_beyond_skew", request: bearerWith(func(e *env, s *tokenSpec) { s.claims["nbf"] = e.clk.Now().Add(time.Minute).Unix() }), wantErr: resource.ErrInvalid},
		{name: "exp_not_a_number", request: bearerWith(func(e *env, s *tokenSpec) { s.claims["exp"] = "tomorrow" }), wantErr: resource.ErrInvalid},

		// Signature and key selection.
		{
			name: "bad_signature_other_key_same_kid",
			request: func(t *testing.T, e *env) *http.Request {
				return e.bearer(t, func(s *tokenSpec) { s.key = testkit.ECKey(t) })
			},
			wantErr: resource.ErrInvalid,
		},
		{
			name: "bad_signature_tampered_payload",
			request: func(t *testing.T, e *env) *http.Request {
				good := strings.Split(e.token(t, nil), ".")
				other := strings.Split(e.token(t, func(s *tokenSpec) { s.claims["scope"] = "admin" }), ".")
				return newRequest("Bearer "+good[0]+"."+other[1]+"."+good[2], "")
			},
			wantErr: resource.ErrInvalid,
		},
		{name: "unknown_kid", request: bearerWith(func(e *env, s *tokenSpec) { s.kid = "rotated-away" }), wantErr: resource.ErrInvalid},
		{name: "missing_kid", request: bearerWith(func(e *env, s *tokenSpec) { s.kid = "" }), wantErr: resource.ErrInvalid},
		{
			name: "alg_none",
			request: func(t *testing.T, e *env) *http.Request {
				claims := testkit.MustJSON(t, newTokenSpec(e.iss, e.clk.Now()).claims)
				return newRequest("Bearer "+testkit.CompactJWS([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+issuerKID+`"}`), claims, nil), "")
			},
			wantErr: resource.ErrInvalid,
		},
		{
			name: "alg_hs256_keyed_with_issuer_public_key",
			request: func(t *testing.T, e *env) *http.Request {
				// The classic confusion: an HMAC "signed" with the issuer's public key bytes.
				secret, err := e.iss.key.PublicKey.Bytes()
				if err != nil {
					t.Fatal(err)
				}
				secret = append(secret, secret...) // HS256 wants at least 32 bytes
				raw := testkit.SignJWS(t, jose.JSONWebKey{Key: secret, KeyID: issuerKID}, jose.HS256, "at+jwt", nil, newTokenSpec(e.iss, e.clk.Now()).claims)
				return newRequest("Bearer "+raw, "")
			},
			wantErr: resource.ErrInvalid,
		},

		// Audience (Config.Audience).
		{name: "audience_matches", config: withAudience, request: bearerWith(func(e *env, s *tokenSpec) { s.claims["aud"] = audience })},
		{name: "audience_in_list", config: withAudience, request: bearerWith(func(e *env, s *tokenSpec) { s.claims["aud"] = []string{"https://other.example", audience} })},
		{name: "audience_mismatch", config: withAudience, request: bearerWith(func(e *env, s *tokenSpec) { s.claims["aud"] = "https://other.example" }), wantErr: resource.ErrInvalid},
		{
			name:    "audience_missing",
			request: bearerWith(func(e *env, s *tokenSpec) { delete(s.claims, "aud") }),
			wantErr: resource.ErrInvalid,
		},
		{
			name:   "audience_checked_for_dpop_bound_token",
			config: withAudience,
			request: func(t *testing.T, e *env) *http.Request {
				return e.dpopRequest(t, func(s *tokenSpec) { s.claims["aud"] = "https://other.example" }, nil)
			},
			wantErr: resource.ErrInvalid,
		},

		// Sender constraint (RFC 9449 §7.1, §7.2).
		{name: "bound_token_as_bearer", request: presenting("Bearer", (*env).boundToken, false), wantErr: resource.ErrDPoPNeeded},
		{name: "bound_token_as_bearer_with_proof", request: presenting("Bearer", (*env).boundToken, true), wantErr: resource.ErrDPoPNeeded},
		{name: "unbound_token_with_dpop_scheme", request: presenting("DPoP", (*env).token, false), wantErr: resource.ErrInvalid},
		{name: "unbound_token_with_dpop_scheme_and_proof", request: presenting("DPoP", (*env).token, true), wantErr: resource.ErrInvalid},
		{name: "bound_token_without_proof", request: presenting("DPoP", (*env).boundToken, false), wantErr: resource.ErrDPoP},
		{
			name: "two_dpop_header_lines",
			request: func(t *testing.T, e *env) *http.Request {
				tok := e.boundToken(t, nil)
				r := newRequest("DPoP "+tok, e.proof(t, tok, nil))
				r.Header.Add(dpop.Header, e.proof(t, tok, nil))
				return r
			},
			wantErr: resource.ErrDPoP,
		},
		{
			name:    "dpop_without_base_url",
			config:  func(c *resource.Config) { c.BaseURL = "" },
			request: func(t *testing.T, e *env) *http.Request { return e.dpopRequest(t, nil, nil) },
			wantErr: resource.ErrDPoP,
		},
		{
			name: "proof_by_another_key",
			request: func(t *testing.T, e *env) *http.Request {
				return e.dpopRequest(t, nil, func(p *proofSpec) { p.key = testkit.ECKey(t) })
			},
			wantErr: resource.ErrDPoP,
		},
		{
			name: "token_bound_to_another_key",
			request: func(t *testing.T, e *env) *http.Request {
				return e.dpopRequest(t, func(s *tokenSpec) { s.bind(testkit.Thumbprint(t, testkit.ECKey(t))) }, nil)
			},
			wantErr: resource.ErrDPoP,
		},
		{name: "proof_wrong_htu_path", request: proofWith(func(e *env, p *proofSpec) { p.claims["htu"] = testBaseURL + "/api/other" }), wantErr: resource.ErrDPoP},
		{name: "proof_wrong_htu_origin", request: proofWith(func(e *env, p *proofSpec) { p.claims["htu"] = "https://evil.example" + testPath }), wantErr: resource.ErrDPoP},
		{
			name: "proof_htu_from_host_header_not_trusted",
			request: func(t *testing.T, e *env) *http.Request {
				r := e.dpopRequest(t, nil, func(p *proofSpec) { p.claims["htu"] = "https://evil.example" + testPath })
				r.Host = "evil.example"
				return r
			},
			wantErr: resource.ErrDPoP,
		},
		{name: "proof_wrong_htm", request: proofWith(func(e *env, p *proofSpec) { p.claims["htm"] = http.MethodPost }), wantErr: resource.ErrDPoP},
		{name: "proof_htm_lowercase", request: proofWith(func(e *env, p *proofSpec) { p.claims["htm"] = "get" }), wantErr: resource.ErrDPoP},
		{name: "proof_without_ath", request: proofWith(func(e *env, p *proofSpec) { delete(p.claims, "ath") }), wantErr: resource.ErrDPoP},
		{name: "proof_wrong_ath", request: proofWith(func(e *env, p *proofSpec) { p.claims["ath"] = dpop.AccessTokenHash("another-token") }), wantErr: resource.ErrDPoP},
		{
			name: "proof_for_another_bound_token",
			request: func(t *testing.T, e *env) *http.Request {
				other := e.boundToken(t, func(s *tokenSpec) { s.claims["jti"] = "at-jti-2" })
				return newRequest("DPoP "+e.boundToken(t, nil), e.proof(t, other, nil))
			},
			wantErr: resource.ErrDPoP,
		},
		{name: "proof_iat_too_old", request: proofWith(func(e *env, p *proofSpec) { p.claims["iat"] = e.clk.Now().Add(-91 * time.Second).Unix() }), wantErr: resource.ErrDPoP},
		{name: "proof_iat_in_future", request: proofWith(func(e *env, p *proofSpec) { p.claims["iat"] = e.clk.Now().Add(31 * time.Second).Unix() }), wantErr: resource.ErrDPoP},
		{
			name:    "proof_iat_beyond_configured_proof_age",
			config:  func(c *resource.Config) { c.ProofAge = 10 * time.Second },
			request: proofWith(func(e *env, p *proofSpec) { p.claims["iat"] = e.clk.Now().Add(-41 * time.Second).Unix() }),
			wantErr: resource.ErrDPoP,
		},
		{name: "proof_wrong_typ", request: proofWith(func(e *env, p *proofSpec) { p.typ = "JWT" }), wantErr: resource.ErrDPoP},
		{
			name: "access_token_as_proof",
			request: func(t *testing.T, e *env) *http.Request {
				tok := e.boundToken(t, nil)
				return newRequest("DPoP "+tok, tok)
			},
			wantErr: resource.ErrDPoP,
		},
		{
			name:    "proof_garbage",
			request: func(t *testing.T, e *env) *http.Request { return newRequest("DPoP "+e.boundToken(t, nil), "not a jws") },
			wantErr: resource.ErrDPoP,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			v := newVerifier(t, e.iss, e.clk, tt.config)
			tok, err := v.Verify(tt.request(t, e))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
				}
				if tok != nil {
					t.Fatalf("Verify returned a token with error %v: %+v", err, tok)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			checkToken(t, tok, e.clk.Now())
			wantJKT := ""
			if tt.wantJKT {
				wantJKT = e.jkt
			}
			if tok.JKT != wantJKT {
				t.Errorf("JKT = %q, want %q", tok.JKT, wantJKT)
			}
		})
	}
}

// checkToken asserts the claims newTokenSpec puts in every token.
func checkToken(t *testing.T, tok *resource.Token, now time.Time) {
	t.Helper()
	if tok == nil {
		t.Fatal("nil token without error")
	}
	if tok.Subject != "user-42" || tok.ClientID != "client-7" || tok.JTI != "at-jti-1" {
		t.Errorf("token = %+v, want sub user-42, client_id client-7, jti at-jti-1", tok)
	}
	if !slices.Equal(tok.Scopes, []string{"read", "write"}) {
		t.Errorf("Scopes = %q, want [read write]", tok.Scopes)
	}
	if tok.Expiry.IsZero() || tok.Expiry.After(now.Add(5*time.Minute)) {
		t.Errorf("Expiry = %v, want at most %v", tok.Expiry, now.Add(5*time.Minute))
	}
	if tok.Attestation != nil {
		t.Errorf("Attestation = %+v, want nil for a token without client_attestation", tok.Attestation)
	}
}

func TestVerifyTokenClaims(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.iss, e.clk, nil)
	exp := e.clk.Now().Add(10 * time.Minute).Truncate(time.Second)
	raw := e.boundToken(t, func(s *tokenSpec) {
		s.claims["exp"] = exp.Unix()
		s.claims["scope"] = "  read\twrite  admin:all "
		s.claims["client_attestation"] = map[string]any{
			"attester":     "https://attester.example",
			"instance_jkt": "instance-thumbprint",
			"pop_method":   "dpop",
		}
	})
	tok, err := v.Verify(newRequest("DPoP "+raw, e.proof(t, raw, nil)))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := resource.Token{
		Subject:     "user-42",
		ClientID:    "client-7",
		Scopes:      []string{"read", "write", "admin:all"},
		JTI:         "at-jti-1",
		Expiry:      exp,
		JKT:         e.jkt,
		Attestation: &resource.Attestation{Attester: "https://attester.example", InstanceJKT: "instance-thumbprint", PoPMethod: "dpop"},
	}
	if tok.Subject != want.Subject || tok.ClientID != want.ClientID || tok.JTI != want.JTI || tok.JKT != want.JKT ||
		!tok.Expiry.Equal(want.Expiry) || !slices.Equal(tok.Scopes, want.Scopes) {
		t.Errorf("token = %+v, want %+v", tok, want)
	}
	if tok.Attestation == nil || *tok.Attestation != *want.Attestation {
		t.Errorf("Attestation = %+v, want %+v", tok.Attestation, want.Attestation)
	}
}

func TestHasScope(t *testing.T) {
	tok := &resource.Token{Scopes: []string{"read", "write", "admin:all"}}
	tests := []struct {
		name  string
		scope string
		want  bool
	}{
		{name: "granted_first", scope: "read", want: true},
		{name: "granted_last", scope: "admin:all", want: true},
		{name: "not_granted", scope: "delete"},
		{name: "prefix_of_granted", scope: "rea"},
		{name: "prefix_of_granted_with_colon", scope: "admin"},
		{name: "two_scopes_as_one", scope: "read write"},
		{name: "empty", scope: ""},
		{name: "case_differs", scope: "READ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tok.HasScope(tt.scope); got != tt.want {
				t.Errorf("HasScope(%q) = %v, want %v", tt.scope, got, tt.want)
			}
		})
	}
	if (&resource.Token{}).HasScope("read") {
		t.Error("a token without scopes has scope read")
	}
}

func TestNew(t *testing.T) {
	if _, err := resource.New(resource.Config{Audience: "https://rs.example"}); err == nil {
		t.Error("New without Issuer succeeded")
	}
	// RFC 9068 §4: the resource server MUST check aud, so it must know its own identifier.
	if _, err := resource.New(resource.Config{Issuer: "https://as.example"}); err == nil {
		t.Error("New without Audience succeeded")
	}
	// JWKSURL defaults to Issuer + "/jwks.json", also when Issuer ends in a slash: the issuer
	// serves keys only there.
	e := newEnv(t)
	for _, issuerURL := range []string{e.iss.URL(), e.iss.URL() + "/"} {
		v := newVerifier(t, e.iss, e.clk, func(c *resource.Config) { c.Issuer = issuerURL })
		r := e.bearer(t, func(s *tokenSpec) { s.claims["iss"] = issuerURL })
		if _, err := v.Verify(r); err != nil {
			t.Errorf("issuer %q: Verify: %v", issuerURL, err)
		}
	}
	// An explicit JWKSURL wins.
	v := newVerifier(t, e.iss, e.clk, func(c *resource.Config) {
		c.Issuer = "https://as.example"
		c.JWKSURL = e.iss.URL() + jwksPath
	})
	if _, err := v.Verify(e.bearer(t, func(s *tokenSpec) { s.claims["iss"] = "https://as.example" })); err != nil {
		t.Errorf("explicit JWKSURL: Verify: %v", err)
	}
}

// TestVerifyProofReplay covers RFC 9449 §11.1: a proof jti is accepted once per key while the
// proof could still pass the iat check.
func TestVerifyProofReplay(t *testing.T) {
	tests := []struct {
		name    string
		config  func(*resource.Config)
		advance time.Duration // clock advance before the replay
	}{
		{name: "immediate_replay"},
		{name: "replay_late_in_iat_window", advance: 89 * time.Second},
		{name: "replay_late_in_configured_window", config: func(c *resource.Config) {
			c.ProofAge = 2 * time.Minute
			c.ClockSkew = time.Minute
		}, advance: 179 * time.Second},
		// A negative duration is a misconfiguration; dpop.Verify then falls back to its defaults
		// (60s, 30s), so the replay record must cover that window too.
		{name: "replay_with_negative_proof_age", config: func(c *resource.Config) { c.ProofAge = -time.Second }, advance: 70 * time.Second},
		{name: "replay_with_negative_clock_skew", config: func(c *resource.Config) { c.ClockSkew = -time.Second }, advance: 70 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			v := newVerifier(t, e.iss, e.clk, tt.config)
			tok := e.boundToken(t, func(s *tokenSpec) { s.claims["exp"] = e.clk.Now().Add(time.Hour).Unix() })
			proof := e.proof(t, tok, nil)
			if _, err := v.Verify(newRequest("DPoP "+tok, proof)); err != nil {
				t.Fatalf("first use: %v", err)
			}
			e.clk.Advance(tt.advance)
			if _, err := v.Verify(newRequest("DPoP "+tok, proof)); !errors.Is(err, resource.ErrDPoP) {
				t.Fatalf("replay after %v: error = %v, want %v", tt.advance, err, resource.ErrDPoP)
			}
			// A fresh proof from the same key is still accepted.
			if _, err := v.Verify(newRequest("DPoP "+tok, e.proof(t, tok, nil))); err != nil {
				t.Fatalf("fresh proof: %v", err)
			}
		})
	}
}

func TestVerifyProofJTIScopedToKey(t *testing.T) {
	// RFC 9449 §11.1: jti is unique per key, so another key may use the same value.
	e := newEnv(t)
	v := newVerifier(t, e.iss, e.clk, nil)
	tok := e.boundToken(t, nil)
	if _, err := v.Verify(newRequest("DPoP "+tok, e.proof(t, tok, func(p *proofSpec) { p.claims["jti"] = "shared" }))); err != nil {
		t.Fatalf("first key: %v", err)
	}
	other := testkit.ECKey(t)
	tok2 := e.token(t, func(s *tokenSpec) { s.bind(testkit.Thumbprint(t, other)) })
	p := newProofSpec(other, tok2, e.clk.Now())
	p.claims["jti"] = "shared"
	if _, err := v.Verify(newRequest("DPoP "+tok2, p.sign(t))); err != nil {
		t.Fatalf("second key, same jti: %v", err)
	}
}

func TestVerifyProofReplayConcurrent(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.iss, e.clk, nil)
	tok := e.boundToken(t, nil)
	proof := e.proof(t, tok, nil)
	const n = 16
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted int
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			_, err := v.Verify(newRequest("DPoP "+tok, proof))
			switch {
			case err == nil:
				mu.Lock()
				accepted++
				mu.Unlock()
			case !errors.Is(err, resource.ErrDPoP):
				t.Errorf("Verify error = %v, want nil or %v", err, resource.ErrDPoP)
			}
		})
	}
	close(start)
	wg.Wait()
	if accepted != 1 {
		t.Fatalf("the same proof was accepted %d times, want once", accepted)
	}
}

// TestVerifyDPoPEscapedPath covers RFC 9449 §4.3 step 9: htu is the request's target URI, so
// the path is compared as sent, with its percent-encoding, not as decoded by net/url.
func TestVerifyDPoPEscapedPath(t *testing.T) {
	const sentPath = "/files/a%2Fb"
	tests := []struct {
		name    string
		htuPath string
		wantErr error
	}{
		{name: "htu_matches_escaped_path", htuPath: sentPath},
		{name: "htu_of_decoded_path_refused", htuPath: "/files/a/b", wantErr: resource.ErrDPoP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			v := newVerifier(t, e.iss, e.clk, nil)
			tok := e.boundToken(t, nil)
			r := httptest.NewRequest(testMethod, testBaseURL+sentPath, nil)
			r.Header.Set("Authorization", "DPoP "+tok)
			r.Header.Set(dpop.Header, e.proof(t, tok, func(p *proofSpec) { p.claims["htu"] = testBaseURL + tt.htuPath }))
			_, err := v.Verify(r)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
