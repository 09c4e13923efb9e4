package dpop

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3, §3.5: 2048 bits or larger).
const minRSABits = 2048

// privateJWKMembers are the JWK members that carry private or symmetric key material
// (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2 for OKP d; "priv" for AKP keys).
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// checkSize implements profile §3: a proof is at most maxBytes before it is parsed.
func checkSize(proof string, maxBytes int) error {
	if len(proof) > maxBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(proof), maxBytes)
	}
	return nil
}

// checkWellFormed implements RFC 9449 §4.3 step 2 for the part readable before the signature:
// the value is a single JWS in compact serialization (three canonical base64url segments,
// RFC 7515 §7.1) whose header is one JSON object without duplicate members (RFC 7515 §5.2
// step 4 lets a recipient reject those; authz always does). It returns the header members.
func checkWellFormed(proof string) (map[string]json.RawMessage, error) {
	if err := compactSyntax(proof); err != nil {
		return nil, err
	}
	headerB64 := proof[:strings.IndexByte(proof, '.')]
	raw, err := base64.RawURLEncoding.Strict().DecodeString(headerB64)
	if err != nil {
		return nil, fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	hdr, err := decodeObject(raw)
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	return hdr, nil
}

// compactSyntax reports whether s has the shape of a compact JWS: exactly three non-empty
// segments of the base64url alphabet without padding (RFC 7515 §7.1, §2 "Base64url Encoding").
func compactSyntax(s string) error {
	segments := 0
	length := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if length == 0 {
				return fmt.Errorf("%w: empty segment", ErrMalformed)
			}
			segments++
			length = 0
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			length++
		default:
			return fmt.Errorf("%w: byte %d is not base64url", ErrMalformed, i)
		}
	}
	if length == 0 {
		return fmt.Errorf("%w: empty segment", ErrMalformed)
	}
	if segments != 2 {
		return fmt.Errorf("%w: %d segments, want 3", ErrMalformed, segments+1)
	}
	return nil
}

// checkCrit implements RFC 7515 §4.1.11 for RFC 9449 §4.3 step 2: authz understands no JWS
// extension, so a proof with any crit member (even an empty one) is refused.
func checkCrit(hdr map[string]json.RawMessage) error {
	if _, ok := hdr["crit"]; ok {
		return fmt.Errorf("%w: no critical extension is supported", ErrCrit)
	}
	return nil
}

// checkTyp implements RFC 9449 §4.3 step 4: typ is dpop+jwt. Per profile §3 and RFC 7515
// §4.1.9 the comparison ignores case and accepts the application/ prefix.
func checkTyp(hdr map[string]json.RawMessage) error {
	typ, present, err := stringMember(hdr, "typ")
	if err != nil || !present {
		return fmt.Errorf("%w: missing or not a string", ErrTyp)
	}
	if len(typ) >= len("application/") && strings.EqualFold(typ[:len("application/")], "application/") {
		typ = typ[len("application/"):]
	}
	if !strings.EqualFold(typ, Typ) {
		return fmt.Errorf("%w: not %s", ErrTyp, Typ)
	}
	return nil
}

// checkAlg implements RFC 9449 §4.3 step 5: alg is a registered asymmetric signature algorithm,
// not none, and on the allow-list.
func checkAlg(hdr map[string]json.RawMessage, allowed map[string]bool) (jose.SignatureAlgorithm, error) {
	alg, present, err := stringMember(hdr, "alg")
	if err != nil || !present {
		return "", fmt.Errorf("%w: missing or not a string", ErrAlg)
	}
	if !asymmetricAlgorithms[alg] {
		return "", fmt.Errorf("%w: not an asymmetric signature algorithm", ErrAlg)
	}
	if !allowed[alg] {
		return "", fmt.Errorf("%w: %s is not allowed", ErrAlg, alg)
	}
	return jose.SignatureAlgorithm(alg), nil
}

// checkJWKPublic implements RFC 9449 §4.3 step 7 (run before step 6, which uses the key): the
// jwk header member is present, is a valid asymmetric public key (EC, RSA of at least 2048 bits,
// or Ed25519), and carries no private or symmetric key material.
func checkJWKPublic(hdr map[string]json.RawMessage) (*jose.JSONWebKey, error) {
	raw, ok := hdr["jwk"]
	if !ok {
		return nil, fmt.Errorf("%w: missing", ErrJWK)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil || members == nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrJWK)
	}
	for _, name := range privateJWKMembers {
		if _, ok := members[name]; ok {
			return nil, fmt.Errorf("%w: private or symmetric member %q", ErrJWK, name)
		}
	}
	kty, present, err := stringMember(members, "kty")
	if err != nil || !present {
		return nil, fmt.Errorf("%w: kty missing or not a string", ErrJWK)
	}
	switch kty {
	case "EC", "RSA", "OKP":
	case "oct":
		return nil, fmt.Errorf("%w: symmetric key", ErrJWK)
	default:
		return nil, fmt.Errorf("%w: unsupported kty", ErrJWK)
	}
	if use, present, err := stringMember(members, "use"); err != nil || (present && use != "sig") {
		return nil, fmt.Errorf("%w: use is not sig", ErrJWK)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrJWK, err)
	}
	if !k.Valid() || !k.IsPublic() {
		return nil, fmt.Errorf("%w: not a valid public key", ErrJWK)
	}
	switch key := k.Key.(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey:
	case *rsa.PublicKey:
		if key.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("%w: RSA key of %d bits, minimum %d", ErrJWK, key.N.BitLen(), minRSABits)
		}
	default:
		return nil, fmt.Errorf("%w: unsupported key type", ErrJWK)
	}
	return &k, nil
}

// checkAlgMatchesKey implements RFC 9449 §4.3 step 5 ("acceptable per local policy") with
// RFC 7518 §3.1 and RFC 8037 §3.1: the alg fits the jwk (ES256 with P-256, ES384 with P-384,
// ES512 with P-521, RS*/PS* with RSA, EdDSA with Ed25519), and equals the jwk's own alg if it has one.
func checkAlgMatchesKey(alg jose.SignatureAlgorithm, jwk *jose.JSONWebKey) error {
	if jwk.Algorithm != "" && jwk.Algorithm != string(alg) {
		return fmt.Errorf("%w: jwk is for %s", ErrAlg, jwk.Algorithm)
	}
	ok := false
	switch key := jwk.Key.(type) {
	case *ecdsa.PublicKey:
		switch alg {
		case jose.ES256:
			ok = key.Curve == elliptic.P256()
		case jose.ES384:
			ok = key.Curve == elliptic.P384()
		case jose.ES512:
			ok = key.Curve == elliptic.P521()
		}
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			ok = true
		}
	case ed25519.PublicKey:
		ok = alg == jose.EdDSA
	}
	if !ok {
		return fmt.Errorf("%w: %s does not fit the jwk", ErrAlg, alg)
	}
	return nil
}

// verifySignature implements RFC 9449 §4.3 step 6: the JWS verifies with the header's jwk.
// go-jose parses the proof with the single algorithm already accepted; its header must agree
// with the one read above. It returns the verified payload.
func verifySignature(proof string, alg jose.SignatureAlgorithm, jwk *jose.JSONWebKey) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{alg})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(jws.Signatures) != 1 || jws.Signatures[0].Protected.Algorithm != string(alg) {
		return nil, fmt.Errorf("%w: header not understood", ErrMalformed)
	}
	payload, err := jws.Verify(jwk.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSignature, err)
	}
	return payload, nil
}

// claims are the payload members RFC 9449 §4.2 defines.
type claims struct {
	jti, htm, htu string
	iat           time.Time
	nonce         string
	ath           string
	hasATH        bool
}

// checkRequiredClaims implements RFC 9449 §4.3 steps 2 and 3 on the verified payload: it is one
// JSON object without duplicate members that holds jti (1 to 256 bytes), htm and htu (non-empty
// strings) and iat (a number); nonce and ath, when present, are strings.
func checkRequiredClaims(payload []byte) (claims, error) {
	var c claims
	m, err := decodeObject(payload)
	if err != nil {
		return c, fmt.Errorf("payload: %w", err)
	}
	for _, name := range []string{"jti", "htm", "htu"} {
		v, present, err := stringMember(m, name)
		if err != nil || !present || v == "" {
			return c, fmt.Errorf("%w: %s missing, empty or not a string", ErrClaims, name)
		}
		switch name {
		case "jti":
			c.jti = v
		case "htm":
			c.htm = v
		case "htu":
			c.htu = v
		}
	}
	if len(c.jti) > maxJTILen {
		return c, fmt.Errorf("%w: jti longer than %d bytes", ErrClaims, maxJTILen)
	}
	rawIAT, ok := m["iat"]
	if !ok {
		return c, fmt.Errorf("%w: iat missing", ErrClaims)
	}
	if c.iat, err = numericDate(rawIAT); err != nil {
		return c, err
	}
	if c.nonce, _, err = stringMember(m, "nonce"); err != nil {
		return c, fmt.Errorf("%w: nonce is not a string", ErrClaims)
	}
	if c.ath, c.hasATH, err = stringMember(m, "ath"); err != nil {
		return c, fmt.Errorf("%w: ath is not a string", ErrClaims)
	}
	return c, nil
}

// maxNumericDate bounds iat (year 4147): anything later cannot be within any window and would
// overflow time arithmetic.
const maxNumericDate = 1 << 37

// numericDate reads an RFC 7519 §2 NumericDate (seconds, possibly fractional).
func numericDate(raw json.RawMessage) (time.Time, error) {
	s := string(raw)
	if s == "" || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
		return time.Time{}, fmt.Errorf("%w: iat is not a number", ErrClaims)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, fmt.Errorf("%w: iat is not a number", ErrClaims)
	}
	if f < 0 || f > maxNumericDate {
		return time.Time{}, fmt.Errorf("%w: iat out of range", ErrIAT)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// checkHTM implements RFC 9449 §4.3 step 8: htm equals the request method exactly
// (methods are case-sensitive, RFC 9110 §9.1).
func checkHTM(htm, method string) error {
	if method == "" || htm != method {
		return fmt.Errorf("%w: does not match the request method %q", ErrHTM, method)
	}
	return nil
}

// checkHTU implements RFC 9449 §4.3 step 9: htu matches the request URI, ignoring query and
// fragment, after RFC 3986 §6.2.2 and §6.2.3 normalisation (see normalizeHTU).
func checkHTU(htu, expected string) error {
	want, err := normalizeHTU(expected)
	if err != nil {
		return fmt.Errorf("%w: expected URL %q is not usable: %w", ErrHTU, expected, err)
	}
	got, err := normalizeHTU(htu)
	if err != nil {
		return fmt.Errorf("%w: not an absolute http(s) URL", ErrHTU)
	}
	if got != want {
		return fmt.Errorf("%w: does not match %s", ErrHTU, want)
	}
	return nil
}

// checkIAT implements RFC 9449 §4.3 step 11 with §11.1 and profile §5: iat lies within
// [now - maxAge - skew, now + skew].
func checkIAT(iat, now time.Time, maxAge, skew time.Duration) error {
	if iat.Before(now.Add(-maxAge - skew)) {
		return fmt.Errorf("%w: issued too long ago", ErrIAT)
	}
	if iat.After(now.Add(skew)) {
		return fmt.Errorf("%w: issued in the future", ErrIAT)
	}
	return nil
}

// checkATH implements RFC 9449 §4.3 step 12 (first half): when the proof accompanies an access
// token, ath is present and equals AccessTokenHash(token).
func checkATH(c claims, accessToken string) error {
	if accessToken == "" {
		return nil
	}
	if !c.hasATH {
		return fmt.Errorf("%w: missing while an access token is presented", ErrATH)
	}
	if subtle.ConstantTimeCompare([]byte(c.ath), []byte(AccessTokenHash(accessToken))) != 1 {
		return fmt.Errorf("%w: does not match the access token", ErrATH)
	}
	return nil
}
