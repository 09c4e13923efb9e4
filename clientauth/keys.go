package clientauth

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// keyCandidate is one key that may verify an attestation: a public key, or for HS* the raw
// shared secret.
type keyCandidate struct {
	attester *attesterEntry
	key      any
}

// keyResolution is the outcome of attester key resolution.
type keyResolution struct {
	method     string         // Resolution* constant
	attester   *attesterEntry // the single attester the method pinned, nil for keys tried / MAC without kid
	candidates []keyCandidate
	// validUntil is the earliest NotAfter of the x5c chain that verified (zero for other
	// methods): a cached verification must not outlive a certificate (profile §8).
	validUntil time.Time
}

// oidKeyUsage is id-ce-keyUsage (RFC 5280 §4.2.1.3).
var oidKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 15}

// resolveAttesterKey implements ABCA-09 §7.1 step 4 and §9.7 with the precedence of profile §8:
// a MAC alg goes to the shared-secret path; otherwise x5c present → x5c path (a kid beside it is
// ignored); else jku → jku path; else kid → key lookup; else every key of the attesters allowed
// for the client is tried. Only alg, kid, x5c and jku are read, and only to choose a key.
func (v *Verifier) resolveAttesterKey(ctx context.Context, ts *trustSet, p *parsedJWS, client ClientPolicy) (*keyResolution, error) {
	kid, hasKid, err := optionalHeaderString(p.header, "kid")
	if err != nil {
		return nil, err
	}
	jku, hasJKU, err := optionalHeaderString(p.header, "jku")
	if err != nil {
		return nil, err
	}
	_, hasX5C := p.header["x5c"]
	switch {
	case isMAC(p.alg):
		if hasX5C || hasJKU {
			return nil, fmt.Errorf("%w: a MAC attestation cannot name an x5c chain or jku", ErrAttestationAlg)
		}
		return resolveMACKey(ts, p.alg, kid, hasKid, client)
	case hasX5C:
		return v.resolveX5CKey(ts, p)
	case hasJKU:
		return v.resolveJKUKey(ctx, ts, p.alg, jku, kid, hasKid)
	case hasKid:
		return v.resolveKidKey(ctx, ts, p.alg, kid)
	default:
		return v.resolveKeysTried(ctx, ts, p.alg, client)
	}
}

// optionalHeaderString reads a string header parameter that may be absent.
func optionalHeaderString(header map[string]json.RawMessage, name string) (string, bool, error) {
	raw, present := header[name]
	if !present {
		return "", false, nil
	}
	s, ok := jsonString(raw)
	if !ok {
		return "", false, fmt.Errorf("%w: %s is not a string", ErrAttestationMalformed, name)
	}
	return s, true, nil
}

// resolveMACKey implements profile §8 "MAC attesters": an HS* attestation with a kid must name
// an attester id whose hmac_secret is long enough for the algorithm (RFC 7518 §3.2); without a
// kid every such attester allowed for the client is tried. Public key material is never a
// candidate (RFC 8725 §3.1).
func resolveMACKey(ts *trustSet, alg jose.SignatureAlgorithm, kid string, hasKid bool, client ClientPolicy) (*keyResolution, error) {
	minimum := 0
	for _, h := range hmacAlgorithms {
		if h.alg == alg {
			minimum = h.minimum
		}
	}
	r := &keyResolution{method: ResolutionHMAC}
	if hasKid {
		a := ts.byID[kid]
		if a == nil || len(a.hmacSecret) == 0 {
			return r, fmt.Errorf("%w: the MAC kid names no attester with a shared secret", ErrAttestationUnknownKey)
		}
		r.attester = a
		if len(a.hmacSecret) < minimum {
			return r, fmt.Errorf("%w: the attester's secret is too short for %s", ErrAttestationAlg, alg)
		}
		r.candidates = []keyCandidate{{attester: a, key: a.hmacSecret}}
		return r, nil
	}
	for _, a := range ts.enabled {
		if len(a.hmacSecret) >= minimum && a.allowedFor(client.AllowedAttesters) {
			r.candidates = append(r.candidates, keyCandidate{attester: a, key: a.hmacSecret})
		}
	}
	if len(r.candidates) == 0 {
		return r, fmt.Errorf("%w: no attester allowed for this client has a shared secret for %s", ErrAttestationUnknownKey, alg)
	}
	return r, nil
}

// resolveX5CKey implements ABCA-09 §9.7 (x5c) with profile §8: the chain is built only to one
// attester's configured roots (certificates in x5c are intermediates at most, so a root inside
// x5c is ignored), validity periods are checked at the verifier's clock, extended key usage is
// not required, and a leaf with a KeyUsage extension must allow digitalSignature (RFC 5280
// §4.2.1.3). Revocation is not checked.
func (v *Verifier) resolveX5CKey(ts *trustSet, p *parsedJWS) (*keyResolution, error) {
	r := &keyResolution{method: ResolutionX5C}
	hdr := p.jws.Signatures[0].Header
	var leaf *x509.Certificate
	var chain []*x509.Certificate
	var lastErr error
	for _, a := range ts.enabled {
		if a.roots == nil {
			continue
		}
		chains, err := hdr.Certificates(x509.VerifyOptions{
			Roots:       a.roots,
			CurrentTime: v.now(),
			KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err != nil {
			lastErr = err
			continue
		}
		if r.attester != nil {
			return r, fmt.Errorf("%w: the chain verifies to roots of more than one attester", ErrX5CChain)
		}
		r.attester, chain, leaf = a, chains[0], chains[0][0]
	}
	if r.attester == nil {
		if lastErr == nil {
			lastErr = errors.New("no attester has x5c roots")
		}
		return r, fmt.Errorf("%w: %s", ErrX5CChain, describeX509Error(lastErr))
	}
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(oidKeyUsage) && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
			return r, fmt.Errorf("%w: the leaf certificate's key usage excludes digitalSignature", ErrX5CChain)
		}
	}
	if !keyFitsAlg(leaf.PublicKey, p.alg) {
		return r, fmt.Errorf("%w: %s does not fit the certificate's key", ErrAttestationAlg, p.alg)
	}
	r.candidates = []keyCandidate{{attester: r.attester, key: leaf.PublicKey}}
	for _, c := range chain {
		if r.validUntil.IsZero() || c.NotAfter.Before(r.validUntil) {
			r.validUntil = c.NotAfter
		}
	}
	return r, nil
}

// describeX509Error names a chain failure without echoing certificate contents.
func describeX509Error(err error) string {
	var inv x509.CertificateInvalidError
	var unk x509.UnknownAuthorityError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return "a certificate is expired or not yet valid"
	case errors.As(err, &inv):
		return "a certificate is not valid for this use"
	case errors.As(err, &unk):
		return "the chain does not lead to a configured root"
	case errors.Is(err, jose.ErrMissingX5cHeader):
		return "x5c is empty"
	}
	return "the chain does not verify"
}

// resolveJKUKey implements ABCA-09 §9.7 (kid + jku) with profile §8: the jku URL must equal an
// enabled attester's jku_allowlist entry byte for byte (no other URL is ever fetched); the set is
// fetched and cached, and an unknown kid refreshes it at most once a minute.
func (v *Verifier) resolveJKUKey(ctx context.Context, ts *trustSet, alg jose.SignatureAlgorithm, jku, kid string, hasKid bool) (*keyResolution, error) {
	r := &keyResolution{method: ResolutionJKU}
	a := ts.jku[jku]
	if a == nil {
		return r, fmt.Errorf("%w: jku is not on any trusted attester's allow-list", ErrJKUNotAllowed)
	}
	r.attester = a
	keys, err := v.fetcher.get(ctx, jku, false)
	matches := keysWithKid(keys, kid, hasKid)
	if len(matches) == 0 && hasKid {
		keys, err = v.fetcher.get(ctx, jku, true)
		matches = keysWithKid(keys, kid, hasKid)
	}
	if len(matches) == 0 {
		if err != nil {
			return r, fmt.Errorf("%w: the jku key set could not be fetched: %w", ErrAttestationUnknownKey, err)
		}
		return r, fmt.Errorf("%w: no key in the jku key set matches", ErrAttestationUnknownKey)
	}
	return r, r.addFitting(a, matches, alg)
}

// resolveKidKey implements profile §4/§8 kid lookup: the kid is searched in every enabled
// attester's static set and fetched jwks_uri set; found in two attesters it is ambiguous and
// rejected, never guessed; not found, the jwks_uri sets are refreshed (at most once a minute).
func (v *Verifier) resolveKidKey(ctx context.Context, ts *trustSet, alg jose.SignatureAlgorithm, kid string) (*keyResolution, error) {
	r := &keyResolution{method: ResolutionKID}
	var owner *attesterEntry
	var matches []jose.JSONWebKey
	for pass := 0; pass < 2 && owner == nil; pass++ {
		for _, a := range ts.enabled {
			keys := keysWithKid(a.keys, kid, true)
			if a.jwksURI != "" {
				fetched, _ := v.fetcher.get(ctx, a.jwksURI, pass == 1)
				keys = append(keys, keysWithKid(fetched, kid, true)...)
			}
			if len(keys) == 0 {
				continue
			}
			if owner != nil {
				return r, fmt.Errorf("%w: the kid is known to more than one attester", ErrAmbiguousKid)
			}
			owner, matches = a, keys
		}
	}
	if owner == nil {
		return r, fmt.Errorf("%w: no trusted attester has a key with this kid", ErrAttestationUnknownKey)
	}
	r.attester = owner
	return r, r.addFitting(owner, matches, alg)
}

// resolveKeysTried implements profile §4 "no kid and no x5c": every key of every enabled
// attester allowed for the client (static and jwks_uri) that fits alg is a candidate.
func (v *Verifier) resolveKeysTried(ctx context.Context, ts *trustSet, alg jose.SignatureAlgorithm, client ClientPolicy) (*keyResolution, error) {
	r := &keyResolution{method: ResolutionKeysTried}
	for _, a := range ts.enabled {
		if !a.allowedFor(client.AllowedAttesters) {
			continue
		}
		keys := a.keys
		if a.jwksURI != "" {
			fetched, _ := v.fetcher.get(ctx, a.jwksURI, false)
			keys = append(keys[:len(keys):len(keys)], fetched...)
		}
		for i := range keys {
			if jwkFitsAlg(&keys[i], alg) {
				r.candidates = append(r.candidates, keyCandidate{attester: a, key: keys[i].Key})
			}
		}
	}
	if len(r.candidates) == 0 {
		return r, fmt.Errorf("%w: no key of an attester allowed for this client fits %s", ErrAttestationUnknownKey, alg)
	}
	return r, nil
}

// addFitting adds the keys that fit alg; none fitting is an algorithm/key mismatch.
func (r *keyResolution) addFitting(a *attesterEntry, keys []jose.JSONWebKey, alg jose.SignatureAlgorithm) error {
	for i := range keys {
		if jwkFitsAlg(&keys[i], alg) {
			r.candidates = append(r.candidates, keyCandidate{attester: a, key: keys[i].Key})
		}
	}
	if len(r.candidates) == 0 {
		return fmt.Errorf("%w: %s does not fit the attester key", ErrAttestationAlg, alg)
	}
	return nil
}

// keysWithKid selects the keys with the given kid, or all keys when there is no kid.
func keysWithKid(keys []jose.JSONWebKey, kid string, hasKid bool) []jose.JSONWebKey {
	if !hasKid {
		return keys
	}
	var out []jose.JSONWebKey
	for _, k := range keys {
		if k.KeyID == kid {
			out = append(out, k)
		}
	}
	return out
}

// verifyAttestationSignature implements ABCA-09 §7.1 step 4 and §4 rule 2: the signature or MAC
// verifies with a resolved key of a trusted attester. An HS* alg is only ever verified with a
// shared secret and an asymmetric alg only with public keys (RFC 8725 §3.1).
func verifyAttestationSignature(p *parsedJWS, r *keyResolution) (*attesterEntry, []byte, error) {
	for _, c := range r.candidates {
		if _, secret := c.key.([]byte); secret != isMAC(p.alg) {
			continue
		}
		if payload, err := p.verify(c.key); err == nil {
			return c.attester, payload, nil
		}
	}
	return nil, nil, fmt.Errorf("%w: no resolved key verifies it", ErrAttestationSignature)
}
