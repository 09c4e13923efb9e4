package clientauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// privateJWKMembers are the JWK members that carry private or symmetric key material
// (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2; "priv" of the AKP draft).
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// hasPrivateMembers reports whether a JWK JSON object carries any private member.
func hasPrivateMembers(raw json.RawMessage) bool {
	m, err := decodeMembers(raw)
	if err != nil {
		return true
	}
	for _, name := range privateJWKMembers {
		if _, ok := m[name]; ok {
			return true
		}
	}
	return false
}

// checkCnfKey implements ABCA-09 §7.1 step 5 and §4 (cnf): cnf is an RFC 7800 confirmation
// object whose jwk member is present and is a public asymmetric key (kty EC, RSA or OKP; never
// oct), has no private members, and is a valid key (EC point on its curve, RSA >= 2048 bits,
// Ed25519 of the right size; go-jose checks the point when unmarshalling and ECDH checks it
// again). It returns the key and its RFC 7638 SHA-256 thumbprint.
func checkCnfKey(cnf json.RawMessage) (*jose.JSONWebKey, string, error) {
	members, err := decodeMembers(cnf)
	if err != nil {
		return nil, "", fmt.Errorf("%w: cnf is not an object", ErrAttestationClaims)
	}
	raw, ok := members["jwk"]
	if !ok {
		return nil, "", fmt.Errorf("%w: cnf.jwk is missing (only the jwk confirmation method is allowed)", ErrCnfKey)
	}
	jm, err := decodeMembers(raw)
	if err != nil {
		return nil, "", fmt.Errorf("%w: cnf.jwk is not an object", ErrCnfKey)
	}
	kty, _ := jsonString(jm["kty"])
	switch kty {
	case "EC", "RSA", "OKP":
	case "oct":
		return nil, "", fmt.Errorf("%w: cnf.jwk is a symmetric key", ErrCnfKey)
	default:
		return nil, "", fmt.Errorf("%w: cnf.jwk kty is not EC, RSA or OKP", ErrCnfKey)
	}
	if hasPrivateMembers(raw) {
		return nil, "", fmt.Errorf("%w: cnf.jwk contains private key members", ErrCnfKey)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		return nil, "", fmt.Errorf("%w: cnf.jwk is not a valid key", ErrCnfKey)
	}
	if err := checkPublicVerificationKey(&k); err != nil {
		return nil, "", fmt.Errorf("%w: cnf.jwk: %w", ErrCnfKey, err)
	}
	jkt, err := thumbprint(&k)
	if err != nil {
		return nil, "", fmt.Errorf("%w: cnf.jwk thumbprint: %w", ErrCnfKey, err)
	}
	return &k, jkt, nil
}

// thumbprint returns the RFC 7638 SHA-256 thumbprint of k, base64url without padding.
func thumbprint(k *jose.JSONWebKey) (string, error) {
	switch k.Key.(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey, ed25519.PublicKey:
	default:
		return "", fmt.Errorf("unsupported key type %T", k.Key)
	}
	sum, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}
