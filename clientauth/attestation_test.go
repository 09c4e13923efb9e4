package clientauth

import (
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/internal/testkit"
)

func TestAttestationTyp(t *testing.T) {
	e := newEnv(t, nil)
	e.checkAttestations(t, []mutationCase{
		{"exact", withTyp(TypAttestation), nil},
		{"upper_case", withTyp(strings.ToUpper(TypAttestation)), nil},
		{"application_prefix", withTyp("application/" + TypAttestation), nil},
		{"mixed_case_application_prefix", withTyp("Application/OAuth-Client-Attestation+JWT"), nil},
		{"missing", withTyp(nil), ErrAttestationTyp},
		{"plain_jwt", withTyp("JWT"), ErrAttestationTyp},
		{"pop_typ", withTyp(TypPoP), ErrAttestationTyp},
		{"dpop_typ", withTyp("dpop+jwt"), ErrAttestationTyp},
		{"prefix_only", withTyp("application/"), ErrAttestationTyp},
		{"double_prefix", withTyp("application/application/" + TypAttestation), ErrAttestationTyp},
		{"not_a_string", withTyp(7), ErrAttestationTyp},
		{"trailing_space", withTyp(TypAttestation + " "), ErrAttestationTyp},
	})
}

// TestAttestationAlg covers the algorithm rules of ABCA-09 §7.1 step 3 and profile §8,
// including HS256 MACed with the attester's public key (key confusion, RFC 8725 §2.1).
func TestAttestationAlg(t *testing.T) {
	macSecret := []byte(strings.Repeat("s", 32))
	e := newEnv(t, func(e *testEnv, cfg *Config) {
		cfg.Attesters = append(cfg.Attesters, Attester{ID: "mac-att", HMACSecret: macSecret, Enabled: true})
	})
	noMAC := newEnv(t, nil)
	pub := &e.attKey.PublicKey
	jwkBytes, err := json.Marshal(publicJWK(t, e.attKey, testKid))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	rawPoint, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	p384 := testkit.ECKeyOn(t, elliptic.P384())

	macAtt := func(env *testEnv, alg string, key []byte, kid any) string {
		h := env.attHeader()
		h["alg"] = alg
		if kid == nil {
			delete(h, "kid")
		} else {
			h["kid"] = kid
		}
		return signJWT(t, key, h, env.attClaims())
	}
	tests := []struct {
		name    string
		env     *testEnv
		att     func(env *testEnv) string
		wantErr error
	}{
		{"es256_valid", e, func(env *testEnv) string { return env.attestation(nil) }, nil},
		{"alg_none", e, func(env *testEnv) string {
			h := env.attHeader()
			h["alg"] = "none"
			return signRaw(t, "none", nil, testkit.MustJSON(t, h), testkit.MustJSON(t, env.attClaims()))
		}, ErrAttestationAlg},
		{"alg_missing", e, func(env *testEnv) string {
			h := env.attHeader()
			delete(h, "alg")
			return signRaw(t, "ES256", env.attKey, testkit.MustJSON(t, h), testkit.MustJSON(t, env.attClaims()))
		}, ErrAttestationAlg},
		{"alg_not_a_string", e, func(env *testEnv) string {
			h := env.attHeader()
			h["alg"] = []string{"ES256"}
			return signRaw(t, "ES256", env.attKey, testkit.MustJSON(t, h), testkit.MustJSON(t, env.attClaims()))
		}, ErrAttestationAlg},
		{"alg_unregistered", e, func(env *testEnv) string {
			h := env.attHeader()
			h["alg"] = "ES256K"
			return signRaw(t, "ES256", env.attKey, testkit.MustJSON(t, h), testkit.MustJSON(t, env.attClaims()))
		}, ErrAttestationAlg},
		{"alg_lower_case", e, func(env *testEnv) string {
			h := env.attHeader()
			h["alg"] = "es256"
			return signRaw(t, "ES256", env.attKey, testkit.MustJSON(t, h), testkit.MustJSON(t, env.attClaims()))
		}, ErrAttestationAlg},
		{"es384_header_with_p256_key", e, func(env *testEnv) string {
			h := env.attHeader()
			h["alg"] = "ES384"
			return signRaw(t, "ES384", p384, testkit.MustJSON(t, h), testkit.MustJSON(t, env.attClaims()))
		}, ErrAttestationAlg},
		{"rs256_header_with_ec_key", e, func(env *testEnv) string {
			h := env.attHeader()
			h["alg"] = "RS256"
			return signRaw(t, "ES256", env.attKey, testkit.MustJSON(t, h), testkit.MustJSON(t, env.attClaims()))
		}, ErrAttestationAlg},
		{"hs256_without_any_mac_attester", noMAC, func(env *testEnv) string {
			return macAtt(env, "HS256", jwkBytes, testKid)
		}, ErrAttestationAlg},
		{"key_confusion_jwk_bytes_with_kid", e, func(env *testEnv) string {
			return macAtt(env, "HS256", jwkBytes, testKid)
		}, ErrAttestationUnknownKey},
		{"key_confusion_pem_with_kid", e, func(env *testEnv) string {
			return macAtt(env, "HS256", pemBytes, testKid)
		}, ErrAttestationUnknownKey},
		{"key_confusion_der_without_kid", e, func(env *testEnv) string {
			return macAtt(env, "HS256", der, nil)
		}, ErrAttestationSignature},
		{"key_confusion_raw_point_naming_the_attester", e, func(env *testEnv) string {
			return macAtt(env, "HS256", rawPoint, testAttester)
		}, ErrAttestationUnknownKey},
		{"hs256_with_the_shared_secret", e, func(env *testEnv) string {
			return macAtt(env, "HS256", macSecret, "mac-att")
		}, nil},
		{"hs384_with_a_32_byte_secret", e, func(env *testEnv) string {
			return macAtt(env, "HS384", macSecret, "mac-att")
		}, ErrAttestationAlg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.env.authenticate(tt.att(tt.env), tt.env.pop(nil))
			checkErr(t, err, tt.wantErr)
		})
	}
}

func TestAttestationClaims(t *testing.T) {
	e := newEnv(t, nil)
	e.checkAttestations(t, []mutationCase{
		{"valid", nil, nil},
		{"unknown_claims_ignored", func(h, c map[string]any) { c["device_integrity"] = map[string]any{"x": 1}; c["iss"] = "legacy" }, nil},
		{"fractional_exp", func(h, c map[string]any) { c["exp"] = float64(testNow.Add(time.Hour).Unix()) + 0.5 }, nil},
		{"sub_missing", func(h, c map[string]any) { delete(c, "sub") }, ErrAttestationClaims},
		{"sub_number", func(h, c map[string]any) { c["sub"] = 42 }, ErrAttestationClaims},
		{"sub_null", func(h, c map[string]any) { c["sub"] = nil }, ErrAttestationClaims},
		{"sub_empty", func(h, c map[string]any) { c["sub"] = "" }, ErrAttestationClaims},
		{"sub_array", func(h, c map[string]any) { c["sub"] = []string{testClientID} }, ErrAttestationClaims},
		{"exp_missing", func(h, c map[string]any) { delete(c, "exp") }, ErrAttestationClaims},
		{"exp_string", func(h, c map[string]any) { c["exp"] = "2030-01-01" }, ErrAttestationClaims},
		{"exp_null", func(h, c map[string]any) { c["exp"] = nil }, ErrAttestationClaims},
		{"exp_negative", func(h, c map[string]any) { c["exp"] = -1 }, ErrAttestationClaims},
		{"exp_huge", func(h, c map[string]any) { c["exp"] = 1e300 }, ErrAttestationClaims},
		{"iat_string", func(h, c map[string]any) { c["iat"] = "yesterday" }, ErrAttestationClaims},
		{"nbf_bool", func(h, c map[string]any) { c["nbf"] = true }, ErrAttestationClaims},
		{"cnf_missing", func(h, c map[string]any) { delete(c, "cnf") }, ErrAttestationClaims},
		{"cnf_string", func(h, c map[string]any) { c["cnf"] = "key" }, ErrAttestationClaims},
		{"cnf_jwk_missing", func(h, c map[string]any) { c["cnf"] = map[string]any{} }, ErrCnfKey},
		{"cnf_jkt_instead_of_jwk", func(h, c map[string]any) { c["cnf"] = map[string]any{"jkt": "abc"} }, ErrCnfKey},
		{"cnf_jwk_string", func(h, c map[string]any) { c["cnf"] = map[string]any{"jwk": "key"} }, ErrCnfKey},
	})
}

// TestAttestationDuplicateMembers covers RFC 7515 §4 / RFC 7519 §4: duplicate member names in
// the header or payload, at any depth, are rejected (go-jose alone would keep the last one).
func TestAttestationDuplicateMembers(t *testing.T) {
	e := newEnv(t, nil)
	cnf := string(testkit.MustJSON(t, e.attClaims()["cnf"]))
	exp := testNow.Add(time.Hour).Unix()
	hdr := `{"typ":"` + TypAttestation + `","alg":"ES256","kid":"` + testKid + `"}`
	payload := func(extra string) string {
		return `{"sub":"` + testClientID + `","exp":` + big.NewInt(exp).String() + `,"cnf":` + cnf + extra + `}`
	}
	tests := []struct {
		name    string
		header  string
		payload string
		wantErr error
	}{
		{"valid", hdr, payload(""), nil},
		{"duplicate_sub", hdr, payload(`,"sub":"other"`), ErrAttestationMalformed},
		{"duplicate_sub_escaped", hdr, payload(`,"s\u0075b":"other"`), ErrAttestationMalformed},
		{"duplicate_exp", hdr, payload(`,"exp":1`), ErrAttestationMalformed},
		{"duplicate_nested_in_cnf", hdr, `{"sub":"` + testClientID + `","exp":` + big.NewInt(exp).String() + `,"cnf":{"jwk":` + strings.TrimSuffix(string(testkit.MustJSON(t, e.attClaims()["cnf"].(map[string]any)["jwk"])), "}") + `,"kty":"EC"}}}`, ErrAttestationMalformed},
		{"duplicate_alg", `{"typ":"` + TypAttestation + `","alg":"ES256","alg":"none","kid":"` + testKid + `"}`, payload(""), ErrAttestationMalformed},
		{"duplicate_kid", `{"typ":"` + TypAttestation + `","alg":"ES256","kid":"x","kid":"` + testKid + `"}`, payload(""), ErrAttestationMalformed},
		{"payload_array", hdr, `[` + payload("") + `]`, ErrAttestationMalformed},
		{"payload_trailing_data", hdr, payload("") + `{}`, ErrAttestationMalformed},
		{"payload_not_json", hdr, `sub=client-1`, ErrAttestationMalformed},
		{"deep_nesting", hdr, payload(`,"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100)), ErrAttestationMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			att := signRaw(t, "ES256", e.attKey, []byte(tt.header), []byte(tt.payload))
			_, err := e.authenticate(att, e.pop(nil))
			checkErr(t, err, tt.wantErr)
		})
	}
}

func TestAttestationStructure(t *testing.T) {
	e := newEnv(t, nil)
	valid := e.attestation(nil)
	parts := strings.Split(valid, ".")
	other := strings.Split(e.attestation(func(h, c map[string]any) { c["sub"] = "other" }), ".")
	tests := []struct {
		name    string
		token   string
		wantErr error
	}{
		{"valid", valid, nil},
		{"two_segments", parts[0] + "." + parts[1], ErrAttestationMalformed},
		{"jwe_five_segments", valid + ".a.b", ErrAttestationMalformed},
		{"empty_signature", parts[0] + "." + parts[1] + ".", ErrAttestationMalformed},
		{"empty_header", "." + parts[1] + "." + parts[2], ErrAttestationMalformed},
		{"padded_base64", parts[0] + "=." + parts[1] + "." + parts[2], ErrHeaderMalformed},
		{"json_serialization", `{"payload":"` + parts[1] + `"}`, ErrHeaderMalformed},
		{"tampered_payload", parts[0] + "." + b64.EncodeToString([]byte(`{"sub":"x"}`)) + "." + parts[2], ErrAttestationSignature},
		{"signature_of_another_token", parts[0] + "." + parts[1] + "." + other[2], ErrAttestationSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.v.Authenticate(t.Context(), e.request(headerWith(HeaderClientAttestation, tt.token, HeaderClientAttestationPoP, e.pop(nil))), e.client())
			checkErr(t, err, tt.wantErr)
		})
	}
}

// TestParseCompactJWS covers RFC 7515 §7.1 compact parsing below the header checks.
func TestParseCompactJWS(t *testing.T) {
	e := newEnv(t, nil)
	parts := strings.Split(e.attestation(nil), ".")
	algs := []jose.SignatureAlgorithm{jose.ES256}
	tests := []struct {
		name    string
		token   string
		wantErr error
	}{
		{"valid", strings.Join(parts, "."), nil},
		{"padded_header", parts[0] + "==." + parts[1] + "." + parts[2], ErrAttestationMalformed},
		{"standard_alphabet_signature", parts[0] + "." + parts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]) + "+/", ErrAttestationMalformed},
		{"json_serialization", `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`, ErrAttestationMalformed},
		{"whitespace", parts[0] + " ." + parts[1] + "." + parts[2], ErrAttestationMalformed},
		{"too_long", strings.Repeat("a", DefaultMaxTokenBytes+1), ErrAttestationMalformed},
		{"header_not_object", b64.EncodeToString([]byte(`"ES256"`)) + "." + parts[1] + "." + parts[2], ErrAttestationMalformed},
		{"alg_outside_allow_list", b64.EncodeToString([]byte(`{"alg":"ES384"}`)) + "." + parts[1] + "." + parts[2], ErrAttestationAlg},
		{"invalid_x5c", b64.EncodeToString([]byte(`{"alg":"ES256","x5c":["AAAA"]}`)) + "." + parts[1] + "." + parts[2], ErrAttestationMalformed},
		{"embedded_private_jwk", b64.EncodeToString(testkit.MustJSON(t, map[string]any{"alg": "ES256", "jwk": jwkMap(t, jose.JSONWebKey{Key: e.instKey})})) + "." + parts[1] + "." + parts[2], ErrAttestationMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseCompactJWS(tt.token, algs, DefaultMaxTokenBytes, attestationJWSErrors)
			checkErr(t, err, tt.wantErr)
		})
	}
}

// TestCrit covers RFC 7515 §4.1.11: authz understands no extension, so any crit fails.
func TestCrit(t *testing.T) {
	e := newEnv(t, nil)
	tests := []mutationCase{
		{"no_crit", nil, nil},
		{"crit_unknown_member", func(h, c map[string]any) { h["crit"] = []string{"exp"}; h["exp"] = 1 }, ErrCrit},
		{"crit_empty", func(h, c map[string]any) { h["crit"] = []string{} }, ErrCrit},
		{"crit_b64", func(h, c map[string]any) { h["crit"] = []string{"b64"}; h["b64"] = true }, ErrCrit},
		{"b64_without_crit", func(h, c map[string]any) { h["b64"] = false }, ErrCrit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.authenticate(e.attestation(tt.mutate), e.pop(nil))
			checkErr(t, err, tt.wantErr)
			_, err = e.authenticate(e.attestation(nil), e.pop(tt.mutate))
			checkErr(t, err, tt.wantErr)
		})
	}
}

// TestCnfKey covers ABCA-09 §7.1 step 5: cnf.jwk is a valid public asymmetric key.
func TestCnfKey(t *testing.T) {
	e := newEnv(t, nil)
	ecPub := jwkMap(t, publicJWK(t, e.instKey, ""))
	withMember := func(k, v string) map[string]any {
		m := map[string]any{}
		for key, val := range ecPub {
			m[key] = val
		}
		m[k] = v
		return m
	}
	ecPriv := jwkMap(t, jose.JSONWebKey{Key: e.instKey})
	rsaKey := testkit.RSAKey(t, 2048)
	rsaPriv := jwkMap(t, jose.JSONWebKey{Key: rsaKey})
	shortRSA := testkit.RSAKey(t, 1024)
	edKey := testkit.Ed25519Key(t)
	p384 := testkit.ECKeyOn(t, elliptic.P384())
	// An off-curve point: P-256 x with y+1.
	y := new(big.Int).Add(e.instKey.Y, big.NewInt(1))
	offCurve := withMember("y", base64.RawURLEncoding.EncodeToString(y.FillBytes(make([]byte, 32))))

	tests := []struct {
		name    string
		jwk     any
		popKey  any
		popAlg  string
		wantErr error
	}{
		{"ec_p256", ecPub, e.instKey, "ES256", nil},
		{"ec_p384", jwkMap(t, publicJWK(t, p384, "")), p384, "ES384", nil},
		{"rsa_2048", jwkMap(t, publicJWK(t, rsaKey, "")), rsaKey, "PS256", nil},
		{"ed25519", jwkMap(t, publicJWK(t, edKey, "")), edKey, "EdDSA", nil},
		{"use_sig", withMember("use", "sig"), e.instKey, "ES256", nil},
		{"use_enc", withMember("use", "enc"), e.instKey, "ES256", ErrCnfKey},
		{"ec_private_d", ecPriv, e.instKey, "ES256", ErrCnfKey},
		{"ec_public_with_d_member", withMember("d", "AAAA"), e.instKey, "ES256", ErrCnfKey},
		{"rsa_private", rsaPriv, rsaKey, "PS256", ErrCnfKey},
		{"priv_member", withMember("priv", "AAAA"), e.instKey, "ES256", ErrCnfKey},
		{"k_member", withMember("k", "AAAA"), e.instKey, "ES256", ErrCnfKey},
		{"symmetric_oct", map[string]any{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}, e.instKey, "ES256", ErrCnfKey},
		{"off_curve_point", offCurve, e.instKey, "ES256", ErrCnfKey},
		{"unknown_kty", map[string]any{"kty": "AKP", "alg": "ML-DSA-44", "pub": "AAAA"}, e.instKey, "ES256", ErrCnfKey},
		{"kty_missing", map[string]any{"crv": "P-256", "x": ecPub["x"], "y": ecPub["y"]}, e.instKey, "ES256", ErrCnfKey},
		{"x25519_okp", map[string]any{"kty": "OKP", "crv": "X25519", "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}, e.instKey, "ES256", ErrCnfKey},
		{"rsa_1024", jwkMap(t, publicJWK(t, shortRSA, "")), shortRSA, "RS256", ErrCnfKey},
		{"truncated_x", withMember("x", "AAAA"), e.instKey, "ES256", ErrCnfKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			att := e.attestation(func(h, c map[string]any) { c["cnf"] = map[string]any{"jwk": tt.jwk} })
			pop := signRaw(t, tt.popAlg, tt.popKey, []byte(`{"typ":"`+TypPoP+`","alg":"`+tt.popAlg+`"}`), testkit.MustJSON(t, map[string]any{"aud": testIssuer, "jti": nextJTI(), "iat": testNow.Unix()}))
			res, err := e.authenticate(att, pop)
			checkErr(t, err, tt.wantErr)
			if err == nil && (res.InstanceJKT == "" || res.InstanceKey == nil || !res.InstanceKey.IsPublic()) {
				t.Errorf("instance key not reported: %+v", res)
			}
		})
	}
}

// TestAttestationTimes covers exp (ABCA-09 §4), nbf (RFC 7519 §4.1.5) and iat freshness
// (ABCA-09 §7.1 step 6) with the 30 s default skew.
func TestAttestationTimes(t *testing.T) {
	plain := newEnv(t, nil)
	maxAge := newEnv(t, func(e *testEnv, cfg *Config) { cfg.MaxAttestationAge = time.Hour })
	at := func(d time.Duration) int64 { return testNow.Add(d).Unix() }
	tests := []struct {
		name    string
		env     *testEnv
		mutate  func(h, c map[string]any)
		wantErr error
	}{
		{"exp_in_the_future", plain, nil, nil},
		{"exp_passed_within_skew", plain, func(h, c map[string]any) { c["exp"] = at(-29 * time.Second) }, nil},
		{"exp_passed_at_skew", plain, func(h, c map[string]any) { c["exp"] = at(-30 * time.Second) }, ErrAttestationExpired},
		{"exp_passed_beyond_skew", plain, func(h, c map[string]any) { c["exp"] = at(-time.Hour) }, ErrAttestationExpired},
		{"nbf_past", plain, func(h, c map[string]any) { c["nbf"] = at(-time.Hour) }, nil},
		{"nbf_future_within_skew", plain, func(h, c map[string]any) { c["nbf"] = at(29 * time.Second) }, nil},
		{"nbf_future_beyond_skew", plain, func(h, c map[string]any) { c["nbf"] = at(31 * time.Second) }, ErrAttestationNotYetValid},
		{"iat_absent_without_max_age", plain, func(h, c map[string]any) { delete(c, "iat") }, nil},
		{"iat_very_old_without_max_age", plain, func(h, c map[string]any) { c["iat"] = at(-1000 * time.Hour) }, nil},
		{"iat_future_within_skew", plain, func(h, c map[string]any) { c["iat"] = at(30 * time.Second) }, nil},
		{"iat_future_beyond_skew", plain, func(h, c map[string]any) { c["iat"] = at(31 * time.Second) }, ErrAttestationNotYetValid},
		{"max_age_fresh", maxAge, func(h, c map[string]any) { c["iat"] = at(-time.Hour) }, nil},
		{"max_age_within_skew", maxAge, func(h, c map[string]any) { c["iat"] = at(-time.Hour - 30*time.Second) }, nil},
		{"max_age_exceeded", maxAge, func(h, c map[string]any) { c["iat"] = at(-time.Hour - 31*time.Second) }, ErrAttestationTooOld},
		{"max_age_iat_absent", maxAge, func(h, c map[string]any) { delete(c, "iat") }, ErrAttestationTooOld},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := tt.env.authenticate(tt.env.attestation(tt.mutate), tt.env.pop(nil))
			checkErr(t, err, tt.wantErr)
			if res == nil {
				t.Fatal("nil result")
			}
		})
	}
}

// TestResultOnFailure checks that a rejected request still reports what verification found.
func TestResultOnFailure(t *testing.T) {
	e := newEnv(t, nil)
	other := testkit.ECKey(t)
	res, err := e.authenticate(e.attestation(nil), signJWT(t, other, map[string]any{"typ": TypPoP, "alg": "ES256"}, map[string]any{"aud": testIssuer, "jti": "j", "iat": testNow.Unix()}))
	checkErr(t, err, ErrPoPSignature)
	if res.ClientID != testClientID || res.Attester != testAttester || res.Resolution != ResolutionKID || res.InstanceJKT == "" || res.PoPMethod != PoPMethodJWT || res.Replay != nil {
		t.Errorf("partial result = %+v", res)
	}
	// An attestation from an unknown key still yields the unverified sub and instance key.
	stranger := testkit.ECKey(t)
	res, err = e.authenticate(signJWT(t, stranger, e.attHeader(), e.attClaims()), e.pop(nil))
	checkErr(t, err, ErrAttestationSignature)
	if res.ClientID != testClientID || res.InstanceJKT == "" || res.Attester != testAttester {
		t.Errorf("partial result = %+v", res)
	}
}
