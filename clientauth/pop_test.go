package clientauth

import (
	"crypto/elliptic"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/internal/testkit"
)

func TestPoPTyp(t *testing.T) {
	e := newEnv(t, nil)
	e.checkPoPs(t, []mutationCase{
		{"exact", withTyp(TypPoP), nil},
		{"upper_case", withTyp(strings.ToUpper(TypPoP)), nil},
		{"application_prefix", withTyp("application/" + TypPoP), nil},
		{"missing", withTyp(nil), ErrPoPTyp},
		{"attestation_typ", withTyp(TypAttestation), ErrPoPTyp},
		{"dpop_typ", withTyp("dpop+jwt"), ErrPoPTyp},
		{"jwt", withTyp("JWT"), ErrPoPTyp},
		{"not_a_string", withTyp(true), ErrPoPTyp},
	})
}

// TestPoPAlg covers ABCA-09 §7.2 step 3 and §5.1 rule 2: asymmetric only, allow-listed, and
// consistent with the instance key.
func TestPoPAlg(t *testing.T) {
	e := newEnv(t, nil)
	pubJWK, err := json.Marshal(publicJWK(t, e.instKey, ""))
	if err != nil {
		t.Fatal(err)
	}
	p384 := testkit.ECKeyOn(t, elliptic.P384())
	other := testkit.ECKey(t)
	claims := func() []byte {
		return testkit.MustJSON(t, map[string]any{"aud": testIssuer, "jti": nextJTI(), "iat": testNow.Unix()})
	}
	hdr := func(alg string) []byte { return []byte(`{"typ":"` + TypPoP + `","alg":"` + alg + `"}`) }
	tests := []struct {
		name    string
		pop     func() string
		cnfAlg  string
		wantErr error
	}{
		{"es256_valid", func() string { return signRaw(t, "ES256", e.instKey, hdr("ES256"), claims()) }, "", nil},
		{"alg_none", func() string { return signRaw(t, "none", nil, hdr("none"), claims()) }, "", ErrPoPAlg},
		{"hs256_with_cnf_public_key_bytes", func() string { return signRaw(t, "HS256", pubJWK, hdr("HS256"), claims()) }, "", ErrPoPAlg},
		{"es384_with_p256_key", func() string { return signRaw(t, "ES384", p384, hdr("ES384"), claims()) }, "", ErrPoPAlg},
		{"rs256_with_ec_key", func() string { return signRaw(t, "ES256", e.instKey, hdr("RS256"), claims()) }, "", ErrPoPAlg},
		{"eddsa_with_ec_key", func() string { return signRaw(t, "ES256", e.instKey, hdr("EdDSA"), claims()) }, "", ErrPoPAlg},
		{"rs384_not_in_default_list", func() string { return signRaw(t, "ES256", e.instKey, hdr("RS384"), claims()) }, "", ErrPoPAlg},
		{"jwk_alg_member_matches", func() string { return signRaw(t, "ES256", e.instKey, hdr("ES256"), claims()) }, "ES256", nil},
		{"jwk_alg_member_differs", func() string { return signRaw(t, "ES256", e.instKey, hdr("ES256"), claims()) }, "ES384", ErrPoPAlg},
		{"signed_by_another_key", func() string { return signRaw(t, "ES256", other, hdr("ES256"), claims()) }, "", ErrPoPSignature},
		{"header_jwk_is_ignored", func() string {
			h := testkit.MustJSON(t, map[string]any{"typ": TypPoP, "alg": "ES256", "jwk": jwkMap(t, publicJWK(t, other, ""))})
			return signRaw(t, "ES256", other, h, claims())
		}, "", ErrPoPSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			att := e.attestation(func(h, c map[string]any) {
				if tt.cnfAlg != "" {
					c["cnf"].(map[string]any)["jwk"].(map[string]any)["alg"] = tt.cnfAlg
				}
			})
			_, err := e.authenticate(att, tt.pop())
			checkErr(t, err, tt.wantErr)
		})
	}
}

func TestPoPClaims(t *testing.T) {
	e := newEnv(t, nil)
	e.checkPoPs(t, []mutationCase{
		{"valid", nil, nil},
		{"legacy_iss_ignored", func(h, c map[string]any) { c["iss"] = testClientID }, nil},
		{"aud_missing", func(h, c map[string]any) { delete(c, "aud") }, ErrPoPClaims},
		{"jti_missing", func(h, c map[string]any) { delete(c, "jti") }, ErrPoPClaims},
		{"jti_number", func(h, c map[string]any) { c["jti"] = 12 }, ErrPoPClaims},
		{"jti_empty", func(h, c map[string]any) { c["jti"] = "" }, ErrPoPClaims},
		{"jti_too_long", func(h, c map[string]any) { c["jti"] = strings.Repeat("j", maxJTILen+1) }, ErrPoPClaims},
		{"iat_missing", func(h, c map[string]any) { delete(c, "iat") }, ErrPoPClaims},
		{"iat_string", func(h, c map[string]any) { c["iat"] = "now" }, ErrPoPClaims},
		{"iat_null", func(h, c map[string]any) { c["iat"] = nil }, ErrPoPClaims},
		{"exp_future", func(h, c map[string]any) { c["exp"] = testNow.Add(time.Minute).Unix() }, nil},
		{"exp_passed", func(h, c map[string]any) { c["exp"] = testNow.Add(-time.Minute).Unix() }, ErrPoPClaims},
		{"exp_string", func(h, c map[string]any) { c["exp"] = "soon" }, ErrPoPClaims},
		{"nbf_future", func(h, c map[string]any) { c["nbf"] = testNow.Add(time.Minute).Unix() }, ErrPoPClaims},
		{"nbf_past", func(h, c map[string]any) { c["nbf"] = testNow.Add(-time.Minute).Unix() }, nil},
		{"nonce_instead_of_challenge_ignored", func(h, c map[string]any) { c["nonce"] = "abc" }, nil},
	})
}

func TestPoPDuplicateMembers(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name    string
		header  string
		payload string
		wantErr error
	}{
		{"valid", `{"typ":"` + TypPoP + `","alg":"ES256"}`, `{"aud":"` + testIssuer + `","jti":"a","iat":` + jsonInt(testNow.Unix()) + `}`, nil},
		{"duplicate_aud", `{"typ":"` + TypPoP + `","alg":"ES256"}`, `{"aud":"https://evil.example","aud":"` + testIssuer + `","jti":"a","iat":` + jsonInt(testNow.Unix()) + `}`, ErrPoPMalformed},
		{"duplicate_typ", `{"typ":"JWT","typ":"` + TypPoP + `","alg":"ES256"}`, `{"aud":"` + testIssuer + `","jti":"a","iat":` + jsonInt(testNow.Unix()) + `}`, ErrPoPMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.authenticate(e.attestation(nil), signRaw(t, "ES256", e.instKey, []byte(tt.header), []byte(tt.payload)))
			checkErr(t, err, tt.wantErr)
		})
	}
}

func jsonInt(n int64) string { return strconv.FormatInt(n, 10) }

// TestPoPAudience covers ABCA-09 §7.2 step 7 with profile §3.
func TestPoPAudience(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name    string
		aud     any
		wantErr error
		wantAud string
	}{
		{"issuer_string", testIssuer, nil, testIssuer},
		{"one_element_array", []string{testIssuer}, nil, testIssuer},
		{"two_element_array", []string{testIssuer, "https://rs.example.com"}, ErrPoPAudience, `["https://as.example.com","https://rs.example.com"]`},
		{"trailing_slash", testIssuer + "/", ErrPoPAudience, testIssuer + "/"},
		{"token_endpoint", testTokenURL, ErrPoPAudience, testTokenURL},
		{"upper_case_host", "https://AS.example.com", ErrPoPAudience, "https://AS.example.com"},
		{"empty_array", []string{}, ErrPoPAudience, "[]"},
		{"array_of_number", []int{1}, ErrPoPAudience, "[1]"},
		{"number", 5, ErrPoPAudience, "5"},
		{"object", map[string]string{"aud": testIssuer}, ErrPoPAudience, `{"aud":"https://as.example.com"}`},
		{"null", nil, ErrPoPAudience, "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := e.authenticate(e.attestation(nil), e.pop(func(h, c map[string]any) { c["aud"] = tt.aud }))
			checkErr(t, err, tt.wantErr)
			if res.PoPAud != tt.wantAud {
				t.Errorf("PoPAud = %q, want %q", res.PoPAud, tt.wantAud)
			}
		})
	}
}

// TestPoPIatWindow covers ABCA-09 §7.2 step 6 with profile §5 (60 s max age, 30 s skew).
func TestPoPIatWindow(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name    string
		iat     any
		wantErr error
	}{
		{"now", testNow.Unix(), nil},
		{"fractional", float64(testNow.Unix()) - 0.25, nil},
		{"max_age_plus_skew_old", testNow.Add(-90 * time.Second).Unix(), nil},
		{"too_old", testNow.Add(-91 * time.Second).Unix(), ErrPoPIatWindow},
		{"future_within_skew", testNow.Add(30 * time.Second).Unix(), nil},
		{"future_beyond_skew", testNow.Add(31 * time.Second).Unix(), ErrPoPIatWindow},
		{"epoch", 0, ErrPoPIatWindow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.authenticate(e.attestation(nil), e.pop(func(h, c map[string]any) { c["iat"] = tt.iat }))
			checkErr(t, err, tt.wantErr)
		})
	}
}

// TestReplayEntry covers profile §5: key "pop:"+jkt+":"+jti, expiry iat + pop_max_age + skew,
// never earlier than now + skew.
func TestReplayEntry(t *testing.T) {
	e := newEnv(t, nil)
	jkt, err := thumbprint(&jose.JSONWebKey{Key: &e.instKey.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		iat        time.Time
		wantExpiry time.Time
	}{
		{"iat_now", testNow, testNow.Add(90 * time.Second)},
		{"iat_old", testNow.Add(-80 * time.Second), testNow.Add(30 * time.Second)},
		{"iat_future", testNow.Add(20 * time.Second), testNow.Add(110 * time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := e.authenticate(e.attestation(nil), e.pop(func(h, c map[string]any) { c["iat"] = tt.iat.Unix(); c["jti"] = "jti:" + tt.name }))
			checkErr(t, err, nil)
			want := ReplayEntry{Key: "pop:" + jkt + ":jti:" + tt.name, ExpiresAt: tt.wantExpiry}
			if len(res.Replay) != 1 || res.Replay[0].Key != want.Key || !res.Replay[0].ExpiresAt.Equal(want.ExpiresAt) {
				t.Errorf("Replay = %+v, want %+v", res.Replay, want)
			}
			if res.InstanceJKT != jkt || res.PoPMethod != PoPMethodJWT || res.Challenge != ChallengeNone || res.ClientID != testClientID {
				t.Errorf("result = %+v", res)
			}
		})
	}
}

func FuzzVerifyPoP(f *testing.F) {
	e := newEnv(f, nil)
	cnf := publicJWK(f, e.instKey, "")
	f.Add(e.pop(nil))
	f.Add(e.pop(func(h, c map[string]any) { h["alg"] = "none" }))
	f.Add(signRaw(f, "none", nil, []byte(`{"typ":"`+TypPoP+`","alg":"none"}`), []byte(`{"aud":"`+testIssuer+`","jti":"a","iat":1}`)))
	f.Add(e.pop(func(h, c map[string]any) { c["aud"] = []any{1, nil, map[string]any{}} }))
	f.Add(e.pop(func(h, c map[string]any) { c["iat"] = "x"; c["jti"] = 5; c["challenge"] = 7 }))
	f.Add(e.pop(func(h, c map[string]any) { h["crit"] = []string{"x"} }))
	f.Add(signRaw(f, "ES256", e.instKey, []byte(`{"typ":"`+TypPoP+`","alg":"ES256"}`), []byte(`{"aud":"a","aud":"b","jti":"a","iat":1}`)))
	f.Add(signRaw(f, "ES256", e.instKey, []byte(`{"typ":"`+TypPoP+`","alg":"ES256","jwk":`+string(testkit.MustJSON(f, jwkMap(f, jose.JSONWebKey{Key: e.instKey})))+`}`), []byte(`{}`)))
	f.Add(strings.Repeat("A", 20000) + "." + strings.Repeat("B", 10) + ".C")
	pop, err := readTestdata("draft09-example-pop.jwt")
	if err == nil {
		f.Add(pop)
	}
	f.Fuzz(func(t *testing.T, token string) {
		res := &Result{}
		c, err := e.v.verifyPoP(token, &cnf, res)
		if err == nil && (c == nil || c.jti == "") {
			t.Fatalf("accepted a PoP without jti")
		}
		if err != nil && Reason(err) == reasonUnexpected {
			t.Fatalf("error without sentinel: %v", err)
		}
	})
}
