package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/authz/authz/devattester"
)

// fakeAS is a minimal authorization server: RFC 8414 metadata, a challenge endpoint and a token
// endpoint that verifies the attestation (against the dev attester's key set) and the PoP the
// way ABCA-09 §7.1 and §7.2 describe, then answers as its test case says.
type fakeAS struct {
	behaviour
	t            *testing.T
	issuer       string
	attesterKeys jose.JSONWebKeySet

	mu        sync.Mutex
	calls     int
	lastPoP   map[string]any
	lastClaim map[string]any
}

// behaviour is what a test case sets on the fake server.
type behaviour struct {
	noChallenge   bool   // omit challenge_endpoint from the metadata
	metaIssuer    string // issuer in the metadata when not the real one
	wantChallenge string // the challenge the token endpoint accepts
	alwaysDemand  bool   // answer use_attestation_challenge every time
	reject        string // answer 401 with this error code
}

func (f *fakeAS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case wellKnownMetadata:
		meta := map[string]any{
			"issuer":                                f.issuer,
			"token_endpoint":                        f.issuer + "/oauth2/token",
			"token_endpoint_auth_methods_supported": []string{authMethod},
			"client_attestation_pop_signing_alg_values_supported": []string{"ES256"},
		}
		if f.metaIssuer != "" {
			meta["issuer"] = f.metaIssuer
		}
		if !f.noChallenge {
			meta["challenge_endpoint"] = f.issuer + "/oauth2/challenge"
		}
		_ = json.NewEncoder(w).Encode(meta)
	case "/oauth2/challenge":
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set(headerChallenge, "c1")
		_ = json.NewEncoder(w).Encode(map[string]string{"attestation_challenge": "c1"})
	case "/oauth2/token":
		f.token(w, r)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (f *fakeAS) token(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	fail := func(status int, code string, challenge string) {
		if challenge != "" {
			w.Header().Set(headerChallenge, challenge)
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": "test says " + code})
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("scope") != "read write" {
		f.t.Errorf("token form = %v (%v)", r.PostForm, err)
	}
	// ABCA-09 §7.1: the attestation verifies with the attester's key.
	att, err := jwt.ParseSigned(r.Header.Get(headerAttestation), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || att.Headers[0].ExtraHeaders["typ"] != "oauth-client-attestation+jwt" {
		f.t.Errorf("attestation header: %v", err)
		fail(401, "invalid_client", "")
		return
	}
	var claims struct {
		jwt.Claims
		Cnf struct {
			JWK jose.JSONWebKey `json:"jwk"`
		} `json:"cnf"`
	}
	keys := f.attesterKeys.Key(att.Headers[0].KeyID)
	if len(keys) != 1 || att.Claims(keys[0].Key, &claims) != nil || claims.Subject != "agent" {
		f.t.Errorf("attestation does not verify for agent")
		fail(401, "invalid_client", "")
		return
	}
	// ABCA-09 §7.2: the PoP verifies with cnf.jwk and carries aud, jti, iat, challenge.
	pop, err := jwt.ParseSigned(r.Header.Get(headerPoP), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || pop.Headers[0].ExtraHeaders["typ"] != typPoP || pop.Headers[0].KeyID != "" {
		f.t.Errorf("PoP header: %v %+v", err, pop)
		fail(401, "invalid_client", "")
		return
	}
	var pc map[string]any
	if err := pop.Claims(claims.Cnf.JWK.Key, &pc); err != nil {
		f.t.Errorf("PoP does not verify with cnf.jwk: %v", err)
		fail(401, "invalid_client", "")
		return
	}
	f.lastPoP, f.lastClaim = pc, map[string]any{"sub": claims.Subject}
	iat, _ := pc["iat"].(float64)
	if pc["aud"] != f.issuer || pc["jti"] == "" || time.Since(time.Unix(int64(iat), 0)).Abs() > time.Minute {
		f.t.Errorf("PoP claims = %v", pc)
	}
	switch {
	case f.reject != "":
		fail(401, f.reject, "")
	case f.alwaysDemand:
		fail(400, errUseChallenge, "again")
	case f.wantChallenge != "" && pc["challenge"] != f.wantChallenge:
		fail(400, errUseChallenge, f.wantChallenge)
	default:
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "opaque-token", "token_type": "Bearer", "expires_in": 300})
	}
}

func newAttesterServer(t *testing.T) (*httptest.Server, jose.JSONWebKeySet) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := devattester.New(&jose.JSONWebKey{Key: key, KeyID: "dev"}, devattester.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return srv, a.PublicJWKS()
}

func TestRun(t *testing.T) {
	tests := []struct {
		name          string
		as            behaviour
		clientID      string
		wantErr       string
		wantCalls     int
		wantChallenge any // the challenge claim of the last PoP (nil: absent)
		wantOut       []string
	}{
		{name: "challenge_from_endpoint", as: behaviour{wantChallenge: "c1"}, wantCalls: 1, wantChallenge: "c1",
			wantOut: []string{"== 1. Generate a Client Instance Key", "attestation_challenge: c1", `"access_token": "opaque-token"`}},
		{name: "retry_with_fresh_challenge", as: behaviour{wantChallenge: "c2"}, wantCalls: 2, wantChallenge: "c2",
			wantOut: []string{"retrying once", headerChallenge + ": c2"}},
		{name: "retry_only_once", as: behaviour{alwaysDemand: true}, wantCalls: 2, wantChallenge: "again",
			wantErr: "400 use_attestation_challenge"},
		{name: "no_challenge_endpoint", as: behaviour{noChallenge: true}, wantCalls: 1, wantChallenge: nil,
			wantOut: []string{"challenge_endpoint: (none)"}},
		{name: "invalid_client_is_reported", as: behaviour{reject: "invalid_client"}, wantCalls: 1, wantChallenge: "c1",
			wantErr: "401 invalid_client"},
		{name: "metadata_issuer_mismatch", as: behaviour{metaIssuer: "https://elsewhere.example"}, wantCalls: 0,
			wantErr: "differs from -issuer"},
		{name: "attester_refuses", as: behaviour{}, clientID: "bad\tid", wantCalls: 0, wantErr: "attester answered 400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attester, keys := newAttesterServer(t)
			as := &fakeAS{behaviour: tt.as, t: t, attesterKeys: keys}
			srv := httptest.NewServer(as)
			t.Cleanup(srv.Close)
			as.issuer = srv.URL
			clientID := tt.clientID
			if clientID == "" {
				clientID = "agent"
			}
			var out bytes.Buffer
			err := run(context.Background(), config{issuer: srv.URL, attester: attester.URL, clientID: clientID, scope: "read write"}, newHTTPClient(), &out)
			if testing.Verbose() {
				t.Log(out.String())
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("run: %v\n%s", err, out.String())
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("run err = %v, want %q", err, tt.wantErr)
			}
			as.mu.Lock()
			defer as.mu.Unlock()
			if as.calls != tt.wantCalls {
				t.Errorf("token calls = %d, want %d", as.calls, tt.wantCalls)
			}
			if tt.wantCalls > 0 && as.lastPoP["challenge"] != tt.wantChallenge {
				t.Errorf("PoP challenge = %v, want %v", as.lastPoP["challenge"], tt.wantChallenge)
			}
			for _, s := range tt.wantOut {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
		})
	}
}

func TestMetadataURL(t *testing.T) {
	tests := []struct {
		name, issuer, wantPath string
	}{
		{name: "host_only", issuer: "ISSUER", wantPath: wellKnownMetadata},
		{name: "issuer_with_path", issuer: "ISSUER/tenant/a", wantPath: wellKnownMetadata + "/tenant/a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotPath string
			var issuer string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotPath = r.URL.Path
				_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "token_endpoint": issuer + "/token"})
			}))
			t.Cleanup(srv.Close)
			issuer = strings.Replace(tt.issuer, "ISSUER", srv.URL, 1)
			c := &client{cfg: config{issuer: issuer}, hc: newHTTPClient(), out: &bytes.Buffer{}}
			if _, err := c.metadata(context.Background()); err != nil {
				t.Fatalf("metadata: %v", err)
			}
			if gotPath != tt.wantPath {
				t.Fatalf("path = %q, want %q", gotPath, tt.wantPath)
			}
		})
	}
}
