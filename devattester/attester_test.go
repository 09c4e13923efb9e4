package devattester

import (
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/internal/testkit"
)

func TestAttest(t *testing.T) {
	tests := []struct {
		name     string
		key      func(t *testing.T) *jose.JSONWebKey
		lifetime time.Duration
		wantAlg  string
		wantKid  string
		wantLife time.Duration
	}{
		{name: "es256_default_lifetime", key: func(t *testing.T) *jose.JSONWebKey {
			return &jose.JSONWebKey{Key: testkit.ECKey(t), KeyID: "att-1"}
		}, wantAlg: "ES256", wantKid: "att-1", wantLife: time.Hour},
		{name: "es384_custom_lifetime", key: func(t *testing.T) *jose.JSONWebKey {
			return &jose.JSONWebKey{Key: testkit.ECKeyOn(t, elliptic.P384()), KeyID: "att-2"}
		}, lifetime: 10 * time.Minute, wantAlg: "ES384", wantKid: "att-2", wantLife: 10 * time.Minute},
		{name: "rs256", key: func(t *testing.T) *jose.JSONWebKey {
			return &jose.JSONWebKey{Key: testkit.RSAKey(t, 2048), KeyID: "att-3"}
		}, wantAlg: "RS256", wantKid: "att-3", wantLife: time.Hour},
		{name: "ps256_from_jwk_alg", key: func(t *testing.T) *jose.JSONWebKey {
			return &jose.JSONWebKey{Key: testkit.RSAKey(t, 2048), KeyID: "att-4", Algorithm: "PS256"}
		}, wantAlg: "PS256", wantKid: "att-4", wantLife: time.Hour},
		{name: "eddsa", key: func(t *testing.T) *jose.JSONWebKey {
			return &jose.JSONWebKey{Key: testkit.Ed25519Key(t), KeyID: "att-5"}
		}, wantAlg: "EdDSA", wantKid: "att-5", wantLife: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.key(t)
			orig := *key
			a, err := New(key, Options{Lifetime: tt.lifetime, Now: fixedClock})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if key.Algorithm != orig.Algorithm || key.Use != orig.Use {
				t.Error("New modified the caller's key")
			}
			inst, instJKT := instanceKey(t)
			token, err := a.Attest("agent", inst)
			if err != nil {
				t.Fatalf("Attest: %v", err)
			}
			v := verifyAttestation(t, token, a.PublicJWKS())

			if v.header["typ"] != TypeClientAttestation || v.header["alg"] != tt.wantAlg || v.header["kid"] != tt.wantKid {
				t.Errorf("header = %v", v.header)
			}
			for _, h := range []string{"jwk", "x5c", "jku"} {
				if _, ok := v.header[h]; ok {
					t.Errorf("header carries %q", h)
				}
			}
			if v.claims["sub"] != "agent" {
				t.Errorf("sub = %v", v.claims["sub"])
			}
			if iat, _ := v.claims["iat"].(float64); int64(iat) != fixedNow.Unix() {
				t.Errorf("iat = %v, want %d", v.claims["iat"], fixedNow.Unix())
			}
			if exp, _ := v.claims["exp"].(float64); int64(exp) != fixedNow.Add(tt.wantLife).Unix() {
				t.Errorf("exp = %v, want %d", v.claims["exp"], fixedNow.Add(tt.wantLife).Unix())
			}
			for _, c := range []string{"iss", "nbf", "aud"} {
				if _, ok := v.claims[c]; ok {
					t.Errorf("claim %q present; ABCA-09 §4 has none", c)
				}
			}
			var cnf jose.JSONWebKey
			if err := cnf.UnmarshalJSON(v.cnf); err != nil {
				t.Fatalf("cnf.jwk: %v", err)
			}
			if !cnf.IsPublic() {
				t.Error("cnf.jwk is not a public key")
			}
			if got := jkt(t, &cnf); got != instJKT {
				t.Errorf("cnf.jwk thumbprint = %s, want %s", got, instJKT)
			}
			if cnf.KeyID != "instance-1" {
				t.Errorf("cnf.jwk kid = %q", cnf.KeyID)
			}
		})
	}
}

func TestPublicJWKS(t *testing.T) {
	priv := testkit.ECKey(t)
	a, err := New(&jose.JSONWebKey{Key: priv}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	set := a.PublicJWKS()
	if len(set.Keys) != 1 {
		t.Fatalf("keys = %d", len(set.Keys))
	}
	k := set.Keys[0]
	if !k.IsPublic() || k.Algorithm != "ES256" || k.Use != "sig" {
		t.Errorf("key = %+v", k)
	}
	if want := jkt(t, &k); k.KeyID != want {
		t.Errorf("kid = %q, want thumbprint %q", k.KeyID, want)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, m := range privateJWKMembers {
		if _, ok := raw.Keys[0][m]; ok {
			t.Errorf("published key has private member %q", m)
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name    string
		key     func(t *testing.T) *jose.JSONWebKey
		opts    Options
		wantErr error
	}{
		{name: "nil_key", key: func(*testing.T) *jose.JSONWebKey { return nil }, wantErr: ErrUnsupportedKey},
		{name: "empty_key", key: func(*testing.T) *jose.JSONWebKey { return &jose.JSONWebKey{} }, wantErr: ErrUnsupportedKey},
		{name: "public_key", key: func(t *testing.T) *jose.JSONWebKey {
			return &jose.JSONWebKey{Key: testkit.ECKey(t).Public()}
		}, wantErr: ErrUnsupportedKey},
		{name: "symmetric_key", key: func(*testing.T) *jose.JSONWebKey {
			return &jose.JSONWebKey{Key: []byte(strings.Repeat("s", 32))}
		}, wantErr: ErrUnsupportedKey},
		{name: "alg_mismatch", key: func(t *testing.T) *jose.JSONWebKey {
			return &jose.JSONWebKey{Key: testkit.Ed25519Key(t), Algorithm: "ES256"}
		}, wantErr: ErrUnsupportedKey},
		{name: "negative_lifetime", key: func(t *testing.T) *jose.JSONWebKey {
			return &jose.JSONWebKey{Key: testkit.ECKey(t)}
		}, opts: Options{Lifetime: -time.Minute}, wantErr: ErrOptions},
		{name: "sub_second_lifetime", key: func(t *testing.T) *jose.JSONWebKey {
			return &jose.JSONWebKey{Key: testkit.ECKey(t)}
		}, opts: Options{Lifetime: time.Millisecond}, wantErr: ErrOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(tt.key(t), tt.opts)
			if !errors.Is(err, tt.wantErr) || a != nil {
				t.Fatalf("New = %v, %v; want nil, %v", a, err, tt.wantErr)
			}
		})
	}
}

func TestAttestRejects(t *testing.T) {
	a := newAttester(t)
	good, _ := instanceKey(t)
	ec := testkit.ECKey(t)
	tests := []struct {
		name     string
		clientID string
		key      *jose.JSONWebKey
		wantErr  error
	}{
		{name: "private_ec_key", clientID: "agent", key: &jose.JSONWebKey{Key: ec}, wantErr: ErrInstanceKeyPrivate},
		{name: "private_rsa_key", clientID: "agent", key: &jose.JSONWebKey{Key: testkit.RSAKey(t, 2048)}, wantErr: ErrInstanceKeyPrivate},
		{name: "private_ed25519_key", clientID: "agent", key: &jose.JSONWebKey{Key: testkit.Ed25519Key(t)}, wantErr: ErrInstanceKeyPrivate},
		{name: "symmetric_key", clientID: "agent", key: &jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef")}, wantErr: ErrInstanceKeySymmetric},
		{name: "nil_key", clientID: "agent", key: nil, wantErr: ErrInstanceKey},
		{name: "empty_key", clientID: "agent", key: &jose.JSONWebKey{}, wantErr: ErrInstanceKey},
		{name: "unsupported_type", clientID: "agent", key: &jose.JSONWebKey{Key: "pem?"}, wantErr: ErrInstanceKey},
		{name: "short_rsa_key", clientID: "agent", key: &jose.JSONWebKey{Key: testkit.RSAKey(t, 1024).Public()}, wantErr: ErrInstanceKey},
		{name: "p224_curve", clientID: "agent", key: &jose.JSONWebKey{Key: testkit.ECKeyOn(t, elliptic.P224()).Public()}, wantErr: ErrInstanceKey},
		{name: "alg_contradicts_key", clientID: "agent", key: &jose.JSONWebKey{Key: ec.Public(), Algorithm: "RS256"}, wantErr: ErrInstanceKey},
		{name: "use_enc", clientID: "agent", key: &jose.JSONWebKey{Key: ec.Public(), Use: "enc"}, wantErr: ErrInstanceKey},
		{name: "empty_client_id", clientID: "", key: good, wantErr: ErrClientID},
		{name: "control_character", clientID: "agent\n", key: good, wantErr: ErrClientID},
		{name: "non_ascii", clientID: "agënt", key: good, wantErr: ErrClientID},
		{name: "invalid_utf8", clientID: "a\xff", key: good, wantErr: ErrClientID},
		{name: "too_long", clientID: strings.Repeat("a", maxClientIDLen+1), key: good, wantErr: ErrClientID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, err := a.Attest(tt.clientID, tt.key)
			if !errors.Is(err, tt.wantErr) || token != "" {
				t.Fatalf("Attest = %q, %v; want error %v", token, err, tt.wantErr)
			}
		})
	}
}

func TestAttestAcceptsClientIDs(t *testing.T) {
	a := newAttester(t)
	inst, _ := instanceKey(t)
	tests := []struct {
		name, clientID string
	}{
		{name: "url_client_id", clientID: "https://client.example.com"},
		{name: "space_and_symbols", clientID: "agent ~!@#$%^&*()"},
		{name: "max_length", clientID: strings.Repeat("a", maxClientIDLen)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, err := a.Attest(tt.clientID, inst)
			if err != nil {
				t.Fatalf("Attest: %v", err)
			}
			if v := verifyAttestation(t, token, a.PublicJWKS()); v.claims["sub"] != tt.clientID {
				t.Fatalf("sub = %v", v.claims["sub"])
			}
		})
	}
}

func TestAttestConcurrent(t *testing.T) {
	a := newAttester(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		inst, _ := instanceKey(t)
		wg.Go(func() {
			_, err := a.Attest("agent", inst)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
