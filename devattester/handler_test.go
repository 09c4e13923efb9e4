package devattester

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/internal/testkit"
)

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, srv *httptest.Server, method, path string, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func publicJWKJSON(t *testing.T, k *jose.JSONWebKey) string {
	t.Helper()
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHandlerAttest(t *testing.T) {
	a := newAttester(t)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	inst, instJKT := instanceKey(t)

	r := do(t, srv, http.MethodPost, PathAttest, strings.NewReader(`{"client_id":"agent","jwk":`+publicJWKJSON(t, inst)+`}`))
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q", cc)
	}
	var out map[string]string
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("body: %v", err)
	}
	if len(out) != 1 || out["client_attestation"] == "" {
		t.Fatalf("body = %s", r.body)
	}

	// Verify with the key set as a server would fetch it.
	j := do(t, srv, http.MethodGet, PathJWKS, nil)
	if j.status != http.StatusOK || j.header.Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("jwks: %d %q", j.status, j.header.Get("Content-Type"))
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(j.body, &set); err != nil {
		t.Fatalf("jwks body: %v", err)
	}
	v := verifyAttestation(t, out["client_attestation"], set)
	if v.header["typ"] != TypeClientAttestation || v.claims["sub"] != "agent" {
		t.Errorf("header %v claims %v", v.header, v.claims)
	}
	var cnf jose.JSONWebKey
	if err := cnf.UnmarshalJSON(v.cnf); err != nil || jkt(t, &cnf) != instJKT {
		t.Errorf("cnf.jwk = %s (%v), want thumbprint %s", v.cnf, err, instJKT)
	}
}

func TestHandlerJWKS(t *testing.T) {
	a := newAttester(t)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	r := do(t, srv, http.MethodGet, PathJWKS, nil)
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(r.body, &raw); err != nil || len(raw.Keys) != 1 {
		t.Fatalf("jwks = %s (%v)", r.body, err)
	}
	k := raw.Keys[0]
	if k["kid"] != "att-1" || k["alg"] != "ES256" || k["use"] != "sig" || k["kty"] != "EC" {
		t.Errorf("key = %v", k)
	}
	if _, ok := k["d"]; ok {
		t.Error("private key published")
	}
	if h := do(t, srv, http.MethodHead, PathJWKS, nil); h.status != http.StatusOK {
		t.Errorf("HEAD status = %d", h.status)
	}
}

func TestHandlerRejects(t *testing.T) {
	a := newAttester(t)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	inst, _ := instanceKey(t)
	pub := publicJWKJSON(t, inst)
	privEC := publicJWKJSON(t, &jose.JSONWebKey{Key: testkit.ECKey(t)})

	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantAllow  string
		wantInErr  string
	}{
		{name: "private_jwk", method: "POST", path: PathAttest, body: `{"client_id":"agent","jwk":` + privEC + `}`, wantStatus: 400, wantInErr: `private member "d"`},
		{name: "symmetric_jwk", method: "POST", path: PathAttest, body: `{"client_id":"agent","jwk":{"kty":"oct","k":"AAAA"}}`, wantStatus: 400, wantInErr: `private member "k"`},
		{name: "private_member_without_key_material", method: "POST", path: PathAttest, body: `{"client_id":"agent","jwk":{"kty":"EC","crv":"P-256","x":"a","y":"b","oth":[]}}`, wantStatus: 400, wantInErr: `private member "oth"`},
		{name: "malformed_json", method: "POST", path: PathAttest, body: `{"client_id":"agent",`, wantStatus: 400, wantInErr: "JSON object"},
		{name: "not_an_object", method: "POST", path: PathAttest, body: `["agent"]`, wantStatus: 400, wantInErr: "JSON object"},
		{name: "client_id_not_a_string", method: "POST", path: PathAttest, body: `{"client_id":42,"jwk":` + pub + `}`, wantStatus: 400, wantInErr: "JSON object"},
		{name: "trailing_data", method: "POST", path: PathAttest, body: `{"client_id":"agent","jwk":` + pub + `} {}`, wantStatus: 400, wantInErr: "after the JSON object"},
		{name: "empty_body", method: "POST", path: PathAttest, body: ``, wantStatus: 400, wantInErr: "JSON object"},
		{name: "missing_client_id", method: "POST", path: PathAttest, body: `{"jwk":` + pub + `}`, wantStatus: 400, wantInErr: "client_id is missing"},
		{name: "empty_client_id", method: "POST", path: PathAttest, body: `{"client_id":"","jwk":` + pub + `}`, wantStatus: 400, wantInErr: "invalid client_id"},
		{name: "missing_jwk", method: "POST", path: PathAttest, body: `{"client_id":"agent"}`, wantStatus: 400, wantInErr: "jwk is missing"},
		{name: "null_jwk", method: "POST", path: PathAttest, body: `{"client_id":"agent","jwk":null}`, wantStatus: 400, wantInErr: "jwk is missing"},
		{name: "jwk_not_an_object", method: "POST", path: PathAttest, body: `{"client_id":"agent","jwk":"eyJ..."}`, wantStatus: 400, wantInErr: "jwk must be a JSON object"},
		{name: "jwk_off_curve", method: "POST", path: PathAttest, body: `{"client_id":"agent","jwk":{"kty":"EC","crv":"P-256","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}`, wantStatus: 400, wantInErr: "not a valid JWK"},
		{name: "jwk_use_enc", method: "POST", path: PathAttest, body: `{"client_id":"agent","jwk":` + strings.Replace(pub, `{`, `{"use":"enc",`, 1) + `}`, wantStatus: 400, wantInErr: "invalid instance key"},
		{name: "oversize_body", method: "POST", path: PathAttest, body: `{"client_id":"` + strings.Repeat("a", MaxBodyBytes) + `","jwk":` + pub + `}`, wantStatus: 413, wantInErr: "larger than 65536 bytes"},
		{name: "get_attest", method: "GET", path: PathAttest, wantStatus: 405, wantAllow: "POST", wantInErr: "use POST"},
		{name: "put_attest", method: "PUT", path: PathAttest, body: `{}`, wantStatus: 405, wantAllow: "POST", wantInErr: "use POST"},
		{name: "post_jwks", method: "POST", path: PathJWKS, body: `{}`, wantStatus: 405, wantAllow: "GET, HEAD", wantInErr: "use GET"},
		{name: "delete_jwks", method: "DELETE", path: PathJWKS, wantStatus: 405, wantAllow: "GET, HEAD", wantInErr: "use GET"},
		{name: "unknown_path", method: "GET", path: "/attest/", wantStatus: 404, wantInErr: "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			r := do(t, srv, tt.method, tt.path, body)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", r.status, tt.wantStatus, r.body)
			}
			if got := r.header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var e map[string]string
			if err := json.Unmarshal(r.body, &e); err != nil || len(e) != 1 {
				t.Fatalf("error body = %s (%v)", r.body, err)
			}
			if !strings.Contains(e["error"], tt.wantInErr) {
				t.Errorf("error = %q, want it to mention %q", e["error"], tt.wantInErr)
			}
			if strings.Contains(e["error"], "devattester:") {
				t.Errorf("error leaks the Go package prefix: %q", e["error"])
			}
		})
	}
}

// FuzzHandlerAttest posts arbitrary bodies: the handler answers 200, 400 or 413 with a JSON
// body, and whatever it signs binds a public key only.
func FuzzHandlerAttest(f *testing.F) {
	f.Add([]byte(`{"client_id":"agent","jwk":{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}}`))
	f.Add([]byte(`{"client_id":"agent","jwk":{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cLoMe0ArvvEKXK4WkADl3k"}}`))
	f.Add([]byte(`{"client_id":"agent","jwk":{"kty":"oct","k":"AAAA"}}`))
	f.Add([]byte(`{"client_id":"agent","jwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},"jwk":{"kty":"RSA","n":"AQAB","e":"AQAB"}}`))
	f.Add([]byte(`{"client_id":"\u0000","jwk":{}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		a := newAttester(t)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, PathAttest, bytes.NewReader(body))
		a.Handler().ServeHTTP(rec, req)
		var out map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("status %d, body not JSON: %q", rec.Code, rec.Body.String())
		}
		switch rec.Code {
		case http.StatusOK:
			v := verifyAttestation(t, out["client_attestation"], a.PublicJWKS())
			var members map[string]json.RawMessage
			if err := json.Unmarshal(v.cnf, &members); err != nil {
				t.Fatalf("cnf.jwk: %v", err)
			}
			for _, m := range privateJWKMembers {
				if _, ok := members[m]; ok {
					t.Fatalf("signed a cnf.jwk with private member %q", m)
				}
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if out["error"] == "" {
				t.Fatalf("status %d without error message", rec.Code)
			}
		default:
			t.Fatalf("unexpected status %d: %s", rec.Code, rec.Body.String())
		}
	})
}
