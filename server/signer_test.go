package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite/token/jwt"

	"github.com/authz/authz/storage"
)

func testSigningKey(t *testing.T, kid string, created time.Time) storage.SigningKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return storage.SigningKey{KID: kid, Alg: "ES256", Private: k, CreatedAt: created}
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	s, err := (&keyring{}).forTokenKID(token)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestKeyringRotation: a new key is published at once but signs only after the publish delay;
// tokens signed by the old key keep verifying (by kid) until the old key is removed.
func TestKeyringRotation(t *testing.T) {
	ctx := context.Background()
	// The keyring's clock is injected, but Validate checks exp against the real one: start now.
	now := time.Now().UTC().Truncate(time.Second)
	old := testSigningKey(t, "old", now.Add(-time.Hour))
	ring, err := newKeyring([]storage.SigningKey{old}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ring.now = func() time.Time { return now }
	claims := jwt.MapClaims{"sub": "x", "exp": float64(now.Add(time.Hour).Unix())}
	tokOld, _, err := ring.Generate(ctx, claims, &jwt.Headers{Extra: map[string]interface{}{"typ": "at+jwt"}})
	if err != nil {
		t.Fatal(err)
	}
	if kidOf(t, tokOld) != "old" {
		t.Fatalf("signed with %q", kidOf(t, tokOld))
	}

	// Rotation: both published, the new one not yet used.
	fresh := testSigningKey(t, "new", now)
	if err := ring.set([]storage.SigningKey{fresh, old}); err != nil {
		t.Fatal(err)
	}
	if got := len(ring.published()); got != 2 {
		t.Fatalf("published %d keys, want 2", got)
	}
	tok, _, _ := ring.Generate(ctx, claims, &jwt.Headers{})
	if kidOf(t, tok) != "old" {
		t.Fatalf("a key published %s ago signs already", time.Duration(0))
	}
	ring.now = func() time.Time { return now.Add(6 * time.Minute) }
	tokNew, _, _ := ring.Generate(ctx, claims, &jwt.Headers{})
	if kidOf(t, tokNew) != "new" {
		t.Fatalf("after the publish delay the new key does not sign (kid %q)", kidOf(t, tokNew))
	}
	// Both verify by kid.
	for _, tok := range []string{tokOld, tokNew} {
		if _, err := ring.Validate(ctx, tok); err != nil {
			t.Fatalf("validate %s: %v", kidOf(t, tok), err)
		}
	}
	// After pruning the old key, its tokens no longer verify; an unknown kid is an error.
	if err := ring.set([]storage.SigningKey{fresh}); err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Validate(ctx, tokOld); err == nil {
		t.Fatal("a token of a removed key still verifies")
	}
	if _, err := ring.Decode(ctx, "garbage"); err == nil {
		t.Fatal("garbage decoded")
	}
	if err := ring.set(nil); err == nil {
		t.Fatal("an empty key set was accepted")
	}
}

// TestKeyringGenerateHeaders: Generate signs with alg and kid of the current key whatever the
// header asks, typ is at+jwt for access tokens and JWT by default, other members are kept, the
// signature part is returned, and the token verifies with the public key.
func TestKeyringGenerateHeaders(t *testing.T) {
	ctx := context.Background()
	key := testSigningKey(t, "k1", time.Now().Add(-time.Hour))
	ring, err := newKeyring([]storage.SigningKey{key}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{"sub": "agent", "scope": "read", "exp": int64(2000000000)}
	tests := []struct {
		name   string
		header map[string]interface{}
		want   map[string]interface{}
	}{
		{"access_token", map[string]interface{}{"typ": "at+jwt"}, map[string]interface{}{"alg": "ES256", "kid": "k1", "typ": "at+jwt"}},
		{"default_typ", map[string]interface{}{}, map[string]interface{}{"alg": "ES256", "kid": "k1", "typ": "JWT"}},
		{"extra_member", map[string]interface{}{"typ": "at+jwt", "cty": "x"}, map[string]interface{}{"alg": "ES256", "kid": "k1", "typ": "at+jwt", "cty": "x"}},
		{"alg_and_kid_not_overridable", map[string]interface{}{"alg": "none", "kid": "evil"}, map[string]interface{}{"alg": "ES256", "kid": "k1", "typ": "JWT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, sig, err := ring.Generate(ctx, claims, &jwt.Headers{Extra: tt.header})
			if err != nil {
				t.Fatal(err)
			}
			if parts := strings.Split(raw, "."); len(parts) != 3 || parts[2] != sig {
				t.Fatalf("signature %q is not the last part of %q", sig, raw)
			}
			obj, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				t.Fatal(err)
			}
			payload, err := obj.Verify(&key.Private.PublicKey)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			var got map[string]interface{}
			if err := json.Unmarshal(payload, &got); err != nil || got["sub"] != "agent" || got["exp"] != float64(2000000000) {
				t.Fatalf("claims %v (%v)", got, err)
			}
			head, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
			var h map[string]interface{}
			if err := json.Unmarshal(head, &h); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(h, tt.want) {
				t.Fatalf("header %v, want %v", h, tt.want)
			}
		})
	}
	if _, _, err := ring.Generate(ctx, nil, &jwt.Headers{}); err == nil {
		t.Fatal("nil claims accepted")
	}
}

// BenchmarkMintAccessToken compares the keyring (go-jose v4, signer built once) with fosite's
// DefaultSigner (go-jose v3, signer built per token) on an access token's claims.
func BenchmarkMintAccessToken(b *testing.B) {
	ctx := context.Background()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key := storage.SigningKey{KID: "k1", Alg: "ES256", Private: k, CreatedAt: time.Now().Add(-time.Hour)}
	ring, err := newKeyring([]storage.SigningKey{key}, 0)
	if err != nil {
		b.Fatal(err)
	}
	claims := jwt.MapClaims{"iss": "https://as.example", "sub": "agent", "client_id": "agent", "aud": []string{"https://api.example"},
		"scope": "read", "jti": "0123456789abcdef0123456789abcdef", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
		"cnf":                map[string]interface{}{"jkt": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
		"client_attestation": map[string]interface{}{"attester": "dev", "instance_jkt": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", "pop_method": "attestation_pop_jwt"}}
	header := &jwt.Headers{Extra: map[string]interface{}{"typ": "at+jwt"}}
	b.Run("keyring_go-jose_v4", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := ring.Generate(ctx, claims, header); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fosite_DefaultSigner_go-jose_v3", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := ring.current().Generate(ctx, claims, header); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestSigningKeyStates(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	keys := []storage.SigningKey{
		{KID: "old", CreatedAt: now.Add(-48 * time.Hour)},
		{KID: "current", CreatedAt: now.Add(-time.Hour)},
		{KID: "new", CreatedAt: now.Add(-time.Minute), Active: true},
	}
	got := SigningKeyStates(keys, now)
	want := map[string]string{
		"old":     "verifies earlier tokens",
		"current": "signing",
		"new":     "published, signs from 2026-12-07T12:04:00Z",
	}
	if !maps.Equal(got, want) {
		t.Fatalf("states = %v, want %v", got, want)
	}
	// Five minutes after the rotation the new key signs.
	if got := SigningKeyStates(keys, now.Add(4*time.Minute)); got["new"] != "signing" || got["current"] != "verifies earlier tokens" {
		t.Fatalf("after the delay: %v", got)
	}
	// The very first key signs at once.
	if got := SigningKeyStates(keys[2:], now); got["new"] != "signing" {
		t.Fatalf("only key: %v", got)
	}
}
