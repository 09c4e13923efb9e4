package reliability

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/authz/authz/clientauth"
)

// NewKey returns a fresh P-256 key (attester keys and Client Instance Keys alike).
func NewKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("reliability: generate key: %w", err)
	}
	return k, nil
}

// Attester signs Client Attestation JWTs (ABCA-09 §4) with an ES256 key published under KID.
type Attester struct {
	ID  string
	KID string
	Key *ecdsa.PrivateKey
}

// NewAttester returns an attester with a fresh key whose kid is id+"-1".
func NewAttester(id string) (*Attester, error) {
	k, err := NewKey()
	if err != nil {
		return nil, err
	}
	return &Attester{ID: id, KID: id + "-1", Key: k}, nil
}

// JWKS is the attester's public JWK set, as authz's attesters[].jwks expects it.
func (a *Attester) JWKS() ([]byte, error) {
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: a.Key.Public(), KeyID: a.KID, Algorithm: string(jose.ES256), Use: "sig"}}})
	if err != nil {
		return nil, fmt.Errorf("reliability: marshal jwks: %w", err)
	}
	return b, nil
}

// Attestation signs an ABCA-09 §4 Client Attestation JWT for clientID whose cnf.jwk is instance,
// valid for ttl from now.
func (a *Attester) Attestation(clientID string, instance *ecdsa.PrivateKey, now time.Time, ttl time.Duration) (string, error) {
	return Sign(a.Key, clientauth.TypAttestation, map[jose.HeaderKey]any{"kid": a.KID}, map[string]any{
		"sub": clientID, "iat": now.Unix(), "exp": now.Add(ttl).Unix(),
		"cnf": map[string]any{"jwk": jose.JSONWebKey{Key: instance.Public()}},
	})
}

// PoP signs an ABCA-09 §5.1 Client Attestation PoP JWT with instance for aud (the issuer), with
// a fresh jti and an optional challenge (§6). It returns the JWT and its jti.
func PoP(instance *ecdsa.PrivateKey, aud, challenge string, now time.Time) (string, string, error) {
	jti, err := RandomString()
	if err != nil {
		return "", "", err
	}
	claims := map[string]any{"aud": aud, "jti": jti, "iat": now.Unix()}
	if challenge != "" {
		claims["challenge"] = challenge
	}
	tok, err := Sign(instance, clientauth.TypPoP, nil, claims)
	return tok, jti, err
}

// Sign makes a compact ES256 JWS with the given typ, extra header members and claims.
func Sign(key *ecdsa.PrivateKey, typ string, hdr map[jose.HeaderKey]any, claims any) (string, error) {
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
	for k, v := range hdr {
		opts = opts.WithHeader(k, v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		return "", fmt.Errorf("reliability: signer: %w", err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("reliability: sign: %w", err)
	}
	return tok, nil
}

// RandomString is 16 random bytes, base64url.
func RandomString() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reliability: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Agent is one attested client instance (ABCA-09 §1): a client id, its Client Instance Key and an
// attestation for it from an attester, ready to authenticate at the issuer.
type Agent struct {
	ClientID    string
	Issuer      string
	Instance    *ecdsa.PrivateKey
	Attestation string
}

// NewAgent makes an agent for clientID with a fresh instance key and a one-hour attestation.
func NewAgent(a *Attester, clientID, issuer string, now time.Time) (*Agent, error) {
	k, err := NewKey()
	if err != nil {
		return nil, err
	}
	att, err := a.Attestation(clientID, k, now, time.Hour)
	if err != nil {
		return nil, err
	}
	return &Agent{ClientID: clientID, Issuer: issuer, Instance: k, Attestation: att}, nil
}

// Headers returns the two ABCA-09 §5 request headers with a fresh PoP (and its jti).
func (g *Agent) Headers(challenge string, now time.Time) (map[string]string, string, error) {
	pop, jti, err := PoP(g.Instance, g.Issuer, challenge, now)
	if err != nil {
		return nil, "", err
	}
	return map[string]string{
		clientauth.HeaderClientAttestation:    g.Attestation,
		clientauth.HeaderClientAttestationPoP: pop,
	}, jti, nil
}
