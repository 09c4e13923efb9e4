package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/csv"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/config"
	"github.com/authz/authz/internal/testkit"
	"github.com/authz/authz/server"
	"github.com/authz/authz/storage"
)

const adminToken = "admin-token-for-tests-0123456789"

// newAdminServer starts authz with the admin API enabled.
func newAdminServer(t *testing.T) *testEnv {
	t.Helper()
	return newTestServer(t, func(c *config.Config) { c.Admin.Token = adminToken })
}

// adminResponse is an admin API answer.
type adminResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r adminResponse) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("decode %d %s: %v", r.Status, r.Body, err)
	}
	return m
}

// problems returns the problems of a 400 answer.
func (r adminResponse) problems(t *testing.T) []string {
	t.Helper()
	var b struct {
		Error    string   `json:"error"`
		Problems []string `json:"problems"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil || r.Status != 400 || b.Error != "invalid_request" {
		t.Fatalf("want 400 invalid_request with problems, got %d %s", r.Status, r.Body)
	}
	return b.Problems
}

// admin calls the admin API with the admin token; body is JSON-encoded unless it is a string
// (sent raw) or nil.
func (e *testEnv) admin(method, path string, body any) adminResponse {
	e.t.Helper()
	return e.adminWith(method, path, body, map[string]string{"Authorization": "Bearer " + adminToken})
}

func (e *testEnv) adminWith(method, path string, body any, headers map[string]string) adminResponse {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return adminResponse{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// publicJWKS returns a JWK set holding key's public half under kid.
func publicJWKS(t *testing.T, key *ecdsa.PrivateKey, kid string) map[string]any {
	t.Helper()
	raw, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: kid, Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// attestWith signs a Client Attestation JWT for clientID and instance with an attester key.
func attestWith(t *testing.T, key *ecdsa.PrivateKey, kid, clientID string, instance *ecdsa.PrivateKey) string {
	t.Helper()
	return testkit.Attestation(t, key, kid, clientID, instance.Public(), time.Now())
}

func TestAdmin_Authorization(t *testing.T) {
	env := newAdminServer(t)
	good := "Bearer " + adminToken
	tests := []struct {
		name       string
		path       string
		headers    map[string]string
		wantStatus int
		wantError  string
		wantChall  string
	}{
		{"no_token", "/admin/attesters", nil, 401, "unauthorized", `Bearer realm="authz-admin"`},
		{"wrong_token", "/admin/attesters", map[string]string{"Authorization": "Bearer admin-token-for-tests-0123456780"}, 401, "invalid_token", `Bearer realm="authz-admin", error="invalid_token"`},
		{"token_prefix", "/admin/attesters", map[string]string{"Authorization": "Bearer admin-token"}, 401, "invalid_token", `error="invalid_token"`},
		// RFC 6750 §3: another scheme is a plain challenge; §3.1: a malformed Bearer is 400.
		{"basic_scheme", "/admin/attesters", map[string]string{"Authorization": "Basic " + adminToken}, 401, "unauthorized", `Bearer realm=`},
		{"bearer_without_token", "/admin/attesters", map[string]string{"Authorization": "Bearer"}, 400, "invalid_request", `error="invalid_request"`},
		{"bearer_blank_token", "/admin/attesters", map[string]string{"Authorization": "Bearer \t"}, 400, "invalid_request", `error="invalid_request"`},
		{"token_in_query_access_token", "/admin/attesters?access_token=" + adminToken, nil, 400, "invalid_request", ""},
		{"token_in_query_even_with_header", "/admin/decisions?access_token=x", map[string]string{"Authorization": good}, 400, "invalid_request", ""},
		{"token_value_in_any_query_parameter", "/admin/decisions?client_id=" + adminToken, map[string]string{"Authorization": good}, 400, "invalid_request", ""},
		{"bearer_case_insensitive", "/admin/attesters", map[string]string{"Authorization": "bearer " + adminToken}, 200, "", ""},
		{"valid", "/admin/clients", map[string]string{"Authorization": good}, 200, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := env.adminWith(http.MethodGet, tc.path, nil, tc.headers)
			if r.Status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.wantStatus, r.Body)
			}
			if tc.wantError != "" {
				if got := r.json(t)["error"]; got != tc.wantError {
					t.Fatalf("error %v, want %s", got, tc.wantError)
				}
			}
			if ch := r.Header.Get("WWW-Authenticate"); !strings.Contains(ch, tc.wantChall) || (tc.wantChall == "" && tc.wantStatus == 401) ||
				(tc.wantError == "unauthorized" && strings.Contains(ch, "error=")) {
				t.Fatalf("WWW-Authenticate %q, want %q", ch, tc.wantChall)
			}
			if r.Status != 200 && strings.Contains(string(r.Body), adminToken) {
				t.Fatal("the answer echoes the token")
			}
		})
	}
	// Writes are refused the same way, and change nothing.
	r := env.adminWith(http.MethodDelete, "/admin/attesters/test-attester", nil, map[string]string{"Authorization": "Bearer wrong"})
	if r.Status != 401 {
		t.Fatalf("unauthenticated delete: %d", r.Status)
	}
	if _, err := env.Store.GetAttester(context.Background(), "test-attester"); err != nil {
		t.Fatalf("attester gone after a refused delete: %v", err)
	}
}

func TestAdmin_DisabledWithoutToken(t *testing.T) {
	env := newTestServer(t, nil) // admin.token empty
	for _, path := range []string{"/admin/attesters", "/admin/clients", "/admin/decisions", "/admin/instances/x", "/admin/ui/", "/admin/ui/login"} {
		t.Run(strings.Trim(strings.ReplaceAll(path, "/", "_"), "_"), func(t *testing.T) {
			r := env.adminWith(http.MethodGet, path, nil, map[string]string{"Authorization": "Bearer " + adminToken})
			if r.Status != 404 {
				t.Fatalf("%s: %d, want 404", path, r.Status)
			}
		})
	}
	r := env.adminWith(http.MethodPost, "/admin/ui/login", "token=x", map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if r.Status != 404 && r.Status != 405 {
		t.Fatalf("console login without admin token: %d", r.Status)
	}
}

func TestAdmin_AttesterCRUD(t *testing.T) {
	env := newAdminServer(t)
	key := newECKey(t)
	create := map[string]any{"id": "acme", "description": "Acme Attester", "jwks": publicJWKS(t, key, "acme-1"),
		"required_claims": map[string]any{"platform": "managed"}}

	r := env.admin(http.MethodPost, "/admin/attesters", create)
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	got := r.json(t)
	if got["id"] != "acme" || got["enabled"] != true || got["source"] != "api" || got["hmac_secret_set"] != false {
		t.Fatalf("created = %v", got)
	}
	if kids, _ := got["kids"].([]any); len(kids) != 1 || kids[0] != "acme-1" {
		t.Fatalf("kids = %v", got["kids"])
	}
	if r := env.admin(http.MethodPost, "/admin/attesters", create); r.Status != 409 {
		t.Fatalf("duplicate create: %d %s", r.Status, r.Body)
	}
	r = env.admin(http.MethodGet, "/admin/attesters/acme", nil)
	if r.Status != 200 || r.json(t)["description"] != "Acme Attester" {
		t.Fatalf("get: %d %s", r.Status, r.Body)
	}
	r = env.admin(http.MethodGet, "/admin/attesters", nil)
	var list struct {
		Attesters []struct {
			ID string `json:"id"`
		} `json:"attesters"`
	}
	if err := json.Unmarshal(r.Body, &list); err != nil || len(list.Attesters) != 2 || list.Attesters[0].ID != "acme" || list.Attesters[1].ID != "test-attester" {
		t.Fatalf("list: %s", r.Body)
	}

	r = env.admin(http.MethodPatch, "/admin/attesters/acme", map[string]any{"enabled": false})
	if r.Status != 200 || r.json(t)["enabled"] != false || r.json(t)["description"] != "Acme Attester" {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	// PUT replaces: the description goes, enabled returns to its default.
	r = env.admin(http.MethodPut, "/admin/attesters/acme", map[string]any{"jwks": publicJWKS(t, key, "acme-1")})
	if got := r.json(t); r.Status != 200 || got["description"] != "" || got["enabled"] != true || got["required_claims"] != nil {
		t.Fatalf("put: %d %s", r.Status, r.Body)
	}
	if r := env.admin(http.MethodPut, "/admin/attesters/acme", map[string]any{"id": "other", "jwks": publicJWKS(t, key, "acme-1")}); len(r.problems(t)) != 1 {
		t.Fatalf("id change: %s", r.Body)
	}
	if r := env.admin(http.MethodPatch, "/admin/attesters/nope", map[string]any{"enabled": false}); r.Status != 404 {
		t.Fatalf("patch missing: %d", r.Status)
	}
	if r := env.admin(http.MethodDelete, "/admin/attesters/acme", nil); r.Status != 204 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if r := env.admin(http.MethodGet, "/admin/attesters/acme", nil); r.Status != 404 {
		t.Fatalf("get after delete: %d", r.Status)
	}
	if r := env.admin(http.MethodDelete, "/admin/attesters/acme", nil); r.Status != 404 {
		t.Fatalf("second delete: %d", r.Status)
	}

	// Every change is audited: who, what, when.
	r = env.admin(http.MethodGet, "/admin/changes?resource=attester&resource_id=acme", nil)
	var changes struct {
		Changes []storage.AdminChange `json:"changes"`
	}
	if err := json.Unmarshal(r.Body, &changes); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, c := range changes.Changes {
		actions = append(actions, c.Action)
		if c.Actor != "api" || c.Remote != "127.0.0.1" || c.Time.IsZero() || c.RequestID == "" {
			t.Fatalf("change record = %+v", c)
		}
	}
	if strings.Join(actions, ",") != "delete,update,disable,create" {
		t.Fatalf("change actions (newest first) = %v", actions)
	}
}

// selfSignedCA returns a PEM CA certificate and a PKCS #8 private key PEM.
func selfSignedCA(t *testing.T, notAfter time.Time) (certPEM, keyPEM string) {
	t.Helper()
	key := newECKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Root"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}))
}

func TestAdmin_AttesterValidation(t *testing.T) {
	env := newAdminServer(t)
	key := newECKey(t)
	pub := publicJWKS(t, key, "k1")
	privateJWK, _ := json.Marshal(jose.JSONWebKey{Key: key, KeyID: "k1"})
	var privateMap map[string]any
	_ = json.Unmarshal(privateJWK, &privateMap)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	edPub, _ := json.Marshal(jose.JSONWebKey{Key: edPriv.Public(), KeyID: "ed-1", Use: "enc"})
	var edMap map[string]any
	_ = json.Unmarshal(edPub, &edMap)
	rootPEM, keyPEM := selfSignedCA(t, time.Now().Add(24*time.Hour))
	expiredPEM, _ := selfSignedCA(t, time.Now().Add(-time.Hour))
	twoKeys := map[string]any{"keys": []any{pub["keys"].([]any)[0], pub["keys"].([]any)[0]}}
	otherCurve := newECKey(t)
	badPoint := publicJWKS(t, otherCurve, "bad")
	badPoint["keys"].([]any)[0].(map[string]any)["x"] = "AAAA"

	tests := []struct {
		name string
		body any
		want []string // substrings, one per expected problem, in order
	}{
		{"missing_id_and_keys", map[string]any{}, []string{"id: required", "keys: give at least one"}},
		{"bad_id", map[string]any{"id": "bad id/../", "jwks": pub}, []string{"id: \"bad id/../\" must be"}},
		{"private_jwk", map[string]any{"id": "a", "jwks": map[string]any{"keys": []any{privateMap}}}, []string{"private key member(s) d present"}},
		{"single_private_jwk", map[string]any{"id": "a", "jwks": privateMap}, []string{"jwks.keys[0] (kid \"k1\"): private key member(s) d"}},
		{"symmetric_key", map[string]any{"id": "a", "jwks": map[string]any{"keys": []any{map[string]any{"kty": "oct", "k": "c2VjcmV0"}}}}, []string{"symmetric (oct) keys are not allowed"}},
		{"invalid_point", map[string]any{"id": "a", "jwks": badPoint}, []string{"not a valid public"}},
		{"encryption_key", map[string]any{"id": "a", "jwks": map[string]any{"keys": []any{edMap}}}, []string{"use is \"enc\""}},
		{"empty_set", map[string]any{"id": "a", "jwks": map[string]any{"keys": []any{}}}, []string{"holds no keys"}},
		{"duplicate_kid_in_set", map[string]any{"id": "a", "jwks": twoKeys}, []string{"kid \"k1\" appears twice"}},
		{"kid_of_another_attester", map[string]any{"id": "a", "jwks": publicJWKS(t, key, testAttesterKID)}, []string{"already used by attester test-attester"}},
		{"jwks_uri_plain_http", map[string]any{"id": "a", "jwks_uri": "http://attester.example/jwks"}, []string{"jwks_uri: \"http://attester.example/jwks\": only https"}},
		{"jku_twice_and_relative", map[string]any{"id": "a", "jku_allowlist": []string{"https://a.example/k", "https://a.example/k", "/k"}}, []string{"jku_allowlist[1]: \"https://a.example/k\" is listed twice", "jku_allowlist[2]: \"/k\" is not an absolute URL"}},
		{"x5c_not_pem", map[string]any{"id": "a", "x5c_roots": "hello"}, []string{"x5c_roots: no PEM block found"}},
		{"x5c_private_key", map[string]any{"id": "a", "x5c_roots": rootPEM + keyPEM}, []string{"block 2 is a private key"}},
		{"x5c_expired", map[string]any{"id": "a", "x5c_roots": expiredPEM}, []string{"(Test Root) expired on"}},
		{"required_claims_not_object", map[string]any{"id": "a", "jwks": pub, "required_claims": []any{"x"}}, []string{"required_claims: must be a JSON object"}},
		{"hmac_secret_short", map[string]any{"id": "a", "hmac_secret": "short"}, []string{"hmac_secret: must be at least 32 bytes"}},
		{"unknown_member", map[string]any{"id": "a", "jwks": pub, "colour": "blue"}, []string{"unknown member \"colour\""}},
		{"wrong_type", map[string]any{"id": "a", "jwks": pub, "enabled": "yes"}, []string{"enabled: must be a boolean, not a JSON string"}},
		{"not_json", "id=a", []string{"not valid JSON"}},
		{"empty_body", "", []string{"the request body is empty"}},
		{"trailing_data", `{"id":"a","jwks_uri":"https://a.example/k"} {}`, []string{"exactly one JSON object"}},
		{"member_twice", `{"id":"a","id":"b","jwks_uri":"https://a.example/k"}`, []string{"names a member twice"}},
		{"member_twice_escaped", `{"id":"a","\u0069d":"b","jwks_uri":"https://a.example/k"}`, []string{"names a member twice"}},
		{"nested_too_deep", `{"id":"a","required_claims":` + strings.Repeat(`{"x":`, 40) + `1` + strings.Repeat(`}`, 40) + `}`, []string{"nested too deeply"}},
		{"every_problem_listed", map[string]any{"id": "", "hmac_secret": "short", "jwks_uri": "ftp://x", "description": strings.Repeat("d", 501)},
			[]string{"id: required", "description: at most 500", "jwks_uri: \"ftp://x\"", "hmac_secret: must be at least 32"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := env.admin(http.MethodPost, "/admin/attesters", tc.body)
			got := r.problems(t)
			if len(got) != len(tc.want) {
				t.Fatalf("problems = %q, want %d like %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Fatalf("problem %d = %q, want it to contain %q (all: %q)", i, got[i], w, got)
				}
			}
		})
	}
	// Nothing was stored, nothing was audited.
	list, err := env.Store.ListAttesters(context.Background())
	if err != nil || len(list) != 1 {
		t.Fatalf("attesters after refused creates: %v %v", list, err)
	}
	t.Run("valid_x5c_root_and_required_claims", func(t *testing.T) {
		r := env.admin(http.MethodPost, "/admin/attesters", map[string]any{"id": "pki", "x5c_roots": rootPEM, "required_claims": map[string]any{"aal": 2}})
		if r.Status != 201 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
	t.Run("content_type_must_be_json", func(t *testing.T) {
		r := env.adminWith(http.MethodPost, "/admin/attesters", `{"id":"x","jwks_uri":"https://a.example/k"}`,
			map[string]string{"Authorization": "Bearer " + adminToken, "Content-Type": "text/plain"})
		if got := r.problems(t); len(got) != 1 || !strings.Contains(got[0], "Content-Type: application/json") {
			t.Fatalf("problems = %q", got)
		}
	})
}

func TestAdmin_ClientCRUDAndSecret(t *testing.T) {
	env := newAdminServer(t)
	r := env.admin(http.MethodPost, "/admin/clients", map[string]any{
		"client_id": "batch", "description": "Nightly batch", "token_endpoint_auth_method": "client_secret_basic",
		"grant_types": []string{"client_credentials"}, "scopes": []string{"read"}, "require_attestation": false,
	})
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	created := r.json(t)
	secret, _ := created["client_secret"].(string)
	if len(secret) != 43 || created["has_secret"] != true || created["attested"] != false || created["source"] != "api" {
		t.Fatalf("created = %v", created)
	}
	rec, err := env.Store.GetClientRecord(context.Background(), "batch")
	if err != nil || !strings.HasPrefix(string(rec.SecretHash), "$2") || strings.Contains(string(rec.SecretHash), secret) {
		t.Fatalf("stored secret is not a bcrypt hash: %q %v", rec.SecretHash, err)
	}
	token := func(sec string) tokenResponse {
		req, _ := http.NewRequest(http.MethodPost, env.URL+"/oauth2/token", strings.NewReader(ccForm.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("batch", sec)
		return env.do(req)
	}
	for range 2 { // the second comparison is answered by the verified-secret cache (S19)
		if tr := token(secret); tr.Status != 200 {
			t.Fatalf("token with the generated secret: %d %s %s", tr.Status, tr.Error, tr.Description)
		}
	}
	// The secret is shown once: never again on GET or list.
	for _, path := range []string{"/admin/clients/batch", "/admin/clients"} {
		if r := env.admin(http.MethodGet, path, nil); r.Status != 200 || bytes.Contains(r.Body, []byte(secret)) || bytes.Contains(r.Body, []byte("client_secret\"")) {
			t.Fatalf("GET %s leaks the secret: %s", path, r.Body)
		}
	}
	r = env.admin(http.MethodPost, "/admin/clients/batch/secret", nil)
	newSecret, _ := r.json(t)["client_secret"].(string)
	if r.Status != 200 || newSecret == "" || newSecret == secret {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	if tr := token(secret); tr.Status != 401 {
		t.Fatalf("old secret after rotation: %d", tr.Status)
	}
	if tr := token(newSecret); tr.Status != 200 {
		t.Fatalf("new secret: %d %s", tr.Status, tr.Description)
	}

	r = env.admin(http.MethodPatch, "/admin/clients/batch", map[string]any{"scopes": []string{"read", "write"}, "require_attestation": true, "attesters": []string{"test-attester"}})
	if got := r.json(t); r.Status != 200 || got["attested"] != true || len(got["scopes"].([]any)) != 2 || got["description"] != "Nightly batch" {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	// The hash survives a PATCH: the secret still works (now with attestation required, it is refused for lack of it).
	if tr := token(newSecret); tr.Status == 200 {
		t.Fatalf("require_attestation not applied: %d", tr.Status)
	}
	r = env.admin(http.MethodPut, "/admin/clients/batch", map[string]any{"token_endpoint_auth_method": "attest_jwt_client_auth", "grant_types": []string{"client_credentials"}})
	if got := r.json(t); r.Status != 200 || got["has_secret"] != false || got["client_secret"] != nil || got["description"] != "" {
		t.Fatalf("put to attestation: %d %s", r.Status, r.Body)
	}
	if r := env.admin(http.MethodPost, "/admin/clients/batch/secret", nil); len(r.problems(t)) != 1 {
		t.Fatalf("rotate without a secret method: %s", r.Body)
	}
	if r := env.admin(http.MethodPost, "/admin/clients", map[string]any{"client_id": "batch", "token_endpoint_auth_method": "none", "grant_types": []string{"refresh_token"}}); r.Status != 409 {
		t.Fatalf("duplicate: %d %s", r.Status, r.Body)
	}
	if r := env.admin(http.MethodDelete, "/admin/clients/batch", nil); r.Status != 204 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if r := env.admin(http.MethodGet, "/admin/clients/batch", nil); r.Status != 404 {
		t.Fatalf("get after delete: %d", r.Status)
	}
	changes, err := env.Store.ListAdminChanges(context.Background(), storage.AdminChangeFilter{Resource: "client", ResourceID: "batch"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, c := range changes {
		actions = append(actions, c.Action)
		if strings.Contains(c.Detail, secret) || strings.Contains(c.Detail, newSecret) {
			t.Fatalf("a secret reached the change log: %+v", c)
		}
	}
	if strings.Join(actions, ",") != "delete,update,update,rotate_secret,create" {
		t.Fatalf("client change actions = %v", actions)
	}
}

func TestAdmin_ClientValidation(t *testing.T) {
	env := newAdminServer(t)
	key := newECKey(t)
	privateJWK, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "c1"}}})
	var privateSet map[string]any
	_ = json.Unmarshal(privateJWK, &privateSet)
	tests := []struct {
		name string
		body any
		want []string
	}{
		{"empty", map[string]any{}, []string{"client_id: required", "token_endpoint_auth_method: required", "grant_types: at least one"}},
		{"unknown_method_and_grant", map[string]any{"client_id": "c", "token_endpoint_auth_method": "magic", "grant_types": []string{"implicit"}},
			[]string{"token_endpoint_auth_method: \"magic\" is not one of", "grant_types[0]: \"implicit\" is not one of"}},
		{"secret_given", map[string]any{"client_id": "c", "token_endpoint_auth_method": "client_secret_post", "grant_types": []string{"client_credentials"}, "client_secret": "mine-mine-mine-mine"},
			[]string{"client_secret: authz generates client secrets"}},
		{"public_client_credentials", map[string]any{"client_id": "c", "token_endpoint_auth_method": "none", "grant_types": []string{"client_credentials"}},
			[]string{"a public client (none) cannot use client_credentials"}},
		{"code_without_redirect", map[string]any{"client_id": "c", "token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code"}},
			[]string{"redirect_uris: required for authorization_code"}},
		{"bad_redirect", map[string]any{"client_id": "c", "token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code"}, "redirect_uris": []string{"/cb", "https://a.example/cb#frag"}},
			[]string{"redirect_uris[0]", "redirect_uris[1]"}},
		{"script_and_cleartext_redirects", map[string]any{"client_id": "c", "token_endpoint_auth_method": "client_secret_basic", "grant_types": []string{"authorization_code"},
			"redirect_uris": []string{"javascript:alert(document.domain)//", "http://evil.example/cb", "data:text/html,x", "https://u:p@a.example/cb", "https://a.example/cb#", "com.example.app:/cb"}},
			[]string{"redirect_uris[0]", "redirect_uris[1]: \"http://evil.example/cb\": http is allowed only for loopback hosts", "redirect_uris[2]", "redirect_uris[3]", "redirect_uris[4]", "redirect_uris[5]"}},
		{"private_key_jwt_without_jwks", map[string]any{"client_id": "c", "token_endpoint_auth_method": "private_key_jwt", "grant_types": []string{"client_credentials"}},
			[]string{"jwks: required for private_key_jwt"}},
		{"private_key_jwt_private_jwks", map[string]any{"client_id": "c", "token_endpoint_auth_method": "private_key_jwt", "grant_types": []string{"client_credentials"}, "jwks": privateSet},
			[]string{"private key member(s) d present"}},
		{"jwks_for_attestation_client", map[string]any{"client_id": "c", "token_endpoint_auth_method": "attest_jwt_client_auth", "grant_types": []string{"client_credentials"}, "jwks": publicJWKS(t, key, "x")},
			[]string{"jwks: only for private_key_jwt"}},
		{"require_attestation_with_attestation", map[string]any{"client_id": "c", "token_endpoint_auth_method": "attest_jwt_client_auth", "grant_types": []string{"client_credentials"}, "require_attestation": true},
			[]string{"require_attestation: for non-attestation methods"}},
		{"unknown_attester_and_bad_scope", map[string]any{"client_id": "c", "token_endpoint_auth_method": "attest_jwt_client_auth", "grant_types": []string{"client_credentials"}, "attesters": []string{"ghost"}, "scopes": []string{"read", "bad scope", "read"}},
			[]string{"scopes[1]: \"bad scope\" is not a scope token", "scopes[2]: \"read\" is listed twice", "attesters[0]: attester \"ghost\" does not exist"}},
		{"bad_signing_alg_and_duplicate_grant", map[string]any{"client_id": "c", "token_endpoint_auth_method": "attest_jwt_client_auth", "token_endpoint_auth_signing_alg": "HS256", "grant_types": []string{"client_credentials", "client_credentials"}},
			[]string{"token_endpoint_auth_signing_alg: \"HS256\"", "grant_types[1]: \"client_credentials\" is listed twice"}},
		{"bad_client_id", map[string]any{"client_id": "<script>", "token_endpoint_auth_method": "attest_jwt_client_auth", "grant_types": []string{"client_credentials"}},
			[]string{"client_id: \"<script>\" must be"}},
		{"wrong_types", map[string]any{"client_id": "c", "grant_types": "client_credentials"}, []string{"grant_types: must be an array, not a JSON string"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := env.admin(http.MethodPost, "/admin/clients", tc.body).problems(t)
			if len(got) != len(tc.want) {
				t.Fatalf("problems = %q, want %d like %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Fatalf("problem %d = %q, want %q (all %q)", i, got[i], w, got)
				}
			}
		})
	}
	if r := env.admin(http.MethodPatch, "/admin/clients/agent", map[string]any{"grant_types": []string{}}); len(r.problems(t)) != 1 {
		t.Fatalf("patch to no grants: %s", r.Body)
	}
	if r := env.admin(http.MethodPatch, "/admin/clients/nope", map[string]any{"scopes": []string{"x"}}); r.Status != 404 {
		t.Fatalf("patch missing client: %d", r.Status)
	}
}

// seedDecisions makes real requests: three accepted (two instances), two rejected.
func seedDecisions(t *testing.T, env *testEnv) (inst1, inst2 *ecdsa.PrivateKey) {
	t.Helper()
	inst1, inst2 = newECKey(t), newECKey(t)
	for _, inst := range []*ecdsa.PrivateKey{inst1, inst1, inst2} {
		if r := env.post("/oauth2/token", ccForm, env.attestedHeaders(agentID, inst, "")); r.Status != 200 {
			t.Fatalf("token: %d %s", r.Status, r.Description)
		}
	}
	bad := env.attestedHeaders(agentID, inst2, "")
	bad["OAuth-Client-Attestation-PoP"] = env.pop(newECKey(t), "") // signed by the wrong key
	if r := env.post("/oauth2/token", ccForm, bad); r.Status != 401 {
		t.Fatalf("bad PoP: %d", r.Status)
	}
	other := env.attestedHeaders("=HYPERLINK(\"x\")", inst1, "")
	if r := env.post("/oauth2/token", withClientID("=HYPERLINK(\"x\")"), other); r.Status != 401 {
		t.Fatalf("unknown client: %d", r.Status)
	}
	return inst1, inst2
}

func TestAdmin_Decisions(t *testing.T) {
	env := newAdminServer(t)
	inst1, _ := seedDecisions(t, env)
	type page struct {
		Decisions []struct {
			ID          string `json:"id"`
			ClientID    string `json:"client_id"`
			Decision    string `json:"decision"`
			Reason      string `json:"reason"`
			InstanceJKT string `json:"instance_jkt"`
			Attester    string `json:"attester"`
		} `json:"decisions"`
		NextCursor string `json:"next_cursor"`
	}
	get := func(query string) page {
		t.Helper()
		r := env.admin(http.MethodGet, "/admin/decisions"+query, nil)
		if r.Status != 200 {
			t.Fatalf("decisions%s: %d %s", query, r.Status, r.Body)
		}
		var p page
		if err := json.Unmarshal(r.Body, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	filters := []struct {
		name  string
		query string
		want  int
	}{
		{"all", "", 5},
		{"rejected", "?decision=rejected", 2},
		{"accepted", "?decision=accepted", 3},
		{"by_client", "?client_id=agent", 4},
		{"by_attester", "?attester=test-attester", 4},
		// inst1's two tokens and the attempt with its key for an unregistered client (its
		// record carries the thumbprint read from the unverified attestation, profile §7).
		{"by_instance", "?instance_jkt=" + thumbprint(t, inst1), 3},
		{"by_reason", "?reason=ok", 3},
		{"since_duration", "?since=1h", 5},
		{"since_future", "?since=" + future, 0},
		{"until_future", "?until=" + future, 5},
		{"combined", "?decision=rejected&client_id=agent", 1},
	}
	for _, tc := range filters {
		t.Run(tc.name, func(t *testing.T) {
			if p := get(tc.query); len(p.Decisions) != tc.want || p.NextCursor != "" {
				t.Fatalf("%d decisions (next %q), want %d", len(p.Decisions), p.NextCursor, tc.want)
			}
		})
	}
	t.Run("cursor_pagination", func(t *testing.T) {
		seen := map[string]bool{}
		cursor, pages := "", 0
		for {
			q := "?limit=2"
			if cursor != "" {
				q += "&cursor=" + cursor
			}
			p := get(q)
			pages++
			for _, d := range p.Decisions {
				if seen[d.ID] {
					t.Fatalf("decision %s on two pages", d.ID)
				}
				seen[d.ID] = true
			}
			if p.NextCursor == "" {
				break
			}
			cursor = p.NextCursor
		}
		if len(seen) != 5 || pages != 3 {
			t.Fatalf("%d decisions over %d pages", len(seen), pages)
		}
	})
	invalid := []struct {
		name, query string
		want        []string
	}{
		{"bad_decision", "?decision=maybe", []string{"decision: \"maybe\""}},
		{"limit_zero", "?limit=0", []string{"limit: \"0\""}},
		{"limit_too_big", "?limit=5000", []string{"limit: \"5000\" must be a number from 1 to 1000"}},
		{"bad_cursor", "?cursor=abc", []string{"cursor: not a cursor"}},
		{"bad_since", "?since=yesterday", []string{"since: \"yesterday\""}},
		{"since_after_until", "?since=" + future + "&until=1h", []string{"since: must be before until"}},
		{"unknown_parameter", "?clientid=agent", []string{"clientid: unknown parameter"}},
		{"repeated_parameter", "?decision=accepted&decision=rejected", []string{"decision: given 2 times"}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			got := env.admin(http.MethodGet, "/admin/decisions"+tc.query, nil).problems(t)
			if len(got) != len(tc.want) || !strings.Contains(got[0], tc.want[0]) {
				t.Fatalf("problems = %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("export_json_is_the_cli_shape", func(t *testing.T) {
		r := env.admin(http.MethodGet, "/admin/decisions/export?format=json&decision=accepted", nil)
		if r.Status != 200 || !strings.Contains(r.Header.Get("Content-Disposition"), "attachment") {
			t.Fatalf("export: %d %v", r.Status, r.Header)
		}
		var got []map[string]any
		if err := json.Unmarshal(r.Body, &got); err != nil || len(got) != 3 {
			t.Fatalf("export body %s: %v", r.Body, err)
		}
		want := []string{"time", "endpoint", "client_id", "verified_client_id", "attester", "resolution", "instance_jkt", "pop_method", "pop_aud", "challenge", "decision", "reason", "token_request_id"}
		if len(got[0]) != len(want) {
			t.Fatalf("members %v, want exactly %v", got[0], want)
		}
		for _, m := range want {
			if _, ok := got[0][m]; !ok {
				t.Fatalf("member %s missing from %v", m, got[0])
			}
		}
	})
	t.Run("export_csv", func(t *testing.T) {
		r := env.admin(http.MethodGet, "/admin/decisions/export?format=csv", nil)
		if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") {
			t.Fatalf("csv: %d %v", r.Status, r.Header)
		}
		rows, err := csv.NewReader(bytes.NewReader(r.Body)).ReadAll()
		if err != nil || len(rows) != 6 || rows[0][0] != "time" || rows[0][12] != "token_request_id" {
			t.Fatalf("csv rows %q: %v", rows, err)
		}
		var formula bool
		for _, row := range rows[1:] {
			if strings.HasPrefix(row[2], "=") {
				t.Fatalf("a client id reached the CSV as a formula: %q", row[2])
			}
			formula = formula || row[2] == "'=HYPERLINK(\"x\")"
		}
		if !formula {
			t.Fatalf("the hostile client id was not defused: %q", rows)
		}
	})
	t.Run("export_limit_and_bad_format", func(t *testing.T) {
		r := env.admin(http.MethodGet, "/admin/decisions/export?limit=2", nil)
		var got []map[string]any
		if err := json.Unmarshal(r.Body, &got); err != nil || len(got) != 2 {
			t.Fatalf("limited export: %s", r.Body)
		}
		if p := env.admin(http.MethodGet, "/admin/decisions/export?format=xml", nil).problems(t); len(p) != 1 {
			t.Fatalf("problems %q", p)
		}
	})
}

func TestAdmin_InstanceRevocation(t *testing.T) {
	env := newAdminServer(t)
	inst := newECKey(t)
	jkt := thumbprint(t, inst)
	first := env.post("/oauth2/token", ccForm, env.attestedHeaders(agentID, inst, ""))
	if first.Status != 200 {
		t.Fatalf("token: %d %s", first.Status, first.Description)
	}
	if got := introspect(t, env, first.AccessToken); got["active"] != true {
		t.Fatalf("introspection before revocation = %v", got)
	}
	r := env.admin(http.MethodGet, "/admin/instances/"+jkt, nil)
	got := r.json(t)
	if r.Status != 200 || got["known"] != true || got["revoked"] != false || got["active_tokens"] != float64(1) ||
		got["decisions"].(map[string]any)["accepted"] != float64(1) || got["first_seen"] == nil {
		t.Fatalf("instance before: %d %s", r.Status, r.Body)
	}
	if cl := got["clients"].([]any); len(cl) != 1 || cl[0] != agentID {
		t.Fatalf("clients = %v", cl)
	}
	if at := got["attesters"].([]any); len(at) != 1 || at[0] != "test-attester" {
		t.Fatalf("attesters = %v", at)
	}

	r = env.admin(http.MethodPost, "/admin/instances/"+jkt+"/revoke", map[string]any{"reason": "laptop stolen"})
	if got := r.json(t); r.Status != 200 || got["revoked"] != true || got["revoke_reason"] != "laptop stolen" || got["active_tokens"] != float64(0) {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	// Refused at once on this replica: 401 invalid_client, audited as instance_revoked.
	again := env.post("/oauth2/token", ccForm, env.attestedHeaders(agentID, inst, ""))
	if again.Status != 401 || again.Error != "invalid_client" {
		t.Fatalf("token after revocation: %d %s", again.Status, again.Error)
	}
	if d := env.decisions()[0]; d.Decision != "rejected" || d.Reason != "instance_revoked" || d.InstanceJKT != jkt {
		t.Fatalf("decision after revocation = %+v", d)
	}
	if got := introspect(t, env, first.AccessToken); got["active"] != false {
		t.Fatalf("introspection after revocation = %v", got)
	}
	// Another instance of the same client is unaffected.
	if r := env.post("/oauth2/token", ccForm, env.attestedHeaders(agentID, newECKey(t), "")); r.Status != 200 {
		t.Fatalf("another instance: %d %s", r.Status, r.Description)
	}
	changes, err := env.Store.ListAdminChanges(context.Background(), storage.AdminChangeFilter{Resource: "instance"})
	if err != nil || len(changes) != 1 || changes[0].ResourceID != jkt || !strings.Contains(changes[0].Detail, "laptop stolen") {
		t.Fatalf("change log = %+v %v", changes, err)
	}
	r = env.admin(http.MethodGet, "/admin/instances", nil)
	if rev := r.json(t)["revoked"].([]any); len(rev) != 1 || rev[0] != jkt {
		t.Fatalf("revoked list = %s", r.Body)
	}

	tests := []struct {
		name, method, path string
		body               any
		wantStatus         int
	}{
		{"unknown_key_is_404", http.MethodGet, "/admin/instances/" + thumbprint(t, newECKey(t)), nil, 404},
		{"not_a_thumbprint", http.MethodGet, "/admin/instances/abc", nil, 400},
		{"revoke_not_a_thumbprint", http.MethodPost, "/admin/instances/abc/revoke", nil, 400},
		{"revoke_reason_too_long", http.MethodPost, "/admin/instances/" + jkt + "/revoke", map[string]any{"reason": strings.Repeat("x", 501)}, 400},
		{"revoke_unknown_member", http.MethodPost, "/admin/instances/" + jkt + "/revoke", map[string]any{"why": "x"}, 400},
		{"revoke_in_advance_without_body", http.MethodPost, "/admin/instances/" + thumbprint(t, newECKey(t)) + "/revoke", nil, 200},
		{"revoke_twice", http.MethodPost, "/admin/instances/" + jkt + "/revoke", nil, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r := env.admin(tc.method, tc.path, tc.body); r.Status != tc.wantStatus {
				t.Fatalf("%d %s, want %d", r.Status, r.Body, tc.wantStatus)
			}
		})
	}
}

// TestAdmin_EndToEnd_AttesterLifecycle adds an attester and a client through the API, obtains a
// token with an attestation the new attester signed, disables the attester and is refused,
// enables it again and is accepted.
func TestAdmin_EndToEnd_AttesterLifecycle(t *testing.T) {
	env := newAdminServer(t)
	attesterKey := newECKey(t)
	if r := env.admin(http.MethodPost, "/admin/attesters", map[string]any{"id": "acme", "description": "Acme Attester", "jwks": publicJWKS(t, attesterKey, "acme-2026")}); r.Status != 201 {
		t.Fatalf("add attester: %d %s", r.Status, r.Body)
	}
	if r := env.admin(http.MethodPost, "/admin/clients", map[string]any{"client_id": "acme-agent", "description": "Acme Agent",
		"token_endpoint_auth_method": "attest_jwt_client_auth", "grant_types": []string{"client_credentials"}, "scopes": []string{"read"},
		"attesters": []string{"acme"}}); r.Status != 201 {
		t.Fatalf("add client: %d %s", r.Status, r.Body)
	}
	inst := newECKey(t)
	headers := func() map[string]string {
		return map[string]string{
			"OAuth-Client-Attestation":     attestWith(t, attesterKey, "acme-2026", "acme-agent", inst),
			"OAuth-Client-Attestation-PoP": env.pop(inst, ""),
		}
	}
	r := env.post("/oauth2/token", ccForm, headers())
	if r.Status != 200 {
		t.Fatalf("token with the new attester: %d %s %s", r.Status, r.Error, r.Description)
	}
	if ev, _ := jwtClaims(t, r.AccessToken)["client_attestation"].(map[string]any); ev["attester"] != "acme" {
		t.Fatalf("client_attestation = %v", ev)
	}
	// The test attester may not vouch for acme-agent (attesters: [acme]).
	other := env.post("/oauth2/token", ccForm, map[string]string{
		"OAuth-Client-Attestation": env.attestation("acme-agent", inst), "OAuth-Client-Attestation-PoP": env.pop(inst, ""),
	})
	if other.Status != 401 {
		t.Fatalf("attester not allowed for the client: %d", other.Status)
	}

	if r := env.admin(http.MethodPatch, "/admin/attesters/acme", map[string]any{"enabled": false}); r.Status != 200 {
		t.Fatalf("disable: %d %s", r.Status, r.Body)
	}
	refused := env.post("/oauth2/token", ccForm, headers())
	if refused.Status != 401 || refused.Error != "invalid_client" {
		t.Fatalf("token after disabling: %d %s", refused.Status, refused.Error)
	}
	if d := env.decisions()[0]; d.Decision != "rejected" || d.ClientID != "acme-agent" {
		t.Fatalf("decision = %+v", d)
	}
	if r := env.admin(http.MethodPatch, "/admin/attesters/acme", map[string]any{"enabled": true}); r.Status != 200 {
		t.Fatalf("enable: %d %s", r.Status, r.Body)
	}
	if r := env.post("/oauth2/token", ccForm, headers()); r.Status != 200 {
		t.Fatalf("token after enabling: %d %s", r.Status, r.Description)
	}
	if r := env.admin(http.MethodDelete, "/admin/attesters/acme", nil); r.Status != 204 {
		t.Fatalf("delete: %d", r.Status)
	}
	if r := env.post("/oauth2/token", ccForm, headers()); r.Status != 401 {
		t.Fatalf("token after deleting the attester: %d", r.Status)
	}
}

// TestAdmin_ChangesReachTheDatabaseGeneration shows that an API change bumps the database
// generation, which every other replica polls (trustPollInterval) to reload without a restart.
func TestAdmin_ChangesReachTheDatabaseGeneration(t *testing.T) {
	env := newAdminServer(t)
	ctx := context.Background()
	before, err := env.Store.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := env.admin(http.MethodPatch, "/admin/attesters/test-attester", map[string]any{"description": "renamed"}); r.Status != 200 {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	after, err := env.Store.Generation(ctx)
	if err != nil || after <= before {
		t.Fatalf("generation %d -> %d (%v): other replicas would not reload", before, after, err)
	}
}

// TestAdmin_PathIDsDecodedOnce: an id is unescaped exactly once, so /admin/clients/pct%2541
// names the client "pct%41", never "pctA" (ids from the CLI or the config file may hold '%').
func TestAdmin_PathIDsDecodedOnce(t *testing.T) {
	env := newAdminServer(t)
	ctx := context.Background()
	for _, id := range []string{"pct%41", "pctA"} {
		if err := env.Store.UpsertClient(ctx, &storage.Client{ID: id, TokenEndpointAuthMethod: "client_secret_basic",
			GrantTypes: []string{"client_credentials"}, SecretHash: []byte("$2a$10$xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), Source: "cli"}); err != nil {
			t.Fatal(err)
		}
	}
	if r := env.admin(http.MethodGet, "/admin/clients/pct%2541", nil); r.Status != 200 || r.json(t)["client_id"] != "pct%41" {
		t.Fatalf("GET /admin/clients/pct%%2541: %d %s", r.Status, r.Body)
	}
	if r := env.admin(http.MethodDelete, "/admin/clients/pct%2541", nil); r.Status != 204 {
		t.Fatalf("DELETE /admin/clients/pct%%2541: %d %s", r.Status, r.Body)
	}
	if _, err := env.Store.GetClientRecord(ctx, "pctA"); err != nil {
		t.Fatalf("deleting pct%%41 removed pctA: %v", err)
	}
	if _, err := env.Store.GetClientRecord(ctx, "pct%41"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("pct%%41 after its deletion: %v", err)
	}
	// An escaped slash still reaches the right record (echo routes on RawPath then).
	if err := env.Store.UpsertClient(ctx, &storage.Client{ID: "a/b", TokenEndpointAuthMethod: "none",
		GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{webRedirect}, Source: "cli"}); err != nil {
		t.Fatal(err)
	}
	if r := env.admin(http.MethodGet, "/admin/clients/a%2Fb", nil); r.Status != 200 || r.json(t)["client_id"] != "a/b" {
		t.Fatalf("GET /admin/clients/a%%2Fb: %d %s", r.Status, r.Body)
	}
}

// TestAdmin_ConcurrentWrites: writes checked outside their transaction still cannot overwrite
// or resurrect: of concurrent creates of one id exactly one is 201 (the others 409), and a
// secret rotation racing a delete never brings the client back.
func TestAdmin_ConcurrentWrites(t *testing.T) {
	env := newAdminServer(t)
	body := map[string]any{"client_id": "race1", "token_endpoint_auth_method": "client_secret_basic", "grant_types": []string{"client_credentials"}}
	const n = 10
	statuses := make(chan int, n)
	for range n {
		go func() { statuses <- env.admin(http.MethodPost, "/admin/clients", body).Status }()
	}
	created := 0
	for range n {
		switch s := <-statuses; s {
		case 201:
			created++
		case 409:
		default:
			t.Errorf("concurrent create: %d, want 201 or 409", s)
		}
	}
	if created != 1 {
		t.Fatalf("%d concurrent creates of race1 answered 201, want 1", created)
	}

	for i := range 5 {
		id := fmt.Sprintf("zombie%d", i)
		if r := env.admin(http.MethodPost, "/admin/clients", map[string]any{"client_id": id, "token_endpoint_auth_method": "client_secret_basic",
			"grant_types": []string{"client_credentials"}}); r.Status != 201 {
			t.Fatalf("create %s: %d %s", id, r.Status, r.Body)
		}
		done := make(chan int, 1)
		go func() { done <- env.admin(http.MethodPost, "/admin/clients/"+id+"/secret", nil).Status }()
		if r := env.admin(http.MethodDelete, "/admin/clients/"+id, nil); r.Status != 204 {
			t.Fatalf("delete %s: %d", id, r.Status)
		}
		if s := <-done; s != 200 && s != 404 {
			t.Errorf("rotation racing a delete: %d, want 200 or 404", s)
		}
		if r := env.admin(http.MethodGet, "/admin/clients/"+id, nil); r.Status != 404 {
			t.Fatalf("%s after delete and a racing rotation: %d, want 404 (it came back)", id, r.Status)
		}
	}
}

// TestAdmin_ConfigRecordsRestoredAtStart: the configuration file's attesters and clients are
// written at every start (interface.md); an admin change to them that start undoes — here a
// disabled attester and a deleted client — is recorded in the change log by the actor "config",
// so the log never claims a state the database no longer has.
func TestAdmin_ConfigRecordsRestoredAtStart(t *testing.T) {
	env := newAdminServer(t)
	ctx := context.Background()
	if r := env.admin(http.MethodPatch, "/admin/attesters/test-attester", map[string]any{"enabled": false}); r.Status != 200 {
		t.Fatalf("disable: %d %s", r.Status, r.Body)
	}
	if r := env.admin(http.MethodDelete, "/admin/clients/"+secretClientID, nil); r.Status != 204 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	// What every start runs.
	if err := server.SyncConfig(ctx, env.Config, env.Store, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	if a, err := env.Store.GetAttester(ctx, "test-attester"); err != nil || !a.Enabled {
		t.Fatalf("attester after start: %+v %v, want enabled again", a, err)
	}
	if _, err := env.Store.GetClientRecord(ctx, secretClientID); err != nil {
		t.Fatalf("client after start: %v, want re-created", err)
	}
	changes, err := env.Store.ListAdminChanges(ctx, storage.AdminChangeFilter{Limit: 2})
	if err != nil || len(changes) != 2 {
		t.Fatalf("changes = %+v %v", changes, err)
	}
	for _, want := range []struct{ resource, id, action string }{{"client", secretClientID, "create"}, {"attester", "test-attester", "enable"}} {
		found := false
		for _, ch := range changes {
			if ch.Actor == "config" && ch.Resource == want.resource && ch.ResourceID == want.id && ch.Action == want.action &&
				strings.HasPrefix(ch.Detail, "from the configuration file") {
				found = true
			}
		}
		if !found {
			t.Errorf("no config change %+v in %+v", want, changes)
		}
	}
	// An unchanged start records nothing.
	if err := server.SyncConfig(ctx, env.Config, env.Store, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	if again, _ := env.Store.ListAdminChanges(ctx, storage.AdminChangeFilter{Limit: 1}); len(again) != 1 || again[0].ID != changes[0].ID {
		t.Fatalf("an unchanged start recorded %+v", again)
	}
}

// TestAdmin_FailedAuthThrottled: ten failed admin authentications from one address, then one a
// second; over the limit even the right token is not checked (429 with Retry-After), so the
// token cannot be guessed faster from one address. The console sign-in shares the budget.
func TestAdmin_FailedAuthThrottled(t *testing.T) {
	env := newAdminServer(t)
	for i := range 10 {
		// A new X-Forwarded-For each time does not make a new address (the client chooses it).
		wrong := map[string]string{"Authorization": "Bearer wrong-admin-token-0123456789", "X-Forwarded-For": fmt.Sprintf("10.0.0.%d", i)}
		if r := env.adminWith(http.MethodGet, "/admin/clients", nil, wrong); r.Status != 401 {
			t.Fatalf("failure %d: %d, want 401", i+1, r.Status)
		}
	}
	r := env.adminWith(http.MethodGet, "/admin/clients", nil, map[string]string{"Authorization": "Bearer wrong-admin-token-0123456789", "X-Forwarded-For": "10.9.9.9"})
	if r.Status != 429 || r.Header.Get("Retry-After") == "" || r.json(t)["error"] != "temporarily_unavailable" {
		t.Fatalf("11th failure: %d Retry-After %q %s, want 429 temporarily_unavailable with Retry-After", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	if r := env.admin(http.MethodGet, "/admin/clients", nil); r.Status != 429 {
		t.Fatalf("the right token while throttled: %d, want 429 (not checked)", r.Status)
	}
	u := newConsoleUser(t, env)
	u.get("/admin/ui/login")
	if p := u.post("/admin/ui/login", url.Values{"token": {adminToken}}); p.Status != 429 {
		t.Fatalf("console sign-in while throttled: %d, want 429", p.Status)
	}
	time.Sleep(1100 * time.Millisecond) // one attempt a second after the burst
	if r := env.admin(http.MethodGet, "/admin/clients", nil); r.Status != 200 {
		t.Fatalf("the right token a second later: %d, want 200", r.Status)
	}
}
