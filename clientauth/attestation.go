package clientauth

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// attestation is a verified Client Attestation JWT. It is immutable once built (the
// verified-attestation cache shares it between requests).
type attestation struct {
	sub        string
	exp        time.Time
	iat, nbf   time.Time
	hasIat     bool
	hasNbf     bool
	cnf        *jose.JSONWebKey
	jkt        string
	attester   *attesterEntry
	resolution string
	// clientScoped is set when the key was found among the attesters allowed for the client
	// (keys tried, MAC without kid), so a cached result is reused only for a client allowing it.
	clientScoped bool
	claims       map[string]json.RawMessage
	// certsValidUntil is the earliest NotAfter of its x5c chain (zero without x5c).
	certsValidUntil time.Time
}

// verifyAttestation runs ABCA-09 §7.1 (steps 1–6; step 7 is part of the client binding) on the
// OAuth-Client-Attestation value, filling res as far as it gets. Time-dependent checks run on
// every call, also when the signature result comes from the cache.
func (v *Verifier) verifyAttestation(ctx context.Context, ts *trustSet, token string, client ClientPolicy, res *Result) (*attestation, error) {
	now := v.now()
	att := v.cache.get(token, ts.generation, now)
	if att != nil && att.clientScoped && !att.attester.allowedFor(client.AllowedAttesters) {
		att = nil // resolved among another client's attesters: resolve again for this one
	}
	if att == nil {
		var err error
		att, err = v.verifyAttestationJWT(ctx, ts, token, client, res)
		if err != nil {
			return nil, err
		}
		until := minTime(att.exp.Add(v.cfg.ClockSkew), now.Add(jwksCacheTTL))
		if !att.certsValidUntil.IsZero() {
			until = minTime(until, att.certsValidUntil)
		}
		v.cache.put(token, ts.generation, att, now, until)
	}
	res.fillAttestation(att)
	// Profile §8: x5c validity periods hold at every use, not only at the first verification.
	if !att.certsValidUntil.IsZero() && now.After(att.certsValidUntil) {
		return att, fmt.Errorf("%w: a certificate is expired or not yet valid", ErrX5CChain)
	}
	if err := v.checkAttestationExp(att, now); err != nil {
		return att, err
	}
	if err := v.checkAttestationNbf(att, now); err != nil {
		return att, err
	}
	if err := v.checkAttestationFreshness(att, now); err != nil {
		return att, err
	}
	return att, nil
}

// verifyAttestationJWT runs the time-independent part of ABCA-09 §7.1: parse, algorithm, key
// resolution and signature first, then typ, claims and cnf read from the verified payload only.
func (v *Verifier) verifyAttestationJWT(ctx context.Context, ts *trustSet, token string, client ClientPolicy, res *Result) (*attestation, error) {
	p, err := v.parseAttestationJWS(ts, token)
	if err != nil {
		return nil, err
	}
	r, err := v.resolveAttesterKey(ctx, ts, p, client)
	if r != nil {
		res.Resolution = r.method
		if r.attester != nil {
			res.Attester = r.attester.id
		}
	}
	if err != nil {
		return nil, err
	}
	attester, payload, err := verifyAttestationSignature(p, r)
	if err != nil {
		return nil, err
	}
	res.Attester = attester.id
	if err := checkAttestationTyp(p.header); err != nil {
		return nil, err
	}
	att, err := parseAttestationClaims(payload)
	if err != nil {
		return nil, err
	}
	if att.cnf, att.jkt, err = checkCnfKey(att.claims["cnf"]); err != nil {
		return nil, err
	}
	att.attester, att.resolution, att.certsValidUntil = attester, r.method, r.validUntil
	att.clientScoped = r.attester == nil
	return att, nil
}

// parseAttestationJWS implements ABCA-09 §7.1 step 1 (a well-formed compact JWT) and step 3 (alg
// registered, not none, in client_attestation_signing_alg_values_supported; HS* only while an
// attester's secret allows it, profile §8).
func (v *Verifier) parseAttestationJWS(ts *trustSet, token string) (*parsedJWS, error) {
	return parseCompactJWS(token, ts.attAlgs, v.cfg.MaxTokenBytes, attestationJWSErrors)
}

// checkAttestationTyp implements ABCA-09 §4 (typ is oauth-client-attestation+jwt) with the RFC
// 7515 §4.1.9 comparison of profile §3.
func checkAttestationTyp(header map[string]json.RawMessage) error {
	if err := checkTyp(header, TypAttestation); err != nil {
		return fmt.Errorf("%w: %w", ErrAttestationTyp, err)
	}
	return nil
}

// parseAttestationClaims implements ABCA-09 §7.1 step 2 and §4: sub (non-empty string), exp
// (NumericDate) and cnf (object) are required; iat and nbf, when present, are NumericDates.
// Unknown claims are ignored (§4 rule 1). cnf.jwk is checked by checkCnfKey.
func parseAttestationClaims(payload []byte) (*attestation, error) {
	claims, err := decodeMembers(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not an object", ErrAttestationClaims)
	}
	att := &attestation{claims: claims}
	sub, ok := jsonString(claims["sub"])
	if !ok || sub == "" {
		return nil, fmt.Errorf("%w: sub is missing or not a non-empty string", ErrAttestationClaims)
	}
	att.sub = sub
	if att.exp, ok = jsonNumericDate(claims["exp"]); !ok {
		return nil, fmt.Errorf("%w: exp is missing or not a NumericDate", ErrAttestationClaims)
	}
	if raw, present := claims["iat"]; present {
		if att.iat, ok = jsonNumericDate(raw); !ok {
			return nil, fmt.Errorf("%w: iat is not a NumericDate", ErrAttestationClaims)
		}
		att.hasIat = true
	}
	if raw, present := claims["nbf"]; present {
		if att.nbf, ok = jsonNumericDate(raw); !ok {
			return nil, fmt.Errorf("%w: nbf is not a NumericDate", ErrAttestationClaims)
		}
		att.hasNbf = true
	}
	cnf, present := claims["cnf"]
	if !present || len(cnf) == 0 || cnf[0] != '{' {
		return nil, fmt.Errorf("%w: cnf is missing or not an object", ErrAttestationClaims)
	}
	return att, nil
}

// checkAttestationExp implements ABCA-09 §4 rule 3 / RFC 7519 §4.1.4: the attestation is
// rejected once exp has passed by more than the clock skew.
func (v *Verifier) checkAttestationExp(att *attestation, now time.Time) error {
	if !now.Before(att.exp.Add(v.cfg.ClockSkew)) {
		return fmt.Errorf("%w: exp has passed", ErrAttestationExpired)
	}
	return nil
}

// checkAttestationNbf implements RFC 7519 §4.1.5 (ABCA-09 §4 rule 3): an nbf, if present, is not
// further in the future than the clock skew.
func (v *Verifier) checkAttestationNbf(att *attestation, now time.Time) error {
	if att.hasNbf && now.Add(v.cfg.ClockSkew).Before(att.nbf) {
		return fmt.Errorf("%w: nbf is in the future", ErrAttestationNotYetValid)
	}
	return nil
}

// checkAttestationFreshness implements ABCA-09 §7.1 step 6 with profile §3: an iat further in
// the future than the skew is rejected; with max_attestation_age set, iat is required and must
// be no older than that age (plus skew). Without max_attestation_age only exp limits reuse.
func (v *Verifier) checkAttestationFreshness(att *attestation, now time.Time) error {
	if att.hasIat && att.iat.After(now.Add(v.cfg.ClockSkew)) {
		return fmt.Errorf("%w: iat is in the future", ErrAttestationNotYetValid)
	}
	if v.cfg.MaxAttestationAge <= 0 {
		return nil
	}
	if !att.hasIat {
		return fmt.Errorf("%w: iat is required to judge freshness", ErrAttestationTooOld)
	}
	if now.Sub(att.iat) > v.cfg.MaxAttestationAge+v.cfg.ClockSkew {
		return fmt.Errorf("%w: iat is older than max_attestation_age", ErrAttestationTooOld)
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
