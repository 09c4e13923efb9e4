package clientauth

import (
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/internal/testkit"
)

func FuzzVerifyAttestation(f *testing.F) {
	macSecret := []byte(strings.Repeat("m", 32))
	e := newEnv(f, func(e *testEnv, cfg *Config) {
		cfg.Attesters = append(cfg.Attesters, Attester{ID: "mac-att", HMACSecret: macSecret, Enabled: true})
	}, withoutCache())
	pubJWK := testkit.MustJSON(f, publicJWK(f, e.attKey, testKid))
	hdr := string(testkit.MustJSON(f, e.attHeader()))

	f.Add(e.attestation(nil))
	f.Add(e.attestation(func(h, c map[string]any) { h["alg"] = "none" }))
	f.Add(signRaw(f, "none", nil, []byte(`{"typ":"`+TypAttestation+`","alg":"none"}`), testkit.MustJSON(f, e.attClaims())))
	f.Add(signRaw(f, "HS256", pubJWK, []byte(`{"typ":"`+TypAttestation+`","alg":"HS256","kid":"`+testKid+`"}`), testkit.MustJSON(f, e.attClaims())))
	f.Add(signRaw(f, "HS256", macSecret, []byte(`{"typ":"`+TypAttestation+`","alg":"HS256"}`), testkit.MustJSON(f, e.attClaims())))
	f.Add(e.attestation(func(h, c map[string]any) { c["sub"] = 1; c["exp"] = "x"; c["cnf"] = []int{1} }))
	f.Add(e.attestation(func(h, c map[string]any) {
		c["cnf"] = map[string]any{"jwk": jwkMap(f, jose.JSONWebKey{Key: e.instKey})}
	}))
	f.Add(e.attestation(func(h, c map[string]any) { c["cnf"] = map[string]any{"jwk": map[string]any{"kty": "oct", "k": "AAAA"}} }))
	f.Add(e.attestation(func(h, c map[string]any) { h["crit"] = []string{"exp"} }))
	f.Add(e.attestation(func(h, c map[string]any) { h["x5c"] = []string{"AAAA", "!!"} }))
	f.Add(e.attestation(func(h, c map[string]any) { h["jku"] = "https://attacker.example/jwks" }))
	f.Add(signRaw(f, "ES256", e.attKey, []byte(hdr), []byte(`{"sub":"a","sub":"b","exp":1,"cnf":{}}`)))
	f.Add(signRaw(f, "ES256", e.attKey, []byte(`{"alg":"ES256","alg":"none"}`), []byte(`{}`)))
	f.Add(signRaw(f, "ES256", e.attKey, []byte(hdr), []byte(`{"x":`+strings.Repeat("[", 5000)+`}`)))
	f.Add(strings.Repeat("A", 40000))
	f.Add("..")
	if att, err := readTestdata("draft09-example-attestation.jwt"); err == nil {
		f.Add(att)
	}
	client := e.client()
	f.Fuzz(func(t *testing.T, token string) {
		res := &Result{}
		att, err := e.v.verifyAttestation(t.Context(), e.v.trust.Load(), token, client, res)
		if err != nil {
			if Reason(err) == reasonUnexpected {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		if att.sub == "" || att.cnf == nil || !att.cnf.IsPublic() || att.jkt == "" || att.attester == nil {
			t.Fatalf("accepted an incomplete attestation: %+v", att)
		}
	})
}
