package dpop_test

import (
	"crypto"
	"crypto/elliptic"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/dpop"
	"github.com/authz/authz/internal/testkit"
)

// TestVerify_valid runs accepted proofs through Verify and checks what it returns.
func TestVerify_valid(t *testing.T) {
	ec256 := testkit.ECKey(t)
	ec384 := testkit.ECKeyOn(t, elliptic.P384())
	ec521 := testkit.ECKeyOn(t, elliptic.P521())
	rsa2048 := testkit.RSAKey(t, 2048)
	ed := testkit.Ed25519Key(t)

	tests := []struct {
		name   string
		alg    string
		key    crypto.Signer
		mutate func(p *proofSpec)
		exp    func(e *dpop.Expect)
		cfg    func(c *dpop.Config)
		check  func(t *testing.T, p *dpop.Proof)
	}{
		{name: "es256", alg: "ES256", key: ec256},
		{name: "es384", alg: "ES384", key: ec384},
		{name: "es512", alg: "ES512", key: ec521},
		{name: "rs256", alg: "RS256", key: rsa2048},
		{name: "ps256", alg: "PS256", key: rsa2048},
		{name: "ps512", alg: "PS512", key: rsa2048},
		{name: "eddsa", alg: "EdDSA", key: ed},
		{name: "rs384_when_allowed", alg: "RS384", key: rsa2048, cfg: func(c *dpop.Config) { c.Algorithms = []string{"RS384"} }},
		{name: "typ_application_prefix", alg: "ES256", key: ec256, mutate: func(p *proofSpec) { p.header["typ"] = "application/dpop+jwt" }},
		{name: "typ_other_case", alg: "ES256", key: ec256, mutate: func(p *proofSpec) { p.header["typ"] = "DPoP+JWT" }},
		{name: "jwk_with_kid_use_and_matching_alg", alg: "ES256", key: ec256, mutate: func(p *proofSpec) {
			jwk := p.header["jwk"].(map[string]any)
			jwk["kid"], jwk["use"], jwk["alg"] = "k1", "sig", "ES256"
		}},
		{name: "htu_query_and_fragment_ignored", alg: "ES256", key: ec256, mutate: func(p *proofSpec) { p.claims["htu"] = testURL + "?a=b#frag" }},
		{name: "htu_explicit_default_port", alg: "ES256", key: ec256, mutate: func(p *proofSpec) { p.claims["htu"] = "https://as.example.com:443/oauth2/token" }},
		{name: "htu_case_of_scheme_and_host", alg: "ES256", key: ec256, mutate: func(p *proofSpec) { p.claims["htu"] = "HTTPS://AS.Example.COM/oauth2/token" }},
		{name: "htu_percent_encoded_unreserved", alg: "ES256", key: ec256, mutate: func(p *proofSpec) { p.claims["htu"] = "https://as.example.com/oauth2/%74oken" }},
		{name: "htu_expected_with_port", alg: "ES256", key: ec256,
			mutate: func(p *proofSpec) { p.claims["htu"] = "http://127.0.0.1:8080/oauth2/token" },
			exp:    func(e *dpop.Expect) { e.URL = "http://127.0.0.1:8080/oauth2/token" }},
		{name: "iat_oldest_accepted", alg: "ES256", key: ec256, mutate: func(p *proofSpec) { p.claims["iat"] = testNow().Add(-90 * time.Second).Unix() }},
		{name: "iat_within_future_skew", alg: "ES256", key: ec256, mutate: func(p *proofSpec) { p.claims["iat"] = testNow().Add(30 * time.Second).Unix() }},
		{name: "iat_fractional", alg: "ES256", key: ec256, mutate: func(p *proofSpec) { p.claims["iat"] = float64(testNow().Unix()) + 0.5 },
			check: func(t *testing.T, p *dpop.Proof) {
				if want := testNow().Add(500 * time.Millisecond); !p.IssuedAt.Equal(want) {
					t.Errorf("IssuedAt = %v, want %v", p.IssuedAt, want)
				}
			}},
		{name: "iat_custom_window", alg: "ES256", key: ec256,
			mutate: func(p *proofSpec) { p.claims["iat"] = testNow().Add(-5 * time.Minute).Unix() },
			cfg:    func(c *dpop.Config) { c.MaxAge = 5 * time.Minute }},
		{name: "iat_at_max_age_without_skew", alg: "ES256", key: ec256,
			mutate: func(p *proofSpec) { p.claims["iat"] = testNow().Add(-60 * time.Second).Unix() },
			cfg:    func(c *dpop.Config) { c.ClockSkew = dpop.Skew(0) }},
		{name: "nonce_returned", alg: "ES256", key: ec256, mutate: func(p *proofSpec) { p.claims["nonce"] = "n-0S6_WzA2Mj" },
			check: func(t *testing.T, p *dpop.Proof) {
				if p.Nonce != "n-0S6_WzA2Mj" {
					t.Errorf("Nonce = %q", p.Nonce)
				}
			}},
		{name: "ath_with_access_token", alg: "ES256", key: ec256,
			mutate: func(p *proofSpec) { p.claims["ath"] = dpop.AccessTokenHash("at-123"); p.claims["htm"] = "GET" },
			exp:    func(e *dpop.Expect) { e.AccessToken = "at-123"; e.Method = "GET" }},
		{name: "ath_ignored_without_access_token", alg: "ES256", key: ec256, mutate: func(p *proofSpec) { p.claims["ath"] = "whatever" }},
		{name: "unknown_claims_and_header_members_ignored", alg: "ES256", key: ec256, mutate: func(p *proofSpec) {
			p.claims["ext"] = map[string]any{"a": []any{1, 2}}
			p.header["kid"] = "ignored"
		}},
		{name: "jti_of_256_bytes", alg: "ES256", key: ec256, mutate: func(p *proofSpec) { p.claims["jti"] = strings.Repeat("j", 256) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := newProofSpec(t, tt.alg, tt.key)
			if tt.mutate != nil {
				tt.mutate(spec)
			}
			exp, cfg := testExpect(), testConfig()
			if tt.exp != nil {
				tt.exp(&exp)
			}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			got, err := dpop.Verify(spec.sign(t), exp, cfg)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if want := referenceThumbprint(t, tt.key.Public()); got.JKT != want {
				t.Errorf("JKT = %q, want %q", got.JKT, want)
			}
			if !got.JWK.IsPublic() {
				t.Errorf("JWK is not public")
			}
			if got.JTI != spec.claims["jti"] || got.HTM != spec.claims["htm"] || got.HTU != spec.claims["htu"] {
				t.Errorf("claims = %q %q %q, want %v %v %v", got.JTI, got.HTM, got.HTU, spec.claims["jti"], spec.claims["htm"], spec.claims["htu"])
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

// TestVerify_invalid covers every way RFC 9449 §4.3 (and profile §3) rejects a proof.
func TestVerify_invalid(t *testing.T) {
	ec256 := testkit.ECKey(t)
	other256 := testkit.ECKey(t)
	ec384 := testkit.ECKeyOn(t, elliptic.P384())
	rsa2048 := testkit.RSAKey(t, 2048)
	rsa1024 := testkit.RSAKey(t, 1024)
	ed := testkit.Ed25519Key(t)
	b64 := base64.RawURLEncoding.EncodeToString
	validHeader := func(t *testing.T) string {
		return `{"typ":"dpop+jwt","alg":"ES256","jwk":` + string(testkit.MustJSON(t, jwkMap(t, ec256.Public()))) + `}`
	}

	tests := []struct {
		name    string
		alg     string
		key     crypto.Signer
		mutate  func(t *testing.T, p *proofSpec)
		proof   func(t *testing.T, valid string) string // rewrites the signed proof
		exp     func(e *dpop.Expect)
		cfg     func(c *dpop.Config)
		wantErr error
	}{
		// RFC 9449 §4.3 step 2: a single well-formed JWT.
		{name: "two_segments", proof: func(t *testing.T, v string) string { return v[:strings.LastIndexByte(v, '.')] }, wantErr: dpop.ErrMalformed},
		{name: "four_segments", proof: func(t *testing.T, v string) string { return v + ".x" }, wantErr: dpop.ErrMalformed},
		{name: "empty_signature_alg_none", proof: func(t *testing.T, v string) string {
			return b64([]byte(`{"typ":"dpop+jwt","alg":"none"}`)) + "." + strings.Split(v, ".")[1] + "."
		}, wantErr: dpop.ErrMalformed},
		{name: "json_serialization", proof: func(t *testing.T, v string) string {
			s := strings.Split(v, ".")
			return `{"protected":"` + s[0] + `","payload":"` + s[1] + `","signature":"` + s[2] + `"}`
		}, wantErr: dpop.ErrMalformed},
		{name: "padded_base64", proof: func(t *testing.T, v string) string { return strings.Replace(v, ".", "=.", 1) }, wantErr: dpop.ErrMalformed},
		{name: "whitespace_inside", proof: func(t *testing.T, v string) string { return v[:10] + " " + v[10:] }, wantErr: dpop.ErrMalformed},
		{name: "header_not_json", mutate: func(t *testing.T, p *proofSpec) { p.rawHeader = "not json" }, wantErr: dpop.ErrMalformed},
		{name: "header_json_array", mutate: func(t *testing.T, p *proofSpec) { p.rawHeader = `["typ"]` }, wantErr: dpop.ErrMalformed},
		{name: "header_trailing_data", mutate: func(t *testing.T, p *proofSpec) { p.rawHeader = validHeader(t) + `{}` }, wantErr: dpop.ErrMalformed},
		{name: "payload_not_object", mutate: func(t *testing.T, p *proofSpec) { p.rawPayload = `["jti"]` }, wantErr: dpop.ErrMalformed},
		{name: "payload_nested_too_deep", mutate: func(t *testing.T, p *proofSpec) {
			p.rawPayload = `{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`
		}, wantErr: dpop.ErrMalformed},
		{name: "duplicate_header_member", mutate: func(t *testing.T, p *proofSpec) {
			p.rawHeader = `{"typ":"dpop+jwt","alg":"ES256","alg":"ES256","jwk":` + string(testkit.MustJSON(t, jwkMap(t, ec256.Public()))) + `}`
		}, wantErr: dpop.ErrDuplicateMember},
		{name: "duplicate_header_member_escaped", mutate: func(t *testing.T, p *proofSpec) {
			p.rawHeader = `{"typ":"dpop+jwt","t\u0079p":"jwt","alg":"ES256","jwk":` + string(testkit.MustJSON(t, jwkMap(t, ec256.Public()))) + `}`
		}, wantErr: dpop.ErrDuplicateMember},
		{name: "duplicate_jwk_member", mutate: func(t *testing.T, p *proofSpec) {
			jwk := string(testkit.MustJSON(t, jwkMap(t, ec256.Public())))
			p.rawHeader = `{"typ":"dpop+jwt","alg":"ES256","jwk":` + jwk[:len(jwk)-1] + `,"kty":"EC"}}`
		}, wantErr: dpop.ErrDuplicateMember},
		{name: "duplicate_claim", mutate: func(t *testing.T, p *proofSpec) {
			p.rawPayload = `{"jti":"a","jti":"b","htm":"POST","htu":"` + testURL + `","iat":` + itoa(testNow().Unix()) + `}`
		}, wantErr: dpop.ErrDuplicateMember},
		// RFC 7515 §4.1.11.
		{name: "crit_present", mutate: func(t *testing.T, p *proofSpec) { p.header["crit"] = []string{"exp"}; p.header["exp"] = 1 }, wantErr: dpop.ErrCrit},
		{name: "crit_b64", mutate: func(t *testing.T, p *proofSpec) { p.header["crit"] = []string{"b64"}; p.header["b64"] = false }, wantErr: dpop.ErrCrit},
		// Step 4: typ.
		{name: "wrong_typ", mutate: func(t *testing.T, p *proofSpec) { p.header["typ"] = "JWT" }, wantErr: dpop.ErrTyp},
		{name: "missing_typ", mutate: func(t *testing.T, p *proofSpec) { delete(p.header, "typ") }, wantErr: dpop.ErrTyp},
		{name: "typ_not_string", mutate: func(t *testing.T, p *proofSpec) { p.header["typ"] = 1 }, wantErr: dpop.ErrTyp},
		{name: "typ_with_suffix", mutate: func(t *testing.T, p *proofSpec) { p.header["typ"] = "dpop+jwt2" }, wantErr: dpop.ErrTyp},
		// Step 5: alg.
		{name: "alg_none", mutate: func(t *testing.T, p *proofSpec) { p.header["alg"] = "none"; p.signAlg = "none" }, wantErr: dpop.ErrAlg},
		{name: "alg_hs256", mutate: func(t *testing.T, p *proofSpec) { p.header["alg"] = "HS256"; p.signAlg = "HS256" }, wantErr: dpop.ErrAlg},
		{name: "alg_hs256_even_if_configured", mutate: func(t *testing.T, p *proofSpec) { p.header["alg"] = "HS256"; p.signAlg = "HS256" },
			cfg: func(c *dpop.Config) { c.Algorithms = []string{"HS256", "ES256"} }, wantErr: dpop.ErrAlg},
		{name: "alg_missing", mutate: func(t *testing.T, p *proofSpec) { delete(p.header, "alg") }, wantErr: dpop.ErrAlg},
		{name: "alg_unregistered", mutate: func(t *testing.T, p *proofSpec) { p.header["alg"] = "ES256K" }, wantErr: dpop.ErrAlg},
		{name: "alg_lowercase", mutate: func(t *testing.T, p *proofSpec) { p.header["alg"] = "es256" }, wantErr: dpop.ErrAlg},
		{name: "alg_not_in_allow_list", cfg: func(c *dpop.Config) { c.Algorithms = []string{"ES384", "EdDSA"} }, wantErr: dpop.ErrAlg},
		{name: "alg_rs512_not_in_default_list", alg: "RS512", key: rsa2048, wantErr: dpop.ErrAlg},
		{name: "alg_es384_with_p256_key", mutate: func(t *testing.T, p *proofSpec) { p.header["alg"] = "ES384" }, wantErr: dpop.ErrAlg},
		{name: "alg_es256_with_p384_key", alg: "ES384", key: ec384, mutate: func(t *testing.T, p *proofSpec) { p.header["alg"] = "ES256" }, wantErr: dpop.ErrAlg},
		{name: "alg_rs256_with_ec_key", mutate: func(t *testing.T, p *proofSpec) { p.header["alg"] = "RS256" }, wantErr: dpop.ErrAlg},
		{name: "alg_eddsa_with_rsa_key", alg: "RS256", key: rsa2048, mutate: func(t *testing.T, p *proofSpec) { p.header["alg"] = "EdDSA" }, wantErr: dpop.ErrAlg},
		{name: "alg_es256_with_ed25519_key", alg: "EdDSA", key: ed, mutate: func(t *testing.T, p *proofSpec) { p.header["alg"] = "ES256" }, wantErr: dpop.ErrAlg},
		{name: "alg_differs_from_jwk_alg", mutate: func(t *testing.T, p *proofSpec) { p.header["jwk"].(map[string]any)["alg"] = "ES384" }, wantErr: dpop.ErrAlg},
		// Step 7 (checked before step 6): jwk.
		{name: "missing_jwk", mutate: func(t *testing.T, p *proofSpec) { delete(p.header, "jwk") }, wantErr: dpop.ErrJWK},
		{name: "jwk_null", mutate: func(t *testing.T, p *proofSpec) { p.header["jwk"] = nil }, wantErr: dpop.ErrJWK},
		{name: "jwk_string", mutate: func(t *testing.T, p *proofSpec) { p.header["jwk"] = "key" }, wantErr: dpop.ErrJWK},
		{name: "private_ec_jwk", mutate: func(t *testing.T, p *proofSpec) { p.header["jwk"] = jwkMap(t, ec256) }, wantErr: dpop.ErrJWK},
		{name: "private_rsa_jwk", alg: "RS256", key: rsa2048, mutate: func(t *testing.T, p *proofSpec) { p.header["jwk"] = jwkMap(t, rsa2048) }, wantErr: dpop.ErrJWK},
		{name: "private_ed25519_jwk", alg: "EdDSA", key: ed, mutate: func(t *testing.T, p *proofSpec) { p.header["jwk"] = jwkMap(t, ed) }, wantErr: dpop.ErrJWK},
		{name: "jwk_with_empty_d", mutate: func(t *testing.T, p *proofSpec) { p.header["jwk"].(map[string]any)["d"] = "" }, wantErr: dpop.ErrJWK},
		{name: "jwk_with_oth", alg: "RS256", key: rsa2048, mutate: func(t *testing.T, p *proofSpec) { p.header["jwk"].(map[string]any)["oth"] = []any{} }, wantErr: dpop.ErrJWK},
		{name: "symmetric_jwk", mutate: func(t *testing.T, p *proofSpec) {
			p.header["jwk"] = map[string]any{"kty": "oct", "k": b64([]byte("a-shared-secret-of-thirty-two-bytes!"))}
		}, wantErr: dpop.ErrJWK},
		{name: "symmetric_jwk_without_k", mutate: func(t *testing.T, p *proofSpec) { p.header["jwk"] = map[string]any{"kty": "oct"} }, wantErr: dpop.ErrJWK},
		{name: "jwk_unknown_kty", mutate: func(t *testing.T, p *proofSpec) { p.header["jwk"].(map[string]any)["kty"] = "XYZ" }, wantErr: dpop.ErrJWK},
		{name: "jwk_missing_kty", mutate: func(t *testing.T, p *proofSpec) { delete(p.header["jwk"].(map[string]any), "kty") }, wantErr: dpop.ErrJWK},
		{name: "jwk_point_not_on_curve", mutate: func(t *testing.T, p *proofSpec) {
			jwk := p.header["jwk"].(map[string]any)
			jwk["y"] = jwk["x"]
		}, wantErr: dpop.ErrJWK},
		{name: "jwk_use_enc", mutate: func(t *testing.T, p *proofSpec) { p.header["jwk"].(map[string]any)["use"] = "enc" }, wantErr: dpop.ErrJWK},
		{name: "jwk_rsa_1024_bits", alg: "RS256", key: rsa1024, wantErr: dpop.ErrJWK},
		// Step 6: signature.
		{name: "signed_by_another_key", mutate: func(t *testing.T, p *proofSpec) { p.key = other256 }, wantErr: dpop.ErrSignature},
		{name: "payload_tampered", proof: func(t *testing.T, v string) string {
			s := strings.Split(v, ".")
			return s[0] + "." + b64([]byte(`{"jti":"x","htm":"GET","htu":"`+testURL+`","iat":`+itoa(testNow().Unix())+`}`)) + "." + s[2]
		}, wantErr: dpop.ErrSignature},
		{name: "signature_truncated", proof: func(t *testing.T, v string) string { return v[:len(v)-4] }, wantErr: dpop.ErrSignature},
		{name: "ps256_signature_as_rs256", alg: "PS256", key: rsa2048, mutate: func(t *testing.T, p *proofSpec) { p.header["alg"] = "RS256" }, wantErr: dpop.ErrSignature},
		// Step 3: required claims.
		{name: "missing_jti", mutate: func(t *testing.T, p *proofSpec) { delete(p.claims, "jti") }, wantErr: dpop.ErrClaims},
		{name: "empty_jti", mutate: func(t *testing.T, p *proofSpec) { p.claims["jti"] = "" }, wantErr: dpop.ErrClaims},
		{name: "jti_number", mutate: func(t *testing.T, p *proofSpec) { p.claims["jti"] = 7 }, wantErr: dpop.ErrClaims},
		{name: "jti_too_long", mutate: func(t *testing.T, p *proofSpec) { p.claims["jti"] = strings.Repeat("j", 257) }, wantErr: dpop.ErrClaims},
		{name: "missing_htm", mutate: func(t *testing.T, p *proofSpec) { delete(p.claims, "htm") }, wantErr: dpop.ErrClaims},
		{name: "htm_null", mutate: func(t *testing.T, p *proofSpec) { p.claims["htm"] = nil }, wantErr: dpop.ErrClaims},
		{name: "missing_htu", mutate: func(t *testing.T, p *proofSpec) { delete(p.claims, "htu") }, wantErr: dpop.ErrClaims},
		{name: "htu_array", mutate: func(t *testing.T, p *proofSpec) { p.claims["htu"] = []string{testURL} }, wantErr: dpop.ErrClaims},
		{name: "missing_iat", mutate: func(t *testing.T, p *proofSpec) { delete(p.claims, "iat") }, wantErr: dpop.ErrClaims},
		{name: "iat_string", mutate: func(t *testing.T, p *proofSpec) { p.claims["iat"] = itoa(testNow().Unix()) }, wantErr: dpop.ErrClaims},
		{name: "iat_bool", mutate: func(t *testing.T, p *proofSpec) { p.claims["iat"] = true }, wantErr: dpop.ErrClaims},
		{name: "nonce_number", mutate: func(t *testing.T, p *proofSpec) { p.claims["nonce"] = 1 }, wantErr: dpop.ErrClaims},
		{name: "ath_number", mutate: func(t *testing.T, p *proofSpec) { p.claims["ath"] = 1 }, wantErr: dpop.ErrClaims},
		// Step 8: htm.
		{name: "htm_mismatch", mutate: func(t *testing.T, p *proofSpec) { p.claims["htm"] = "GET" }, wantErr: dpop.ErrHTM},
		{name: "htm_lowercase", mutate: func(t *testing.T, p *proofSpec) { p.claims["htm"] = "post" }, wantErr: dpop.ErrHTM},
		{name: "htm_expected_empty", exp: func(e *dpop.Expect) { e.Method = "" }, wantErr: dpop.ErrHTM},
		// Step 9: htu.
		{name: "htu_other_host", mutate: func(t *testing.T, p *proofSpec) { p.claims["htu"] = "https://evil.example.com/oauth2/token" }, wantErr: dpop.ErrHTU},
		{name: "htu_other_path", mutate: func(t *testing.T, p *proofSpec) { p.claims["htu"] = "https://as.example.com/oauth2/par" }, wantErr: dpop.ErrHTU},
		{name: "htu_trailing_slash", mutate: func(t *testing.T, p *proofSpec) { p.claims["htu"] = testURL + "/" }, wantErr: dpop.ErrHTU},
		{name: "htu_path_case", mutate: func(t *testing.T, p *proofSpec) { p.claims["htu"] = "https://as.example.com/OAuth2/token" }, wantErr: dpop.ErrHTU},
		{name: "htu_http_instead_of_https", mutate: func(t *testing.T, p *proofSpec) { p.claims["htu"] = "http://as.example.com/oauth2/token" }, wantErr: dpop.ErrHTU},
		{name: "htu_other_port", mutate: func(t *testing.T, p *proofSpec) { p.claims["htu"] = "https://as.example.com:8443/oauth2/token" }, wantErr: dpop.ErrHTU},
		{name: "htu_relative", mutate: func(t *testing.T, p *proofSpec) { p.claims["htu"] = "/oauth2/token" }, wantErr: dpop.ErrHTU},
		{name: "htu_userinfo", mutate: func(t *testing.T, p *proofSpec) { p.claims["htu"] = "https://u@as.example.com/oauth2/token" }, wantErr: dpop.ErrHTU},
		{name: "htu_encoded_slash", mutate: func(t *testing.T, p *proofSpec) { p.claims["htu"] = "https://as.example.com/oauth2%2Ftoken" }, wantErr: dpop.ErrHTU},
		{name: "htu_expected_unusable", exp: func(e *dpop.Expect) { e.URL = "" }, wantErr: dpop.ErrHTU},
		// Step 11: iat window.
		{name: "iat_too_old", mutate: func(t *testing.T, p *proofSpec) { p.claims["iat"] = testNow().Add(-91 * time.Second).Unix() }, wantErr: dpop.ErrIAT},
		{name: "iat_in_future", mutate: func(t *testing.T, p *proofSpec) { p.claims["iat"] = testNow().Add(31 * time.Second).Unix() }, wantErr: dpop.ErrIAT},
		{name: "iat_negative", mutate: func(t *testing.T, p *proofSpec) { p.claims["iat"] = -1 }, wantErr: dpop.ErrIAT},
		{name: "iat_huge", mutate: func(t *testing.T, p *proofSpec) { p.claims["iat"] = 1e300 }, wantErr: dpop.ErrIAT},
		{name: "iat_too_old_for_short_window", mutate: func(t *testing.T, p *proofSpec) { p.claims["iat"] = testNow().Add(-20 * time.Second).Unix() },
			cfg: func(c *dpop.Config) { c.MaxAge, c.ClockSkew = 10*time.Second, 5*time.Second }, wantErr: dpop.ErrIAT},
		// A configured clock_skew of 0 is none (Skew), not the 30 s default of the zero value.
		{name: "iat_past_max_age_without_skew", mutate: func(t *testing.T, p *proofSpec) { p.claims["iat"] = testNow().Add(-61 * time.Second).Unix() },
			cfg: func(c *dpop.Config) { c.ClockSkew = dpop.Skew(0) }, wantErr: dpop.ErrIAT},
		{name: "iat_in_future_without_skew", mutate: func(t *testing.T, p *proofSpec) { p.claims["iat"] = testNow().Add(time.Second).Unix() },
			cfg: func(c *dpop.Config) { c.ClockSkew = dpop.NoClockSkew }, wantErr: dpop.ErrIAT},
		// Step 12: ath.
		{name: "ath_missing_with_access_token", exp: func(e *dpop.Expect) { e.AccessToken = "at-123" }, wantErr: dpop.ErrATH},
		{name: "ath_wrong", mutate: func(t *testing.T, p *proofSpec) { p.claims["ath"] = dpop.AccessTokenHash("another-token") },
			exp: func(e *dpop.Expect) { e.AccessToken = "at-123" }, wantErr: dpop.ErrATH},
		{name: "ath_padded", mutate: func(t *testing.T, p *proofSpec) { p.claims["ath"] = dpop.AccessTokenHash("at-123") + "=" },
			exp: func(e *dpop.Expect) { e.AccessToken = "at-123" }, wantErr: dpop.ErrATH},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alg, key := tt.alg, tt.key
			if key == nil {
				alg, key = "ES256", ec256
			}
			spec := newProofSpec(t, alg, key)
			if tt.mutate != nil {
				tt.mutate(t, spec)
			}
			proof := spec.sign(t)
			if tt.proof != nil {
				proof = tt.proof(t, proof)
			}
			exp, cfg := testExpect(), testConfig()
			if tt.exp != nil {
				tt.exp(&exp)
			}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			got, err := dpop.Verify(proof, exp, cfg)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
			if !errors.Is(err, dpop.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if got != nil {
				t.Errorf("Verify returned a proof with an error")
			}
		})
	}
}

func TestVerify_too_large(t *testing.T) {
	key := testkit.ECKey(t)
	tests := []struct {
		name     string
		jtiLen   int
		maxBytes int
		wantErr  error
	}{
		{name: "over_default_16_kib", jtiLen: 17 << 10, wantErr: dpop.ErrTooLarge},
		{name: "over_configured_limit", jtiLen: 10, maxBytes: 100, wantErr: dpop.ErrTooLarge},
		{name: "under_configured_limit_then_claims_checked", jtiLen: 300, maxBytes: 4096, wantErr: dpop.ErrClaims},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := newProofSpec(t, "ES256", key)
			spec.claims["jti"] = strings.Repeat("a", tt.jtiLen)
			cfg := testConfig()
			cfg.MaxBytes = tt.maxBytes
			_, err := dpop.Verify(spec.sign(t), testExpect(), cfg)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(tt.wantErr, dpop.ErrTooLarge) && errors.Is(err, dpop.ErrInvalid) {
				t.Errorf("ErrTooLarge must not wrap ErrInvalid (it is invalid_request, profile §3)")
			}
		})
	}
}

// TestVerify_go_jose_signer checks interoperability with a proof built by go-jose's own signer,
// as a client library would build it.
func TestVerify_go_jose_signer(t *testing.T) {
	key := testkit.ECKey(t)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(dpop.Typ))
	if err != nil {
		t.Fatal(err)
	}
	payload := `{"jti":"-BwC3ESc6acc2lTc","htm":"POST","htu":"` + testURL + `","iat":` + itoa(testNow().Unix()) + `}`
	jws, err := signer.Sign([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	proof, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	got, err := dpop.Verify(proof, testExpect(), testConfig())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want, err := dpop.Thumbprint(&jose.JSONWebKey{Key: key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	if got.JKT != want {
		t.Errorf("JKT = %q, want %q", got.JKT, want)
	}
}

// TestVerify_default_clock covers Config{} (time.Now and every default).
func TestVerify_default_clock(t *testing.T) {
	spec := newProofSpec(t, "ES256", testkit.ECKey(t))
	spec.claims["iat"] = time.Now().Unix()
	if _, err := dpop.Verify(spec.sign(t), testExpect(), dpop.Config{}); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestThumbprint(t *testing.T) {
	// RFC 7638 §3.1 example key and its thumbprint.
	const rfc7638 = `{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`
	var rsaKey jose.JSONWebKey
	if err := rsaKey.UnmarshalJSON([]byte(rfc7638)); err != nil {
		t.Fatal(err)
	}
	ec := testkit.ECKey(t)
	tests := []struct {
		name    string
		key     *jose.JSONWebKey
		want    string
		wantErr error
	}{
		{name: "rfc7638_example", key: &rsaKey, want: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
		{name: "ec_public", key: &jose.JSONWebKey{Key: ec.Public()}, want: referenceThumbprint(t, ec.Public())},
		{name: "ec_private_uses_public_part", key: &jose.JSONWebKey{Key: ec}, want: referenceThumbprint(t, ec.Public())},
		{name: "nil_key", key: nil, wantErr: dpop.ErrNoKey},
		{name: "empty_key", key: &jose.JSONWebKey{}, wantErr: dpop.ErrNoKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dpop.Thumbprint(tt.key)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Thumbprint error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Thumbprint = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAccessTokenHash(t *testing.T) {
	tests := []struct {
		name, token, want string
	}{
		// RFC 9449 §7.1 example (the access token of Figure 12 and the ath of Figure 13).
		{name: "rfc9449_example", token: "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU", want: "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"},
		{name: "empty", token: "", want: "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := dpop.AccessTokenHash(tt.token); got != tt.want {
				t.Errorf("AccessTokenHash(%q) = %q, want %q", tt.token, got, tt.want)
			}
		})
	}
}

func TestDefaultAlgorithms(t *testing.T) {
	got := dpop.DefaultAlgorithms()
	want := []string{"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA", "RS256"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("DefaultAlgorithms = %v, want %v", got, want)
	}
	got[0] = "none"
	if dpop.DefaultAlgorithms()[0] != "ES256" {
		t.Fatalf("DefaultAlgorithms returned shared storage")
	}
}

func BenchmarkVerify(b *testing.B) {
	spec := newProofSpec(b, "ES256", testkit.ECKey(b))
	proof := spec.sign(b)
	exp, cfg := testExpect(), testConfig()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dpop.Verify(proof, exp, cfg); err != nil {
			b.Fatal(err)
		}
	}
}
