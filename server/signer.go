package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite/token/jwt"

	"github.com/authz/authz/storage"
)

// keyPublishDelay is how long a new signing key is published in /jwks.json before tokens are
// signed with it, so resource servers that cache the key set (max-age 300) know it first.
const keyPublishDelay = 5 * time.Minute

// keyring is the jwt.Signer fosite uses for access tokens. fosite's DefaultSigner verifies with
// the current key only (fosite.md §5), which breaks introspection after a rotation; the keyring
// signs with the newest key that has been published for keyPublishDelay and verifies with the
// key the token's kid names.
type keyring struct {
	mu      sync.RWMutex
	keys    []storage.SigningKey // newest first
	signers map[string]*jwt.DefaultSigner
	// minters are the go-jose v4 signers Generate uses, per kid, for the usual header
	// (typ at+jwt and nothing else), built once instead of once per token.
	minters map[string]jose.Signer
	delay   time.Duration
	now     func() time.Time
}

var _ jwt.Signer = (*keyring)(nil)

func newKeyring(keys []storage.SigningKey, delay time.Duration) (*keyring, error) {
	k := &keyring{delay: delay, now: time.Now}
	if err := k.set(keys); err != nil {
		return nil, err
	}
	return k, nil
}

// set replaces the key set (after a rotation seen in the database).
func (k *keyring) set(keys []storage.SigningKey) error {
	if len(keys) == 0 {
		return errors.New("server: no signing key")
	}
	sorted := append([]storage.SigningKey(nil), keys...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].CreatedAt.After(sorted[j].CreatedAt) })
	signers := make(map[string]*jwt.DefaultSigner, len(sorted))
	minters := make(map[string]jose.Signer, len(sorted))
	for _, key := range sorted {
		if key.Private == nil || key.KID == "" {
			return fmt.Errorf("server: signing key %q is incomplete", key.KID)
		}
		jwk := &josev3.JSONWebKey{Key: key.Private, KeyID: key.KID, Algorithm: key.Alg, Use: "sig"}
		signers[key.KID] = &jwt.DefaultSigner{GetPrivateKey: func(context.Context) (interface{}, error) { return jwk, nil }}
		m, err := newMinter(key, map[string]interface{}{"typ": accessTokenType})
		if err != nil {
			return err
		}
		minters[key.KID] = m
	}
	k.mu.Lock()
	k.keys, k.signers, k.minters = sorted, signers, minters
	k.mu.Unlock()
	return nil
}

// published returns every key to publish in /jwks.json.
func (k *keyring) published() []storage.SigningKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return append([]storage.SigningKey(nil), k.keys...)
}

// current is the signing key: the newest one published for at least the delay, or, right after
// the very first start, the only one there is.
func (k *keyring) current() *jwt.DefaultSigner {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.signers[k.currentLocked().KID]
}

// currentMinter is current's key and its access-token signer.
func (k *keyring) currentMinter() (storage.SigningKey, jose.Signer) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	key := k.currentLocked()
	return key, k.minters[key.KID]
}

func (k *keyring) currentLocked() storage.SigningKey {
	return signingKeyAt(k.keys, k.now(), k.delay)
}

// signingKeyAt picks the key that signs at now from keys (newest first, not empty): the newest
// one published for at least delay, or, right after the very first start, the oldest there is.
func signingKeyAt(keys []storage.SigningKey, now time.Time, delay time.Duration) storage.SigningKey {
	cutoff := now.Add(-delay)
	for _, key := range keys {
		if !key.CreatedAt.After(cutoff) {
			return key
		}
	}
	return keys[len(keys)-1]
}

// SigningKeyStates describes each key as the servers use it at now, for `authz keys list`:
// "signing", "published, signs from <time>" (a rotation not yet in force), or "verifies
// earlier tokens". keys may be in any order.
func SigningKeyStates(keys []storage.SigningKey, now time.Time) map[string]string {
	states := make(map[string]string, len(keys))
	if len(keys) == 0 {
		return states
	}
	sorted := append([]storage.SigningKey(nil), keys...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].CreatedAt.After(sorted[j].CreatedAt) })
	signing := signingKeyAt(sorted, now, keyPublishDelay)
	for _, key := range sorted {
		switch {
		case key.KID == signing.KID:
			states[key.KID] = "signing"
		case key.CreatedAt.After(signing.CreatedAt):
			states[key.KID] = "published, signs from " + key.CreatedAt.Add(keyPublishDelay).UTC().Format(time.RFC3339)
		default:
			states[key.KID] = "verifies earlier tokens"
		}
	}
	return states
}

// forTokenKID reads the kid of a JWT's header (nothing is verified here).
func (k *keyring) forTokenKID(token string) (string, error) {
	head, _, ok := strings.Cut(token, ".")
	if !ok || len(head) > 4096 {
		return "", errors.New("server: not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", fmt.Errorf("server: JWT header: %w", err)
	}
	var h struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return "", fmt.Errorf("server: JWT header: %w", err)
	}
	return h.KID, nil
}

// forToken picks the verification key by the token's kid.
func (k *keyring) forToken(token string) (*jwt.DefaultSigner, error) {
	kid, err := k.forTokenKID(token)
	if err != nil {
		return nil, err
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	s, ok := k.signers[kid]
	if !ok {
		return nil, errors.New("server: unknown signing key id")
	}
	return s, nil
}

// accessTokenType is the typ of RFC 9068 access tokens (§2.1).
const accessTokenType = "at+jwt"

// newMinter is a go-jose v4 signer for key whose protected header carries alg, kid and the
// given members.
func newMinter(key storage.SigningKey, header map[string]interface{}) (jose.Signer, error) {
	opts := &jose.SignerOptions{}
	for name, v := range header {
		opts.WithHeader(jose.HeaderKey(name), v)
	}
	m, err := jose.NewSigner(jose.SigningKey{
		Algorithm: jose.SignatureAlgorithm(key.Alg),
		Key:       jose.JSONWebKey{Key: key.Private, KeyID: key.KID, Algorithm: key.Alg, Use: "sig"},
	}, opts)
	if err != nil {
		return nil, fmt.Errorf("server: signing key %q: %w", key.KID, err)
	}
	return m, nil
}

// Generate implements jwt.Signer: it signs claims with the current key (alg and kid in the
// header, typ JWT unless header names another) through go-jose v4, and returns the compact JWT
// and its signature part. Access tokens (typ at+jwt alone) use the signer built with the key.
func (k *keyring) Generate(_ context.Context, claims jwt.MapClaims, header jwt.Mapper) (string, string, error) {
	if claims == nil || header == nil {
		return "", "", errors.New("server: generate: claims or header is nil")
	}
	key, minter := k.currentMinter()
	members := map[string]interface{}{"typ": "JWT"}
	for name, v := range header.ToMap() {
		if name != "alg" && name != "kid" {
			members[name] = v
		}
	}
	if len(members) != 1 || members["typ"] != accessTokenType {
		var err error
		if minter, err = newMinter(key, members); err != nil {
			return "", "", err
		}
	}
	if claims["scope"] == "" {
		delete(claims, "scope") // RFC 9068 §2.2.3 / RFC 6749 §3.3: no scope tokens, no claim
	}
	payload, err := json.Marshal(map[string]interface{}(claims))
	if err != nil {
		return "", "", fmt.Errorf("server: generate: claims: %w", err)
	}
	obj, err := minter.Sign(payload)
	if err != nil {
		return "", "", fmt.Errorf("server: generate: %w", err)
	}
	raw, err := obj.CompactSerialize()
	if err != nil {
		return "", "", fmt.Errorf("server: generate: %w", err)
	}
	return raw, raw[strings.LastIndexByte(raw, '.')+1:], nil
}

func (k *keyring) Validate(ctx context.Context, token string) (string, error) {
	s, err := k.forToken(token)
	if err != nil {
		return "", err
	}
	return s.Validate(ctx, token)
}

func (k *keyring) Decode(ctx context.Context, token string) (*jwt.Token, error) {
	s, err := k.forToken(token)
	if err != nil {
		return nil, err
	}
	return s.Decode(ctx, token)
}

func (k *keyring) Hash(ctx context.Context, in []byte) ([]byte, error) {
	return k.current().Hash(ctx, in)
}

func (k *keyring) GetSignature(ctx context.Context, token string) (string, error) {
	return k.current().GetSignature(ctx, token)
}

func (k *keyring) GetSigningMethodLength(ctx context.Context) int {
	return k.current().GetSigningMethodLength(ctx)
}
