package bench

import (
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/authz/authz/dpop"
	"github.com/authz/authz/reliability"
)

// ClientAssertionType is the RFC 7523 §2.2 client_assertion_type of private_key_jwt.
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// PublicJWKS is the JSON JWK set publishing key's public half under kid.
func PublicJWKS(key *ecdsa.PrivateKey, kid string) (string, error) {
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}}})
	if err != nil {
		return "", fmt.Errorf("bench: jwks: %w", err)
	}
	return string(b), nil
}

// Signer signs compact JWS with one ES256 key and a fixed JOSE header; it is reused for every
// token of that key (building a go-jose signer costs more than a signature).
type Signer struct{ s jose.Signer }

// NewSigner makes a signer for key with typ and extra header members.
func NewSigner(key *ecdsa.PrivateKey, typ string, hdr map[jose.HeaderKey]any) (*Signer, error) {
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
	for k, v := range hdr {
		opts = opts.WithHeader(k, v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		return nil, fmt.Errorf("bench: signer: %w", err)
	}
	return &Signer{s: s}, nil
}

// Sign serialises claims as a compact JWS.
func (s *Signer) Sign(claims any) (string, error) {
	tok, err := jwt.Signed(s.s).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("bench: sign: %w", err)
	}
	return tok, nil
}

// Attestation signs a Client Attestation JWT (ABCA-09 §4) for clientID binding instance's public
// key in cnf.jwk, valid for ttl.
func Attestation(attester *Signer, clientID string, instance *ecdsa.PrivateKey, now time.Time, ttl time.Duration) (string, error) {
	return attester.Sign(map[string]any{
		"sub": clientID,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
		"cnf": map[string]any{"jwk": jose.JSONWebKey{Key: instance.Public()}},
	})
}

// PoP signs a Client Attestation PoP JWT (ABCA-09 §5.1) for the issuer audience with a unique jti.
func PoP(instance *Signer, issuer string, now time.Time) (string, error) {
	jti, err := reliability.RandomString()
	if err != nil {
		return "", err
	}
	return instance.Sign(map[string]any{"aud": issuer, "jti": jti, "iat": now.Unix()})
}

// DPoPSigner is a signer for RFC 9449 §4.2 proofs of key: typ dpop+jwt and the public key in jwk.
func DPoPSigner(key *ecdsa.PrivateKey) (*Signer, error) {
	return NewSigner(key, dpop.Typ, map[jose.HeaderKey]any{"jwk": jose.JSONWebKey{Key: key.Public()}})
}

// DPoP signs an RFC 9449 §4.2 proof for method and htu with a unique jti.
func DPoP(key *Signer, method, htu string, now time.Time) (string, error) {
	jti, err := reliability.RandomString()
	if err != nil {
		return "", err
	}
	return key.Sign(map[string]any{"jti": jti, "htm": method, "htu": htu, "iat": now.Unix()})
}

// ClientAssertion signs an RFC 7523 §3 client assertion (private_key_jwt) for clientID with the
// token endpoint as audience and a unique jti.
func ClientAssertion(key *Signer, clientID, tokenURL string, now time.Time, ttl time.Duration) (string, error) {
	jti, err := reliability.RandomString()
	if err != nil {
		return "", err
	}
	return key.Sign(map[string]any{
		"iss": clientID, "sub": clientID, "aud": tokenURL, "jti": jti,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(),
	})
}
