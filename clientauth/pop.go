package clientauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// maxJTILen bounds jti (bytes) before it reaches the replay store.
const maxJTILen = 256

// maxAudText bounds Result.PoPAud for the audit record.
const maxAudText = 512

// popClaims are the verified claims of a Client Attestation PoP JWT.
type popClaims struct {
	aud      json.RawMessage
	audText  string
	jti      string
	iat      time.Time
	exp, nbf time.Time
	hasExp   bool
	hasNbf   bool
	claims   map[string]json.RawMessage
}

// verifyPoP runs ABCA-09 §7.2 (normal mode) on the OAuth-Client-Attestation-PoP value against
// the attested instance key cnf, filling res.PoPAud and res.Challenge. Replay (step 9) is the
// caller's: it records the returned jti after every other check passed.
func (v *Verifier) verifyPoP(token string, cnf *jose.JSONWebKey, res *Result) (*popClaims, error) {
	now := v.now()
	p, err := v.parsePoPJWS(token)
	if err != nil {
		return nil, err
	}
	if err := checkPoPAlg(p.alg, cnf); err != nil {
		return nil, err
	}
	payload, err := verifyPoPSignature(p, cnf)
	if err != nil {
		return nil, err
	}
	if err := checkPoPTyp(p.header); err != nil {
		return nil, err
	}
	c, err := parsePoPClaims(payload)
	if err != nil {
		return nil, err
	}
	res.PoPAud = c.audText
	if err := v.checkPoPAudience(c); err != nil {
		return c, err
	}
	if err := v.checkPoPIat(c, now); err != nil {
		return c, err
	}
	if err := v.checkPoPExpNbf(c, now); err != nil {
		return c, err
	}
	status, err := v.checkPoPChallenge(c)
	res.Challenge = status
	if err != nil {
		return c, err
	}
	return c, nil
}

// parsePoPJWS implements ABCA-09 §7.2 step 1 (a well-formed compact JWT) and the allow-list half
// of step 3 (client_attestation_pop_signing_alg_values_supported, asymmetric only).
func (v *Verifier) parsePoPJWS(token string) (*parsedJWS, error) {
	return parseCompactJWS(token, v.popAlgs, v.cfg.MaxTokenBytes, popJWSErrors)
}

// checkPoPAlg implements ABCA-09 §7.2 step 3 and §5.1 rule 2: alg is asymmetric and fits the
// instance key (ES256 ↔ P-256, ES384 ↔ P-384, ES512 ↔ P-521, RS*/PS* ↔ RSA, EdDSA ↔ Ed25519), and
// equals the key's own alg member when it has one.
func checkPoPAlg(alg jose.SignatureAlgorithm, cnf *jose.JSONWebKey) error {
	if isMAC(alg) || !jwkFitsAlg(cnf, alg) {
		return fmt.Errorf("%w: %s does not fit the attested instance key", ErrPoPAlg, alg)
	}
	return nil
}

// verifyPoPSignature implements ABCA-09 §7.2 step 4 and §5.1 rule 3: the signature verifies with
// cnf.jwk of the attestation and nothing else (a jwk, kid or x5c in the PoP header is ignored).
func verifyPoPSignature(p *parsedJWS, cnf *jose.JSONWebKey) ([]byte, error) {
	payload, err := p.verify(cnf.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: it does not verify with the attested instance key", ErrPoPSignature)
	}
	return payload, nil
}

// checkPoPTyp implements ABCA-09 §5.1 (typ is oauth-client-attestation-pop+jwt) with the RFC
// 7515 §4.1.9 comparison of profile §3.
func checkPoPTyp(header map[string]json.RawMessage) error {
	if err := checkTyp(header, TypPoP); err != nil {
		return fmt.Errorf("%w: %w", ErrPoPTyp, err)
	}
	return nil
}

// parsePoPClaims implements ABCA-09 §7.2 step 2 and §5.1: aud, jti (non-empty string) and iat
// (NumericDate) are required; exp and nbf, when present, are NumericDates; unknown claims are
// ignored. challenge is read by checkPoPChallenge.
func parsePoPClaims(payload []byte) (*popClaims, error) {
	claims, err := decodeMembers(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not an object", ErrPoPClaims)
	}
	c := &popClaims{claims: claims}
	aud, present := claims["aud"]
	if !present {
		return nil, fmt.Errorf("%w: aud is missing", ErrPoPClaims)
	}
	c.aud, c.audText = aud, audText(aud)
	var ok bool
	if c.jti, ok = jsonString(claims["jti"]); !ok || c.jti == "" {
		return c, fmt.Errorf("%w: jti is missing or not a non-empty string", ErrPoPClaims)
	}
	if len(c.jti) > maxJTILen {
		return c, fmt.Errorf("%w: jti is longer than %d bytes", ErrPoPClaims, maxJTILen)
	}
	if c.iat, ok = jsonNumericDate(claims["iat"]); !ok {
		return c, fmt.Errorf("%w: iat is missing or not a NumericDate", ErrPoPClaims)
	}
	if raw, present := claims["exp"]; present {
		if c.exp, ok = jsonNumericDate(raw); !ok {
			return c, fmt.Errorf("%w: exp is not a NumericDate", ErrPoPClaims)
		}
		c.hasExp = true
	}
	if raw, present := claims["nbf"]; present {
		if c.nbf, ok = jsonNumericDate(raw); !ok {
			return c, fmt.Errorf("%w: nbf is not a NumericDate", ErrPoPClaims)
		}
		c.hasNbf = true
	}
	return c, nil
}

// audText is the PoP aud as presented, for the audit record: the string, the single element of
// a one-element string array, or else the JSON text (bounded).
func audText(raw json.RawMessage) string {
	if s, ok := jsonString(raw); ok {
		return truncate(s)
	}
	var arr []json.RawMessage
	if json.Unmarshal(raw, &arr) == nil && len(arr) == 1 {
		if s, ok := jsonString(arr[0]); ok {
			return truncate(s)
		}
	}
	return truncate(string(raw))
}

func truncate(s string) string {
	if len(s) > maxAudText {
		return s[:maxAudText]
	}
	return s
}

// checkPoPAudience implements ABCA-09 §7.2 step 7 with profile §3: aud is exactly the issuer
// identifier, as a string or as the only element of an array. A trailing slash, a token
// endpoint URL or a second audience fails.
func (v *Verifier) checkPoPAudience(c *popClaims) error {
	if s, ok := jsonString(c.aud); ok {
		if s == v.cfg.Issuer {
			return nil
		}
		return fmt.Errorf("%w: aud is not the issuer identifier", ErrPoPAudience)
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(c.aud, &arr); err != nil || len(arr) == 0 {
		return fmt.Errorf("%w: aud is neither a string nor an array", ErrPoPAudience)
	}
	if len(arr) != 1 {
		return fmt.Errorf("%w: aud names more than one audience", ErrPoPAudience)
	}
	if s, ok := jsonString(arr[0]); ok && s == v.cfg.Issuer {
		return nil
	}
	return fmt.Errorf("%w: aud is not the issuer identifier", ErrPoPAudience)
}

// checkPoPIat implements ABCA-09 §7.2 step 6 with profile §5: iat is at most pop_max_age plus
// clock skew in the past and at most clock skew in the future.
func (v *Verifier) checkPoPIat(c *popClaims, now time.Time) error {
	if c.iat.After(now.Add(v.cfg.ClockSkew)) {
		return fmt.Errorf("%w: iat is in the future", ErrPoPIatWindow)
	}
	if now.Sub(c.iat) > v.cfg.PoPMaxAge+v.cfg.ClockSkew {
		return fmt.Errorf("%w: iat is older than pop_max_age", ErrPoPIatWindow)
	}
	return nil
}

// checkPoPExpNbf implements ABCA-09 §5.1 rule 4 with RFC 7519 §4.1.4, §4.1.5: exp and nbf are
// not defined for the PoP, but when present they are honoured (with the clock skew).
func (v *Verifier) checkPoPExpNbf(c *popClaims, now time.Time) error {
	if c.hasExp && !now.Before(c.exp.Add(v.cfg.ClockSkew)) {
		return fmt.Errorf("%w: exp has passed", ErrPoPClaims)
	}
	if c.hasNbf && now.Add(v.cfg.ClockSkew).Before(c.nbf) {
		return fmt.Errorf("%w: nbf is in the future", ErrPoPClaims)
	}
	return nil
}

// checkPoPChallenge implements ABCA-09 §7.2 steps 5 and 8 (one check: the draft states it
// twice) with profile §5: with challenge_required the challenge claim must be present; a
// presented challenge must be a string this server issued within challenge_ttl; and a challenge
// of this server in the wrong claim (nonce, as in the -09 examples) is refused (profile §2),
// while any other nonce value is ignored (decision 8).
func (v *Verifier) checkPoPChallenge(c *popClaims) (string, error) {
	raw, present := c.claims["challenge"]
	if !present {
		if nonce, ok := jsonString(c.claims["nonce"]); ok && v.issuedHere(nonce) {
			return ChallengeInvalid, fmt.Errorf("%w: a challenge of this server is in the nonce claim; ABCA-09 §5.1 carries it in challenge", ErrChallengeInvalid)
		}
		if v.cfg.ChallengeRequired {
			return ChallengeMissing, fmt.Errorf("%w: the PoP has no challenge claim", ErrChallengeMissing)
		}
		return ChallengeNone, nil
	}
	s, ok := jsonString(raw)
	if !ok {
		return ChallengeInvalid, fmt.Errorf("%w: challenge is not a string", ErrChallengeInvalid)
	}
	if err := v.CheckChallenge(s); err != nil {
		return ChallengeInvalid, err
	}
	return ChallengeValid, nil
}

// issuedHere reports whether s is a challenge this server issued, expired or not.
func (v *Verifier) issuedHere(s string) bool {
	err := v.CheckChallenge(s)
	return err == nil || errors.Is(err, ErrChallengeExpired)
}

// replayExpiry is when a replay entry for a proof issued at iat may be forgotten: after the
// proof can no longer pass the iat window (iat + pop_max_age + clock_skew), and never earlier
// than now + clock_skew (profile §5).
func (v *Verifier) replayExpiry(iat, now time.Time) time.Time {
	exp := iat.Add(v.cfg.PoPMaxAge + v.cfg.ClockSkew)
	if floor := now.Add(v.cfg.ClockSkew); exp.Before(floor) {
		return floor
	}
	return exp
}
