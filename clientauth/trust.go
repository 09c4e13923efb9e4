package clientauth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/internal/strictjson"
)

// trustSet is an immutable snapshot of the trusted attesters, swapped atomically by SetAttesters.
type trustSet struct {
	generation uint64
	enabled    []*attesterEntry          // enabled attesters, in configuration order
	byID       map[string]*attesterEntry // enabled attesters by id
	jku        map[string]*attesterEntry // jku URL → the enabled attester allow-listing it
	attAlgs    []jose.SignatureAlgorithm // attestation allow-list, HS* included while a secret allows
}

// attesterEntry is one validated, enabled attester.
type attesterEntry struct {
	id             string
	keys           []jose.JSONWebKey // static public keys
	jwksURI        string
	roots          *x509.CertPool // nil without x5c roots
	hmacSecret     []byte
	requiredClaims map[string]string // claim → canonical JSON
}

// allowedFor reports whether the attester may vouch for a client whose allow-list is allowed
// (profile §4: empty = any trusted attester).
func (a *attesterEntry) allowedFor(allowed []string) bool {
	return len(allowed) == 0 || slices.Contains(allowed, a.id)
}

// buildTrust validates attesters (profile §4, §8) and returns the snapshot. Every problem is
// reported at once.
func (v *Verifier) buildTrust(attesters []Attester) (*trustSet, error) {
	ts := &trustSet{
		generation: v.gen.Add(1),
		byID:       map[string]*attesterEntry{},
		jku:        map[string]*attesterEntry{},
	}
	var problems []error
	ids := map[string]bool{}
	kids := map[string]string{}  // kid → attester id (enabled only)
	roots := map[string]string{} // root fingerprint → attester id (enabled only)
	longest := 0
	for i, a := range attesters {
		name := a.ID
		if name == "" {
			name = fmt.Sprintf("#%d", i+1)
			problems = append(problems, fmt.Errorf("attester %s: id is required", name))
		} else if ids[a.ID] {
			problems = append(problems, fmt.Errorf("attester %s: duplicate id", name))
		}
		ids[a.ID] = true
		e, errs := validateAttester(name, a)
		problems = append(problems, errs...)
		if !a.Enabled || len(errs) > 0 {
			continue
		}
		for _, k := range e.keys {
			if k.KeyID == "" {
				continue
			}
			if other, dup := kids[k.KeyID]; dup && other != a.ID {
				problems = append(problems, fmt.Errorf("attester %s: kid %q is also used by attester %s (profile §4: kids are unique across attesters)", name, k.KeyID, other))
			}
			kids[k.KeyID] = a.ID
		}
		for _, c := range a.X5CRoots {
			fp := string(c.Raw)
			if other, dup := roots[fp]; dup && other != a.ID {
				problems = append(problems, fmt.Errorf("attester %s: an x5c root is also a root of attester %s", name, other))
			}
			roots[fp] = a.ID
		}
		for _, u := range a.JKUAllowlist {
			if other, dup := ts.jku[u]; dup && other.id != a.ID {
				problems = append(problems, fmt.Errorf("attester %s: jku %q is also allow-listed by attester %s", name, u, other.id))
			}
			ts.jku[u] = e
		}
		if len(e.hmacSecret) > longest {
			longest = len(e.hmacSecret)
		}
		ts.enabled = append(ts.enabled, e)
		ts.byID[e.id] = e
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	ts.attAlgs = slices.Clone(v.baseAtt)
	for _, h := range hmacAlgorithms {
		if longest >= h.minimum {
			ts.attAlgs = append(ts.attAlgs, h.alg)
		}
	}
	return ts, nil
}

// validateAttester checks one attester's configuration (profile §8 "Attester config").
func validateAttester(name string, a Attester) (*attesterEntry, []error) {
	var problems []error
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Errorf("attester %s: "+format, append([]any{name}, args...)...))
	}
	e := &attesterEntry{id: a.ID, jwksURI: a.JWKSURI, hmacSecret: slices.Clone(a.HMACSecret)}
	hasKeys := a.Keys != nil && len(a.Keys.Keys) > 0
	if !hasKeys && a.JWKSURI == "" && len(a.X5CRoots) == 0 && len(a.JKUAllowlist) == 0 && len(a.HMACSecret) == 0 {
		bad("needs at least one of jwks, jwks_uri, x5c_roots, jku_allowlist, hmac_secret")
	}
	if hasKeys {
		for i, k := range a.Keys.Keys {
			if err := checkPublicVerificationKey(&k); err != nil {
				bad("jwks key %d (kid %q): %v", i+1, k.KeyID, err)
				continue
			}
			e.keys = append(e.keys, k)
		}
	}
	if a.JWKSURI != "" {
		if err := checkFetchURL(a.JWKSURI); err != nil {
			bad("jwks_uri: %v", err)
		}
	}
	for _, u := range a.JKUAllowlist {
		if err := checkFetchURL(u); err != nil {
			bad("jku_allowlist %q: %v", u, err)
		}
	}
	if len(a.X5CRoots) > 0 {
		e.roots = x509.NewCertPool()
		for i, c := range a.X5CRoots {
			if c == nil {
				bad("x5c root %d is empty", i+1)
				continue
			}
			e.roots.AddCert(c)
		}
	}
	if len(a.HMACSecret) > 0 && len(a.HMACSecret) < minHMACSecret {
		bad("hmac_secret must have at least %d bytes", minHMACSecret)
	}
	if len(a.RequiredClaims) > 0 {
		e.requiredClaims = make(map[string]string, len(a.RequiredClaims))
		for claim, raw := range a.RequiredClaims {
			c, err := canonicalJSON(raw)
			if err != nil {
				bad("required claim %q: %v", claim, err)
				continue
			}
			e.requiredClaims[claim] = c
		}
	}
	return e, problems
}

// checkPublicVerificationKey accepts only public asymmetric signature keys (EC P-256/384/521,
// RSA >= 2048 bits, Ed25519), as profile §3/§8 require for attester keys.
func checkPublicVerificationKey(k *jose.JSONWebKey) error {
	if k == nil || k.Key == nil {
		return errors.New("empty key")
	}
	if !k.IsPublic() {
		return errors.New("not a public key")
	}
	if !k.Valid() {
		return errors.New("invalid key")
	}
	if k.Use != "" && k.Use != "sig" {
		return fmt.Errorf("use %q is not sig", k.Use)
	}
	switch pub := k.Key.(type) {
	case *ecdsa.PublicKey:
		if _, err := pub.ECDH(); err != nil {
			return fmt.Errorf("invalid EC point: %w", err)
		}
	case *rsa.PublicKey:
		if pub.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key shorter than %d bits", minRSABits)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("unsupported key type %T", k.Key)
	}
	return nil
}

// checkFetchURL admits https URLs, and http URLs only for loopback hosts (profile §8 jku).
func checkFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Host == "" || u.User != nil || u.Fragment != "" {
		return errors.New("must be an absolute URL without userinfo or fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return errors.New("http is allowed only for loopback hosts")
	}
	return errors.New("scheme must be https")
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// canonicalJSON returns a canonical text of one JSON value for exact-equality comparison
// (profile §8 required_claims): object members sorted, insignificant whitespace removed,
// strings re-encoded, numbers compared by exact decimal value.
func canonicalJSON(raw []byte) (string, error) {
	if err := strictjson.Check(raw); err != nil {
		return "", err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	var b strings.Builder
	if err := writeCanonical(&b, v); err != nil {
		return "", err
	}
	return b.String(), nil
}

func writeCanonical(b *strings.Builder, v any) error {
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if t {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case string:
		s, _ := json.Marshal(t)
		b.Write(s)
	case json.Number:
		b.WriteString(canonicalNumber(string(t)))
	case []any:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeCanonical(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			s, _ := json.Marshal(k)
			b.Write(s)
			b.WriteByte(':')
			if err := writeCanonical(b, t[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("unsupported JSON value %T", v)
	}
	return nil
}

// canonicalNumber normalises a JSON number (already syntax-checked) to sign, significant digits
// and exponent, in time linear in its length, so 1, 1.0 and 10e-1 compare equal and a hostile
// exponent costs nothing.
func canonicalNumber(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, expText, _ := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	exp, err := strconv.ParseInt(expText, 10, 64)
	if expText == "" {
		exp, err = 0, nil
	}
	if err != nil || exp > 1<<40 || exp < -(1<<40) {
		return "raw:" + s // absurd exponents compare textually
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	exp -= int64(len(frac))
	if digits == "" {
		return "n:0"
	}
	trimmed := strings.TrimRight(digits, "0")
	exp += int64(len(digits) - len(trimmed))
	sign := ""
	if neg {
		sign = "-"
	}
	return "n:" + sign + trimmed + "e" + strconv.FormatInt(exp, 10)
}
