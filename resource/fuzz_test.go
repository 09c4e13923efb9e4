package resource_test

import (
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/dpop"
	"github.com/authz/authz/internal/testkit"
	"github.com/authz/authz/resource"
)

// rawES256 signs header and payload JSON verbatim with key (RFC 7518 §3.4), for hostile tokens
// and proofs a JOSE library would refuse to produce.
func rawES256(t testing.TB, key *ecdsa.PrivateKey, header, payload string) string {
	t.Helper()
	return testkit.SignRaw(t, "ES256", key, []byte(header), []byte(payload))
}

// FuzzRequestHeaders feeds hostile Authorization and DPoP header values to Verify and Middleware
// with a live issuer key set. Neither may panic; Verify returns a token exactly when it returns
// no error, and otherwise one of the package's sentinels; an accepted bound token came with the
// DPoP scheme; every rejection is a 401 with a single-line challenge and a JSON error body.
// (FuzzVerify in verify_table_test.go fuzzes against an unreachable key set.)
func FuzzRequestHeaders(f *testing.F) {
	iss := newIssuer(f)
	clk := testkit.NewClock(testNow())
	client := testkit.ECKey(f)
	jkt := testkit.Thumbprint(f, client)
	now := clk.Now()
	b64 := base64.RawURLEncoding.EncodeToString

	valid := newTokenSpec(iss, now).sign(f)
	bound := newTokenSpec(iss, now).bind(jkt).sign(f)
	proof := newProofSpec(client, bound, now).sign(f)
	claimsJSON := string(testkit.MustJSON(f, newTokenSpec(iss, now).claims))
	kidHeader := `{"alg":"ES256","typ":"at+jwt","kid":"` + issuerKID + `"}`

	// Well-formed requests, accepted or refused by one rule.
	f.Add("Bearer "+valid, "")
	f.Add("DPoP "+bound, proof)
	f.Add("Bearer "+bound, proof)
	f.Add("DPoP "+valid, proof)
	f.Add("DPoP "+bound, "")
	f.Add("DPoP "+bound, bound)
	f.Add("DPoP "+bound, proof+","+proof)

	// alg none and algorithm confusion.
	f.Add("Bearer "+testkit.CompactJWS([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+issuerKID+`"}`), []byte(claimsJSON), nil), "")
	f.Add("Bearer "+testkit.CompactJWS([]byte(`{"alg":"none","typ":"at+jwt"}`), []byte(claimsJSON), []byte("x")), "")
	f.Add("Bearer "+testkit.CompactJWS([]byte(`{"alg":"None","typ":"at+jwt","kid":"`+issuerKID+`"}`), []byte(claimsJSON), nil), "")
	if pub, err := iss.key.PublicKey.Bytes(); err == nil {
		hs := testkit.SignJWS(f, jose.JSONWebKey{Key: append(pub, pub...), KeyID: issuerKID}, jose.HS256, "at+jwt", nil, newTokenSpec(iss, now).claims)
		f.Add("Bearer "+hs, "")
	}
	noneProof := testkit.CompactJWS([]byte(`{"alg":"none","typ":"dpop+jwt","jwk":`+string(testkit.MustJSON(f, jose.JSONWebKey{Key: client.Public()}))+`}`),
		testkit.MustJSON(f, newProofSpec(client, bound, now).claims), nil)
	f.Add("DPoP "+bound, noneProof)

	// Signed by the issuer key but hostile inside: wrong claim types, duplicate members, typ not a
	// string, private cnf key material, deep nesting, huge members.
	for _, tc := range []struct{ header, payload string }{
		{`{"alg":"ES256","typ":["at+jwt"],"kid":"` + issuerKID + `"}`, claimsJSON},
		{`{"alg":"ES256","typ":"at+jwt","typ":"JWT","kid":"` + issuerKID + `"}`, claimsJSON},
		{`{"alg":"ES256","typ":"at+jwt","kid":"` + issuerKID + `","crit":["exp"],"exp":1}`, claimsJSON},
		{`{"alg":"ES256","typ":"at+jwt","kid":{"a":1}}`, claimsJSON},
		{kidHeader, `{"iss":"` + iss.URL() + `","iss":"https://evil.example","exp":9999999999}`},
		{kidHeader, `{"iss":"` + iss.URL() + `","exp":"9999999999","iat":"now"}`},
		{kidHeader, `{"iss":"` + iss.URL() + `","exp":1e308,"aud":{"x":1}}`},
		{kidHeader, `{"iss":"` + iss.URL() + `","exp":9999999999,"scope":42,"client_id":["a"]}`},
		{kidHeader, `{"iss":"` + iss.URL() + `","exp":9999999999,"cnf":"` + jkt + `"}`},
		{kidHeader, `{"iss":"` + iss.URL() + `","exp":9999999999,"cnf":{"jkt":42}}`},
		{kidHeader, `{"iss":"` + iss.URL() + `","exp":9999999999,"cnf":{"jkt":"` + jkt + `","jwk":` + string(testkit.MustJSON(f, jose.JSONWebKey{Key: client})) + `}}`},
		{kidHeader, `{"iss":"` + iss.URL() + `","exp":9999999999,"client_attestation":[1,2,3]}`},
		{kidHeader, `{"iss":"` + iss.URL() + `","exp":9999999999,"x":` + strings.Repeat(`[`, 5000) + strings.Repeat(`]`, 5000) + `}`},
		{kidHeader, `[]`},
		{kidHeader, `null`},
		{`{"alg":"ES256","typ":"at+jwt","kid":"` + strings.Repeat("k", 8<<10) + `"}`, claimsJSON},
	} {
		raw := rawES256(f, iss.key, tc.header, tc.payload)
		f.Add("Bearer "+raw, "")
		f.Add("DPoP "+raw, proof)
	}

	// Garbage and huge values.
	f.Add("", "")
	f.Add("Bearer", "")
	f.Add("Bearer ", "")
	f.Add("DPoP  "+bound, proof)
	f.Add("Bearer ..", "..")
	f.Add("Bearer a.b.c.d.e", "a.b.c")
	f.Add("Bearer "+b64([]byte(kidHeader))+"."+b64([]byte(claimsJSON))+".", "")
	f.Add(`Bearer {"protected":"e30","payload":"e30","signature":"e30"}`, "")
	f.Add("Bearer \x00\xff\r\nX-Injected: 1", "\x00\xff")
	f.Add("Bearer "+strings.Repeat("A", 20<<10), "")
	f.Add("DPoP "+bound, strings.Repeat("A", 20<<10)+".B.C")
	f.Add("DPoP "+strings.Repeat(valid+".", 100), strings.Repeat(proof, 10))

	v := newVerifier(f, iss, clk, nil)
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok, ok := resource.FromContext(r.Context()); !ok || tok == nil {
			panic("handler ran without a token")
		}
		w.WriteHeader(http.StatusOK)
	}))
	sentinels := []error{resource.ErrNoToken, resource.ErrInvalid, resource.ErrDPoP, resource.ErrDPoPNeeded}

	f.Fuzz(func(t *testing.T, authorization, proof string) {
		request := func() *http.Request {
			r := httptest.NewRequest(testMethod, testURL, nil)
			r.Header["Authorization"] = []string{authorization} // unvalidated, as a raw server might pass it
			if proof != "" {
				r.Header[dpop.Header] = []string{proof}
			}
			return r
		}

		tok, err := v.Verify(request())
		if (err == nil) != (tok != nil) {
			t.Fatalf("Verify = %+v, %v: a token exactly when there is no error", tok, err)
		}
		if err != nil {
			matched := false
			for _, s := range sentinels {
				matched = matched || errors.Is(err, s)
			}
			if !matched {
				t.Fatalf("Verify error %v wraps none of the package's sentinels", err)
			}
		} else {
			scheme, _, _ := strings.Cut(authorization, " ")
			if tok.JKT != "" && !strings.EqualFold(scheme, "DPoP") {
				t.Fatalf("bound token accepted with scheme %q", scheme)
			}
			if tok.Expiry.IsZero() {
				t.Fatal("accepted token without exp")
			}
		}

		w := httptest.NewRecorder()
		h.ServeHTTP(w, request())
		switch w.Code {
		case http.StatusOK:
		case http.StatusUnauthorized:
			challenges := w.Header().Values("WWW-Authenticate")
			if len(challenges) == 0 {
				t.Fatal("401 without WWW-Authenticate")
			}
			for _, c := range challenges {
				if strings.ContainsAny(c, "\r\n\x00") {
					t.Fatalf("WWW-Authenticate %q carries control characters", c)
				}
			}
			var body struct {
				Error string `json:"error"`
			}
			if w.Body.Len() == 0 && !strings.Contains(challenges[0], "error=") {
				break // no credentials: challenges without an error code (RFC 6750 §3.1)
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == "" {
				t.Fatalf("401 body %q is not a JSON error", w.Body.Bytes())
			}
		default:
			t.Fatalf("Middleware status %d, want 200 or 401", w.Code)
		}
	})
}
