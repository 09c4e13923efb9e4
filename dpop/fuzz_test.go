package dpop_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/authz/authz/dpop"
	"github.com/authz/authz/internal/testkit"
)

// FuzzVerify feeds hostile proofs to Verify: it must never panic, must fail with ErrInvalid or
// ErrTooLarge, and anything it accepts must carry the claims the checks require.
func FuzzVerify(f *testing.F) {
	b64 := base64.RawURLEncoding.EncodeToString
	key := testkit.ECKey(f)
	valid := newProofSpec(f, "ES256", key)
	f.Add(valid.sign(f))

	seeds := []func(p *proofSpec){
		func(p *proofSpec) { p.header["alg"] = "none"; p.signAlg = "none" },
		func(p *proofSpec) { p.header["alg"] = "HS256"; p.signAlg = "HS256" },
		func(p *proofSpec) { p.header["jwk"] = jwkMap(f, key) },
		func(p *proofSpec) { p.header["jwk"] = map[string]any{"kty": "oct", "k": "c2VjcmV0"} },
		func(p *proofSpec) { p.header["crit"] = []string{"b64"}; p.header["b64"] = false },
		func(p *proofSpec) { p.header["typ"] = []any{"dpop+jwt"} },
		func(p *proofSpec) { p.claims["iat"] = "1780000000" },
		func(p *proofSpec) { p.claims["iat"] = 1e308 },
		func(p *proofSpec) { p.claims["jti"] = map[string]any{} },
		func(p *proofSpec) { p.claims["htu"] = "https://[::1%25eth0]:0/../a/%2e%2E/?#" },
		func(p *proofSpec) { p.claims["ath"] = nil },
		func(p *proofSpec) { p.rawPayload = `{"jti":"a","jti":"a","htm":"POST","htu":"x","iat":1}` },
		func(p *proofSpec) { p.rawHeader = `{"typ":"dpop+jwt","typ":"dpop+jwt","alg":"ES256"}` },
		func(p *proofSpec) {
			p.rawHeader = `{"alg":"ES256","jwk":` + strings.Repeat(`{"a":`, 50) + `1` + strings.Repeat(`}`, 50) + `}`
		},
		func(p *proofSpec) { p.header["x5c"] = []string{"not-a-cert"} },
	}
	for _, mutate := range seeds {
		p := newProofSpec(f, "ES256", key)
		mutate(p)
		f.Add(p.sign(f))
	}
	f.Add("")
	f.Add("..")
	f.Add("a.b.c")
	f.Add(b64([]byte(`{"alg":"none"}`)) + "." + b64([]byte(`{}`)) + ".")
	f.Add(`{"protected":"e30","payload":"e30","signature":"e30"}`)
	f.Add(strings.Repeat("A", 20<<10) + ".B.C")

	exp := testExpect()
	exp.AccessToken = "at"
	cfg := testConfig()
	f.Fuzz(func(t *testing.T, proof string) {
		for _, e := range []dpop.Expect{testExpect(), exp} {
			got, err := dpop.Verify(proof, e, cfg)
			if err != nil {
				if got != nil {
					t.Fatalf("proof returned with error %v", err)
				}
				if !errors.Is(err, dpop.ErrInvalid) && !errors.Is(err, dpop.ErrTooLarge) {
					t.Fatalf("error %v wraps neither ErrInvalid nor ErrTooLarge", err)
				}
				continue
			}
			if got.JKT == "" || got.JTI == "" || got.HTM != testMethod || got.HTU == "" || !got.JWK.IsPublic() {
				t.Fatalf("accepted an incomplete proof: %+v", got)
			}
		}
	})
}

// FuzzExtractHeader checks that ExtractHeader never panics and returns only a single,
// comma-free, size-capped compact JWS.
func FuzzExtractHeader(f *testing.F) {
	f.Add("a.b.c", "", false)
	f.Add("a.b.c, d.e.f", "", false)
	f.Add("a.b.c", "d.e.f", true)
	f.Add(" \ta.b.c\t ", "", false)
	f.Add("", "", false)
	f.Add("a..c", "", false)
	f.Add(strings.Repeat("a", 17<<10)+".b.c", "", false)
	f.Add("a.b.c\r\nDPoP: d.e.f", "", false)
	f.Fuzz(func(t *testing.T, first, second string, two bool) {
		h := http.Header{"Dpop": {first}}
		if two {
			h["DPoP"] = []string{second}
		}
		got, err := dpop.ExtractHeader(h, 1024)
		if err != nil {
			if got != "" {
				t.Fatalf("value %q returned with error %v", got, err)
			}
			return
		}
		if two {
			t.Fatalf("accepted two header lines")
		}
		if len(got) > 1024 || strings.ContainsAny(got, ", \t") || strings.Count(got, ".") != 2 {
			t.Fatalf("accepted %q", got)
		}
	})
}
