package clientauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/internal/strictjson"
)

// jwsErrors names the sentinels a parse failure maps to, so one parser serves the attestation
// and the PoP.
type jwsErrors struct {
	malformed, alg error
}

var (
	attestationJWSErrors = jwsErrors{malformed: ErrAttestationMalformed, alg: ErrAttestationAlg}
	popJWSErrors         = jwsErrors{malformed: ErrPoPMalformed, alg: ErrPoPAlg}
)

// parsedJWS is a compact JWS whose structure is valid and whose signature is NOT yet verified.
// Before verification only alg, kid, x5c and jku may be read, and only to choose a key.
type parsedJWS struct {
	jws     *jose.JSONWebSignature
	header  map[string]json.RawMessage // protected header members
	payload []byte                     // unverified payload bytes
	alg     jose.SignatureAlgorithm
}

// parseCompactJWS checks that token is one compact JWS (RFC 7515 §7.1: three base64url segments
// without padding; never JWE, never the JSON serialization), that its header and payload are
// JSON objects without duplicate member names (RFC 7515 §4, RFC 7519 §4), that alg is in the
// allow-list (never none), and that no crit parameter is present (RFC 7515 §4.1.11: authz
// understands no extension, so any crit is unsupported). Parsing goes through go-jose v4 with
// the same allow-list.
func parseCompactJWS(token string, algs []jose.SignatureAlgorithm, maxBytes int, e jwsErrors) (*parsedJWS, error) {
	if len(token) > maxBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", e.malformed, maxBytes)
	}
	if strings.Count(token, ".") != 2 {
		return nil, fmt.Errorf("%w: not three segments (JWE and nested JWTs are not accepted)", e.malformed)
	}
	segs := strings.SplitN(token, ".", 3)
	b64 := base64.RawURLEncoding.Strict()
	headerJSON, err := b64.DecodeString(segs[0])
	if err != nil {
		return nil, fmt.Errorf("%w: header is not base64url", e.malformed)
	}
	payload, err := b64.DecodeString(segs[1])
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not base64url", e.malformed)
	}
	if err := strictjson.CheckObject(headerJSON); err != nil {
		return nil, fmt.Errorf("%w: header: %w", e.malformed, err)
	}
	if err := strictjson.CheckObject(payload); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", e.malformed, err)
	}
	header, err := decodeMembers(headerJSON)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %w", e.malformed, err)
	}
	alg, ok := jsonString(header["alg"])
	if !ok {
		return nil, fmt.Errorf("%w: alg is missing or not a string", e.alg)
	}
	if !slices.Contains(algs, jose.SignatureAlgorithm(alg)) {
		return nil, fmt.Errorf("%w: alg is not in the allow-list", e.alg)
	}
	if _, present := header["crit"]; present {
		return nil, fmt.Errorf("%w: crit is present", ErrCrit)
	}
	if _, present := header["b64"]; present {
		return nil, fmt.Errorf("%w: b64 (RFC 7797) is not supported", ErrCrit)
	}
	if _, err := b64.DecodeString(segs[2]); err != nil || segs[2] == "" {
		return nil, fmt.Errorf("%w: signature is missing or not base64url", e.malformed)
	}
	jws, err := jose.ParseSignedCompact(token, algs)
	if err != nil {
		// go-jose's messages may quote header values: never pass token contents on.
		return nil, fmt.Errorf("%w: a header parameter (jwk, x5c, kid) is invalid", e.malformed)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: not exactly one signature", e.malformed)
	}
	return &parsedJWS{jws: jws, header: header, payload: payload, alg: jose.SignatureAlgorithm(alg)}, nil
}

// verify checks the signature with key (a public key or, for HS*, the raw secret) and returns
// the verified payload.
func (p *parsedJWS) verify(key any) ([]byte, error) {
	return p.jws.Verify(key)
}

// checkTyp compares a typ header with want as RFC 7515 §4.1.9 allows (profile §3):
// case-insensitively, with an optional "application/" prefix.
func checkTyp(header map[string]json.RawMessage, want string) error {
	raw, present := header["typ"]
	if !present {
		return fmt.Errorf("typ is missing")
	}
	typ, ok := jsonString(raw)
	if !ok {
		return fmt.Errorf("typ is not a string")
	}
	if len(typ) > len("application/") && strings.EqualFold(typ[:len("application/")], "application/") {
		typ = typ[len("application/"):]
	}
	if !strings.EqualFold(typ, want) {
		return fmt.Errorf("typ is not %s", want)
	}
	return nil
}

// isMAC reports whether alg is an HMAC algorithm.
func isMAC(alg jose.SignatureAlgorithm) bool {
	return alg == jose.HS256 || alg == jose.HS384 || alg == jose.HS512
}

// keyFitsAlg reports whether a public key can verify alg (RFC 7518 §3, RFC 8037 §3.1): ES256
// needs P-256, ES384 P-384, ES512 P-521; RS*/PS* an RSA key of at least 2048 bits; EdDSA an
// Ed25519 key. MAC algorithms never fit public key material (RFC 8725 §2.1, §3.1).
func keyFitsAlg(key any, alg jose.SignatureAlgorithm) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		switch alg {
		case jose.ES256:
			return k.Curve == elliptic.P256()
		case jose.ES384:
			return k.Curve == elliptic.P384()
		case jose.ES512:
			return k.Curve == elliptic.P521()
		}
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			return k.N.BitLen() >= minRSABits
		}
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}

// jwkFitsAlg is keyFitsAlg plus the JWK's own alg and use members when present (RFC 7517 §4.2,
// §4.4).
func jwkFitsAlg(k *jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return false
	}
	if k.Use != "" && k.Use != "sig" {
		return false
	}
	return keyFitsAlg(k.Key, alg)
}
