package clientauth

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/authz/authz/dpop"
	"github.com/authz/authz/internal/strictjson"
)

// requestHeaders is the shape of one request after ABCA-09 §7.1 step 1, §7.2 step 1 and the
// mode selection of profile §1.
type requestHeaders struct {
	attestation string
	pop         string // normal mode only
	dpop        string // combined mode only
	mode        string // PoPMethodJWT or PoPMethodDPoP, by which proof header is present
}

// headerValues returns every value of the named field under any capitalisation of its name
// (RFC 9110 §5.1: names are case-insensitive; a hand-built http.Header may not be canonical).
func headerValues(h http.Header, name string) []string {
	var out []string
	for k, v := range h {
		if strings.EqualFold(k, name) {
			out = append(out, v...)
		}
	}
	return out
}

// parseHeaders implements ABCA-09 §7.1 step 1 and §7.2 step 1 / §7.3 steps 1–2, with the mode
// selection of profile §1 (-10 §5): exactly one OAuth-Client-Attestation; an
// OAuth-Client-Attestation-PoP header selects normal mode and must be single; otherwise a DPoP
// header selects combined mode and must be single too (extractDPoPHeader); neither is
// ErrHeaderMissing. Every header is checked here, before any JWT is verified, so a duplicate
// DPoP header is a request error whatever the attestation holds. The mode is set from the
// headers present even when a check fails (the audit record's pop_method, profile §7).
func parseHeaders(h http.Header, maxBytes int) (requestHeaders, error) {
	var rh requestHeaders
	switch {
	case len(headerValues(h, HeaderClientAttestationPoP)) > 0:
		rh.mode = PoPMethodJWT
	case len(headerValues(h, dpop.Header)) > 0:
		rh.mode = PoPMethodDPoP
	}
	att, err := extractTokenHeader(h, HeaderClientAttestation, maxBytes)
	if err != nil {
		return rh, err
	}
	rh.attestation = att
	switch rh.mode {
	case PoPMethodJWT:
		rh.pop, err = extractTokenHeader(h, HeaderClientAttestationPoP, maxBytes)
	case PoPMethodDPoP:
		rh.dpop, err = extractDPoPHeader(h, maxBytes)
	default:
		err = fmt.Errorf("%w: neither %s nor %s is present", ErrHeaderMissing, HeaderClientAttestationPoP, dpop.Header)
	}
	return rh, err
}

// extractTokenHeader checks one JWT-carrying request header (ABCA-09 §7.1 step 1, §7.2 step 1;
// profile §3): exactly one field line; at most maxBytes (checked before anything is parsed); no
// comma-joined list; no whitespace; no legacy "attestation~pop" concatenation (removed in -08);
// RFC 9110 §11.2 token68 syntax.
func extractTokenHeader(h http.Header, name string, maxBytes int) (string, error) {
	values := headerValues(h, name)
	switch {
	case len(values) == 0:
		return "", fmt.Errorf("%w: %s", ErrHeaderMissing, name)
	case len(values) > 1:
		return "", fmt.Errorf("%w: %d %s field lines", ErrHeaderDuplicate, len(values), name)
	}
	v := values[0]
	if len(v) > maxBytes {
		return "", fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrHeaderTooLarge, name, len(v), maxBytes)
	}
	if strings.Contains(v, ",") {
		return "", fmt.Errorf("%w: %s holds a comma-joined list", ErrHeaderDuplicate, name)
	}
	if strings.Contains(v, "~") {
		return "", fmt.Errorf("%w: %s uses the concatenated serialization removed in draft -08", ErrHeaderMalformed, name)
	}
	if err := checkToken68(v); err != nil {
		return "", fmt.Errorf("%w: %s %v", ErrHeaderMalformed, name, err)
	}
	return v, nil
}

// checkToken68 implements the RFC 9110 §11.2 token68 syntax: 1*( ALPHA / DIGIT / "-" / "." /
// "_" / "~" / "+" / "/" ) *"=".
func checkToken68(v string) error {
	if v == "" {
		return fmt.Errorf("is empty")
	}
	i := 0
	for ; i < len(v); i++ {
		c := v[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' {
			continue
		}
		break
	}
	if i == 0 {
		return fmt.Errorf("does not start with a token68 character")
	}
	for ; i < len(v); i++ {
		if v[i] != '=' {
			if v[i] == ' ' || v[i] == '\t' {
				return fmt.Errorf("contains whitespace")
			}
			return fmt.Errorf("is not token68")
		}
	}
	return nil
}

// HasAttestation reports whether any attestation header (OAuth-Client-Attestation or
// OAuth-Client-Attestation-PoP) is present, under any capitalisation.
func HasAttestation(h http.Header) bool {
	return len(headerValues(h, HeaderClientAttestation)) > 0 || len(headerValues(h, HeaderClientAttestationPoP)) > 0
}

// ClaimedClientID returns the *unverified* sub of the OAuth-Client-Attestation header, for
// routing the request to a client record only; "" when there is not exactly one readable
// header within the default size limit or sub is not a string. Nothing is verified: Authenticate
// checks sub against that record afterwards (ABCA-09 §7.1 step 7).
func ClaimedClientID(h http.Header) string {
	tok, err := extractTokenHeader(h, HeaderClientAttestation, DefaultMaxTokenBytes)
	if err != nil {
		return ""
	}
	claims, err := unverifiedClaims(tok)
	if err != nil {
		return ""
	}
	sub, _ := jsonString(claims["sub"])
	return sub
}

// unverifiedClaims decodes the payload of a compact JWS without verifying anything. It is used
// only for routing and for the audit record of a rejected request, never for a decision.
func unverifiedClaims(tok string) (map[string]json.RawMessage, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("not three segments")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	if err := strictjson.CheckObject(payload); err != nil {
		return nil, err
	}
	return decodeMembers(payload)
}
