package reliability

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/clientauth"
	"github.com/authz/authz/dpop"
)

// maxFuzzInput bounds the total input of one FuzzTokenEndpoint run.
const maxFuzzInput = 8 << 10

// b64 is base64url without padding, for hand-made hostile JWT parts.
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// FuzzTokenEndpoint drives the token endpoint's form and header handling through the real
// handler (server.New(...).Handler(), real SQLite): random bodies, content types, attestation,
// PoP, DPoP and Authorization headers must never produce a 5xx (a recovered panic is a 500), a
// 200 without a token, or a response without X-Content-Type-Options. Seeds are hostile tokens in
// the style of go-jose's fuzz/jwt_test.go: alg none, wrong claim types, duplicate members, a
// private cnf key, deep nesting, HS256 under a public key's kid, comma-joined headers, and forms
// that are not forms.
func FuzzTokenEndpoint(f *testing.F) {
	env := newTestServer(f, false, nil)
	g, err := NewAgent(env.Attester, agentID, env.URL, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	pop, _, err := PoP(g.Instance, env.URL, "", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	form := "application/x-www-form-urlencoded"
	none := b64(`{"alg":"none","typ":"oauth-client-attestation+jwt"}`) + "." + b64(`{"sub":"agent"}`) + "."
	wrongTypes := b64(`{"alg":"ES256","kid":["x"],"typ":7}`) + "." + b64(`{"sub":{"a":1},"exp":"soon","cnf":"jwk","iat":[]}`) + ".AAAA"
	dupMembers := b64(`{"alg":"ES256","alg":"none","kid":"test-attester-1"}`) + "." + b64(`{"sub":"agent","sub":"svc","cnf":{"jwk":{"kty":"EC"}}}`) + ".AAAA"
	privCnf := b64(`{"alg":"ES256","kid":"test-attester-1","typ":"oauth-client-attestation+jwt"}`) + "." +
		b64(`{"sub":"agent","exp":9999999999,"cnf":{"jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}}}`) + ".AAAA"
	deep := b64(`{"alg":"ES256"}`) + "." + b64(strings.Repeat(`{"a":`, 300)+"1"+strings.Repeat("}", 300)) + ".AAAA"
	hmacAsPub := b64(`{"alg":"HS256","kid":"test-attester-1","typ":"oauth-client-attestation+jwt"}`) + "." + b64(`{"sub":"agent"}`) + ".AAAA"
	dpopJWK := b64(`{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"oct","k":"AAAA"}}`) + "." + b64(`{"htm":"POST","htu":"x","jti":"1","iat":1}`) + ".AAAA"
	jwkDP, err := Sign(g.Instance, "dpop+jwt", map[jose.HeaderKey]any{"jwk": jose.JSONWebKey{Key: g.Instance.Public()}}, map[string]any{"htm": "GET", "htu": "http://evil/", "jti": "j", "iat": 1})
	if err != nil {
		f.Fatal(err)
	}

	seeds := []struct {
		body, contentType, attestation, pop, dpop, authorization string
	}{
		{ccForm.Encode(), form, g.Attestation, pop, "", ""},
		{ccForm.Encode(), form, g.Attestation, pop, jwkDP, ""},
		{ccForm.Encode(), form, none, pop, "", ""},
		{ccForm.Encode(), form, wrongTypes, wrongTypes, "", ""},
		{ccForm.Encode(), form, dupMembers, pop, "", ""},
		{ccForm.Encode(), form, privCnf, pop, "", ""},
		{ccForm.Encode(), form, deep, deep, deep, ""},
		{ccForm.Encode(), form, hmacAsPub, pop, "", ""},
		{ccForm.Encode(), form, "", "", dpopJWK, ""},
		{ccForm.Encode(), form, g.Attestation + "," + g.Attestation, pop, "", ""},
		{ccForm.Encode(), form, g.Attestation, pop, "", "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:svc-secret-0123456789"))},
		{"grant_type=client_credentials&client_id=svc&client_secret=svc-secret-0123456789", form, "", "", "", ""},
		{"grant_type=refresh_token&refresh_token=ory_rt_x.y", form, g.Attestation, pop, "", ""},
		{"grant_type=authorization_code&code=x&redirect_uri=%zz", form, "", "", "", "Basic %%%"},
		{"grant_type=client_credentials&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=" + none, form, "", "", "", ""},
		{"%", form, "", "", "", ""},
		{"a=1&a=2&grant_type=client_credentials&grant_type=password", form, "", "", "", "Bearer x"},
		{`{"grant_type":"client_credentials"}`, "application/json", g.Attestation, pop, "", ""},
		{"--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--x--\r\n", "multipart/form-data; boundary=x", g.Attestation, pop, "", ""},
		{"", "", "", "", "", ""},
		{strings.Repeat("&", 500), form, strings.Repeat(".", 500), "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.body, s.contentType, s.attestation, s.pop, s.dpop, s.authorization)
	}

	f.Fuzz(func(t *testing.T, body, contentType, attestation, popHeader, dpopHeader, authorization string) {
		if len(body)+len(contentType)+len(attestation)+len(popHeader)+len(dpopHeader)+len(authorization) > maxFuzzInput {
			return // sizes past the limits are TestHostileInput_Bounds' job; big inputs make minimization crawl
		}
		req := httptest.NewRequest(http.MethodPost, "/oauth2/token", bytes.NewReader([]byte(body)))
		setHeader(req.Header, "Content-Type", contentType)
		setHeader(req.Header, clientauth.HeaderClientAttestation, attestation)
		setHeader(req.Header, clientauth.HeaderClientAttestationPoP, popHeader)
		setHeader(req.Header, dpop.Header, dpopHeader)
		setHeader(req.Header, "Authorization", authorization)
		rec := httptest.NewRecorder()
		env.Handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code == http.StatusOK && !strings.Contains(rec.Body.String(), "access_token") {
			t.Fatalf("200 without a token: %s", rec.Body)
		}
		if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Fatalf("X-Content-Type-Options %q", got)
		}
	})
}

// setHeader sets a header the way a client on the wire could: values net/http would refuse to
// send (control characters) are skipped, empty values are left out.
func setHeader(h http.Header, name, value string) {
	if value == "" || strings.ContainsAny(value, "\r\n\x00") {
		return
	}
	h.Set(name, value)
}
