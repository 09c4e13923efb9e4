package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

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
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
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
