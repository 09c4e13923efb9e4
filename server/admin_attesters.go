package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/labstack/echo/v4"

	"github.com/authz/authz/clientauth"
	"github.com/authz/authz/config"
	"github.com/authz/authz/storage"
)

// Admin attesters (issue 5, profile §4 and §8): list, get, create, replace, patch, delete. An
// attester is validated before it is stored, and every problem is listed: parseable public
// asymmetric keys only, kids unique within the set and across attesters, valid PEM
// certificates, fetchable URLs, a JSON object of required claims, and finally the verifier's own
// validation of the whole resulting trust set, so a stored attester can never break a reload.

// idPattern restricts ids created through the admin API (they appear in URLs and logs).
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// maxDescription bounds descriptions (they are shown on the consent page).
const maxDescription = 500

// attesterView is an attester as the admin API shows it. The HMAC secret is write-only.
type attesterView struct {
	ID             string          `json:"id"`
	Description    string          `json:"description"`
	JWKS           json.RawMessage `json:"jwks,omitempty"`
	Kids           []string        `json:"kids"`
	JWKSURI        string          `json:"jwks_uri,omitempty"`
	X5CRoots       string          `json:"x5c_roots,omitempty"`
	JKUAllowlist   []string        `json:"jku_allowlist"`
	RequiredClaims json.RawMessage `json:"required_claims,omitempty"`
	HMACSecretSet  bool            `json:"hmac_secret_set"`
	Enabled        bool            `json:"enabled"`
	Source         string          `json:"source"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
}

func viewAttester(a *storage.Attester) attesterView {
	kids, _ := kidsOf(a)
	list := make([]string, 0, len(kids))
	for k := range kids {
		list = append(list, k)
	}
	sort.Strings(list)
	v := attesterView{
		ID: a.ID, Description: a.Description, Kids: list, JWKSURI: a.JWKSURI, X5CRoots: a.X5CRoots,
		JKUAllowlist: a.JKUAllowlist, HMACSecretSet: a.HMACSecret != "", Enabled: a.Enabled,
		Source: a.Source, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt,
	}
	if json.Valid(a.JWKS) {
		v.JWKS = json.RawMessage(a.JWKS)
	}
	if json.Valid(a.RequiredClaims) {
		v.RequiredClaims = json.RawMessage(a.RequiredClaims)
	}
	if v.JKUAllowlist == nil {
		v.JKUAllowlist = []string{}
	}
	return v
}

// attesterInput is the body of POST, PUT and PATCH. Absent members leave the field alone
// (PATCH) or take their default (POST, PUT); JSON null clears jwks and required_claims.
type attesterInput struct {
	ID             *string         `json:"id"`
	Description    *string         `json:"description"`
	JWKS           json.RawMessage `json:"jwks"`
	JWKSURI        *string         `json:"jwks_uri"`
	X5CRoots       *string         `json:"x5c_roots"`
	JKUAllowlist   *[]string       `json:"jku_allowlist"`
	RequiredClaims json.RawMessage `json:"required_claims"`
	HMACSecret     *string         `json:"hmac_secret"`
	Enabled        *bool           `json:"enabled"`
}

// apply writes the present members of in onto rec.
func (in *attesterInput) apply(rec *storage.Attester) {
	if in.Description != nil {
		rec.Description = *in.Description
	}
	if in.JWKS != nil {
		rec.JWKS = nil
		if !bytes.Equal(bytes.TrimSpace(in.JWKS), []byte("null")) {
			rec.JWKS = normalizeJWKS(in.JWKS)
		}
	}
	if in.JWKSURI != nil {
		rec.JWKSURI = strings.TrimSpace(*in.JWKSURI)
	}
	if in.X5CRoots != nil {
		rec.X5CRoots = *in.X5CRoots
	}
	if in.JKUAllowlist != nil {
		rec.JKUAllowlist = *in.JKUAllowlist
	}
	if in.RequiredClaims != nil {
		rec.RequiredClaims = nil
		if !bytes.Equal(bytes.TrimSpace(in.RequiredClaims), []byte("null")) {
			rec.RequiredClaims = []byte(in.RequiredClaims)
		}
	}
	if in.HMACSecret != nil {
		rec.HMACSecret = *in.HMACSecret
	}
	if in.Enabled != nil {
		rec.Enabled = *in.Enabled
	}
}

// normalizeJWKS accepts a JWK set, or a single JWK (an object with "kty"), and returns a set.
func normalizeJWKS(raw []byte) []byte {
	var probe map[string]json.RawMessage
	if json.Unmarshal(raw, &probe) == nil {
		if _, isKey := probe["kty"]; isKey {
			if _, isSet := probe["keys"]; !isSet {
				return []byte(`{"keys":[` + string(bytes.TrimSpace(raw)) + `]}`)
			}
		}
	}
	return bytes.TrimSpace(raw)
}

func (s *Server) adminListAttesters(c echo.Context) error {
	list, err := s.store.ListAttesters(c.Request().Context())
	if err != nil {
		return s.adminStoreError(c, "attesters", err)
	}
	out := make([]attesterView, 0, len(list))
	for i := range list {
		out = append(out, viewAttester(&list[i]))
	}
	writeJSON(c.Response(), http.StatusOK, map[string]any{"attesters": out})
	return nil
}

func (s *Server) adminGetAttester(c echo.Context) error {
	id := pathParam(c, "id")
	a, err := s.store.GetAttester(c.Request().Context(), id)
	if err != nil {
		return s.adminStoreError(c, "attester "+strconvQuote(id), err)
	}
	writeJSON(c.Response(), http.StatusOK, viewAttester(a))
	return nil
}

func (s *Server) adminCreateAttester(c echo.Context) error {
	var in attesterInput
	if problems := decodeAdminJSON(c.Request(), &in); problems != nil {
		return writeProblems(c, problems)
	}
	rec := &storage.Attester{Enabled: true, Source: "api"}
	if in.ID != nil {
		rec.ID = *in.ID
	}
	in.apply(rec)
	saved, problems, err := s.saveAttester(c.Request().Context(), s.actorOf(c, actorAPI), rec, saveCreate)
	return s.answerAttesterSave(c, saved, problems, err, http.StatusCreated)
}

func (s *Server) adminPutAttester(c echo.Context) error { return s.updateAttester(c, false) }

func (s *Server) adminPatchAttester(c echo.Context) error { return s.updateAttester(c, true) }

// updateAttester replaces (PUT) or patches (PATCH) an existing attester. PUT resets every
// member the body omits, except the write-only hmac_secret, which is kept unless given.
func (s *Server) updateAttester(c echo.Context, patch bool) error {
	ctx := c.Request().Context()
	id := pathParam(c, "id")
	var in attesterInput
	if problems := decodeAdminJSON(c.Request(), &in); problems != nil {
		return writeProblems(c, problems)
	}
	existing, err := s.store.GetAttester(ctx, id)
	if err != nil {
		return s.adminStoreError(c, "attester "+strconvQuote(id), err)
	}
	if in.ID != nil && *in.ID != id {
		return writeProblems(c, []string{fmt.Sprintf("id: %q does not match the attester in the URL (%q); ids cannot be changed", *in.ID, id)})
	}
	rec := existing
	if !patch {
		rec = &storage.Attester{ID: id, HMACSecret: existing.HMACSecret, Enabled: true, Source: existing.Source}
	}
	in.apply(rec)
	saved, problems, err := s.saveAttester(ctx, s.actorOf(c, actorAPI), rec, saveUpdate)
	return s.answerAttesterSave(c, saved, problems, err, http.StatusOK)
}

func (s *Server) answerAttesterSave(c echo.Context, saved *storage.Attester, problems []string, err error, status int) error {
	switch {
	case errors.Is(err, storage.ErrConflict):
		return adminConflict(c, "attester "+strconvQuote(saved.ID))
	case err != nil:
		return s.adminStoreError(c, "attester", err)
	case problems != nil:
		return writeProblems(c, problems)
	}
	writeJSON(c.Response(), status, viewAttester(saved))
	return nil
}

func (s *Server) adminDeleteAttester(c echo.Context) error {
	id := pathParam(c, "id")
	if err := s.deleteAttester(c.Request().Context(), s.actorOf(c, actorAPI), id); err != nil {
		return s.adminStoreError(c, "attester "+strconvQuote(id), err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.NoContent(http.StatusNoContent)
}

// saveMode says whether a save creates (the id must be new) or updates (it must exist).
type saveMode int

const (
	saveCreate saveMode = iota
	saveUpdate
)

// saveAttester validates rec and, when it is sound, stores it with its change record in one
// transaction and reloads this replica's trust set. It returns the problems of an invalid
// attester (nothing stored), storage.ErrConflict when creating an existing id, or another
// storage error.
func (s *Server) saveAttester(ctx context.Context, who adminActor, rec *storage.Attester, mode saveMode) (*storage.Attester, []string, error) {
	others, err := s.store.ListAttesters(ctx)
	if err != nil {
		return rec, nil, err
	}
	var before *storage.Attester
	for i := range others {
		if others[i].ID == rec.ID {
			before = &others[i]
		}
	}
	problems := s.validateAttester(rec, others, mode == saveCreate)
	if mode == saveCreate && before != nil {
		if len(problems) == 0 {
			return rec, nil, fmt.Errorf("attester %q: %w", rec.ID, storage.ErrConflict)
		}
		problems = append([]string{fmt.Sprintf("id: attester %q already exists", rec.ID)}, problems...)
	}
	if len(problems) > 0 {
		return rec, problems, nil
	}
	action, detail := "create", describeAttester(rec)
	if mode == saveUpdate {
		action, detail = attesterAction(before, rec), attesterChanges(before, rec)
	}
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		// Create never replaces and update never re-creates: a racing create, update or delete
		// is caught here (409 / 404), not silently overwritten.
		write := s.store.UpdateAttester
		if mode == saveCreate {
			write = s.store.CreateAttester
		}
		if err := write(ctx, rec); err != nil {
			return err
		}
		return s.recordChange(ctx, who, action, "attester", rec.ID, detail)
	})
	if err != nil {
		return rec, nil, err
	}
	s.log.InfoContext(ctx, "admin: attester saved", "attester", rec.ID, "action", action, "actor", who.Actor, "remote", who.Remote)
	s.reloadTrust(ctx)
	return rec, nil, nil
}

// deleteAttester removes an attester with its change record and reloads the trust set.
func (s *Server) deleteAttester(ctx context.Context, who adminActor, id string) error {
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.DeleteAttester(ctx, id); err != nil {
			return err
		}
		return s.recordChange(ctx, who, "delete", "attester", id, "removed from the trusted attesters")
	})
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "admin: attester deleted", "attester", id, "actor", who.Actor, "remote", who.Remote)
	s.reloadTrust(ctx)
	return nil
}

// validateAttester lists every problem of rec against the other stored attesters (profile §4,
// §8). newID applies the admin API's id syntax (existing ids from the config file are kept).
func (s *Server) validateAttester(rec *storage.Attester, all []storage.Attester, newID bool) []string {
	return AttesterProblems(s.cfg.Issuer, rec, all, newID)
}

// AttesterProblems lists every problem of storing rec beside the attesters all (the admin API's,
// console's and CLI's one rule, profile §4 and §8): the record's own fields, kids unique across
// attesters, and the resulting trust set as the verifier would build it for issuer. newID asks
// for the id syntax of new records.
func AttesterProblems(issuer string, rec *storage.Attester, all []storage.Attester, newID bool) []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	switch {
	case rec.ID == "":
		add("id: required")
	case newID && !idPattern.MatchString(rec.ID):
		add("id: %q must be 1–128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit", rec.ID)
	}
	if len(rec.Description) > maxDescription {
		add("description: at most %d characters", maxDescription)
	}
	if len(rec.JWKS) == 0 && rec.JWKSURI == "" && rec.X5CRoots == "" && len(rec.JKUAllowlist) == 0 && rec.HMACSecret == "" {
		add("keys: give at least one of jwks, jwks_uri, x5c_roots, jku_allowlist, hmac_secret (profile §8)")
	}
	kids := map[string]bool{}
	if len(rec.JWKS) > 0 {
		var problems []string
		kids, problems = checkJWKS("jwks", rec.JWKS)
		p = append(p, problems...)
	}
	for i := range all {
		other := &all[i]
		if other.ID == rec.ID {
			continue
		}
		theirs, err := kidsOf(other)
		if err != nil {
			continue
		}
		for _, kid := range sortedSet(kids) {
			if theirs[kid] {
				add("jwks: kid %q is already used by attester %s (profile §4: kids are unique across attesters)", kid, other.ID)
			}
		}
	}
	if rec.JWKSURI != "" {
		if err := checkFetchURL(rec.JWKSURI); err != nil {
			add("jwks_uri: %v", err)
		}
	}
	seen := map[string]bool{}
	for i, u := range rec.JKUAllowlist {
		if err := checkFetchURL(u); err != nil {
			add("jku_allowlist[%d]: %v", i, err)
		}
		if seen[u] {
			add("jku_allowlist[%d]: %q is listed twice", i, u)
		}
		seen[u] = true
	}
	if rec.X5CRoots != "" {
		p = append(p, checkRootsPEM(rec.X5CRoots)...)
	}
	if len(rec.RequiredClaims) > 0 {
		var claims map[string]json.RawMessage
		if err := json.Unmarshal(rec.RequiredClaims, &claims); err != nil || claims == nil {
			add("required_claims: must be a JSON object of claim name to exact value")
		}
	}
	if rec.HMACSecret != "" && len(rec.HMACSecret) < 32 {
		add("hmac_secret: must be at least 32 bytes (profile §8)")
	}
	if len(p) > 0 {
		return p
	}
	return dryRunTrust(issuer, rec, all)
}

// dryRunTrust validates the trust set that would result from storing rec with the verifier's
// own rules (clientauth.New), without touching the live verifier.
func dryRunTrust(issuer string, rec *storage.Attester, all []storage.Attester) []string {
	candidate, err := AttesterFromRecord(rec)
	if err != nil {
		return []string{err.Error()}
	}
	set := []clientauth.Attester{candidate}
	for i := range all {
		if all[i].ID == rec.ID {
			continue
		}
		if a, err := AttesterFromRecord(&all[i]); err == nil {
			set = append(set, a)
		}
	}
	if _, err := clientauth.New(clientauth.Config{Issuer: issuer, Attesters: set}); err != nil {
		return flattenErrors(err)
	}
	return nil
}

// flattenErrors lists the leaves of a tree of joined errors.
func flattenErrors(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		if multi, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range multi.Unwrap() {
				walk(x)
			}
			return
		}
		if inner := errors.Unwrap(e); inner != nil {
			if _, ok := inner.(interface{ Unwrap() []error }); ok {
				walk(inner)
				return
			}
		}
		out = append(out, e.Error())
	}
	walk(err)
	return out
}

// jwkPrivateMembers are JWK members holding private or symmetric key material (RFC 7518 §6).
var jwkPrivateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// checkJWKS validates a JWK set of public signature keys and returns its kids: every key parses,
// is asymmetric (EC, RSA, OKP), carries no private member, is not for encryption, names an
// allowed algorithm when it names one, and kids are unique within the set.
func checkJWKS(field string, raw []byte) (map[string]bool, []string) {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		add("%s: must be a JWK set {\"keys\": [...]} or one JWK (RFC 7517 §5)", field)
		return nil, p
	}
	if len(set.Keys) == 0 {
		add("%s: the JWK set holds no keys", field)
	}
	allowed := map[string]bool{}
	for _, a := range clientauth.DefaultAlgorithms() {
		allowed[a] = true
	}
	kids := map[string]bool{}
	for i, k := range set.Keys {
		where := fmt.Sprintf("%s.keys[%d]", field, i)
		var members map[string]json.RawMessage
		if err := json.Unmarshal(k, &members); err != nil {
			add("%s: not a JSON object", where)
			continue
		}
		var kid, kty, alg, use string
		_ = json.Unmarshal(members["kid"], &kid)
		_ = json.Unmarshal(members["kty"], &kty)
		_ = json.Unmarshal(members["alg"], &alg)
		_ = json.Unmarshal(members["use"], &use)
		if kid != "" {
			where += fmt.Sprintf(" (kid %q)", kid)
		}
		var private []string
		for _, m := range jwkPrivateMembers {
			if _, ok := members[m]; ok {
				private = append(private, m)
			}
		}
		switch {
		case kty == "oct":
			add("%s: symmetric (oct) keys are not allowed; MAC attesters use hmac_secret", where)
			continue
		case len(private) > 0:
			add("%s: private key member(s) %s present; paste only the public key", where, strings.Join(private, ", "))
			continue
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(k); err != nil {
			add("%s: not a valid public JWK: %v", where, err)
			continue
		}
		if !jwk.IsPublic() || !jwk.Valid() {
			add("%s: not a valid public key", where)
			continue
		}
		if use != "" && use != "sig" {
			add("%s: use is %q; attestation keys must be signature keys (\"sig\")", where, use)
		}
		if alg != "" && !allowed[alg] {
			add("%s: alg %q is not one of %s", where, alg, strings.Join(clientauth.DefaultAlgorithms(), ", "))
		}
		if kid != "" {
			if kids[kid] {
				add("%s: kid %q appears twice in the set", where, kid)
			}
			kids[kid] = true
		}
	}
	return kids, p
}

// checkRootsPEM validates x5c_roots: PEM CERTIFICATE blocks only, each a parseable certificate
// that is currently valid.
func checkRootsPEM(text string) []string {
	var p []string
	rest := []byte(text)
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		n++
		switch {
		case strings.Contains(block.Type, "PRIVATE KEY"):
			p = append(p, fmt.Sprintf("x5c_roots: block %d is a private key; paste only CA certificates", n))
			continue
		case block.Type != "CERTIFICATE":
			p = append(p, fmt.Sprintf("x5c_roots: block %d is %q; only CERTIFICATE blocks are allowed", n, block.Type))
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			p = append(p, fmt.Sprintf("x5c_roots: certificate %d does not parse: %v", n, err))
			continue
		}
		if time.Now().After(cert.NotAfter) {
			p = append(p, fmt.Sprintf("x5c_roots: certificate %d (%s) expired on %s", n, cert.Subject.CommonName, cert.NotAfter.UTC().Format(time.DateOnly)))
		}
	}
	if n == 0 {
		p = append(p, "x5c_roots: no PEM block found; paste CA certificates (-----BEGIN CERTIFICATE-----)")
	} else if len(bytes.TrimSpace(rest)) > 0 {
		p = append(p, "x5c_roots: text after the last PEM block is not PEM")
	}
	return p
}

// checkFetchURL allows https URLs, and http only for loopback hosts (profile §8).
func checkFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || !u.IsAbs() {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	if u.Scheme == "https" || (u.Scheme == "http" && config.IsLoopbackHost(u.Hostname())) {
		return nil
	}
	return fmt.Errorf("%q: only https URLs (http for loopback hosts) may be fetched", raw)
}

// parsePastedKeys turns what an admin pastes into the console's key field into attester key
// material: a JWK set or one JWK (JSON), or PEM — PUBLIC KEY blocks become JWKs whose kid is
// their RFC 7638 thumbprint, CERTIFICATE blocks become x5c roots. Private keys are refused.
func parsePastedKeys(text string) (jwks []byte, roots string, problems []string) {
	text = strings.TrimSpace(text)
	switch {
	case text == "":
		return nil, "", nil
	case strings.HasPrefix(text, "{"):
		if !json.Valid([]byte(text)) {
			return nil, "", []string{"keys: the pasted text starts like JSON but is not valid JSON"}
		}
		return normalizeJWKS([]byte(text)), "", nil
	case !strings.HasPrefix(text, "-----BEGIN"):
		return nil, "", []string{"keys: paste a JWK set, a JWK, PEM public keys or PEM certificates"}
	}
	var keys []jose.JSONWebKey
	var certs []string
	rest := []byte(text)
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch {
		case strings.Contains(block.Type, "PRIVATE KEY"):
			problems = append(problems, fmt.Sprintf("keys: PEM block %d is a private key; paste only the public key", n))
		case block.Type == "CERTIFICATE":
			certs = append(certs, string(pem.EncodeToMemory(block)))
		case block.Type == "PUBLIC KEY":
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				problems = append(problems, fmt.Sprintf("keys: PEM block %d does not parse: %v", n, err))
				continue
			}
			k, err := publicJWK(pub)
			if err != nil {
				problems = append(problems, fmt.Sprintf("keys: PEM block %d: %v", n, err))
				continue
			}
			keys = append(keys, k)
		default:
			problems = append(problems, fmt.Sprintf("keys: PEM block %d is %q; paste PUBLIC KEY or CERTIFICATE blocks", n, block.Type))
		}
	}
	if len(keys) == 0 && len(certs) == 0 && len(problems) == 0 {
		problems = append(problems, "keys: no PEM block found")
	}
	if len(keys) > 0 {
		b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
		if err != nil {
			problems = append(problems, fmt.Sprintf("keys: %v", err))
		}
		jwks = b
	}
	return jwks, strings.Join(certs, ""), problems
}

// publicJWK wraps a parsed public key as a signature JWK whose kid is its RFC 7638 SHA-256
// thumbprint (the kid authz dev-attester puts in the header for a PEM key).
func publicJWK(pub any) (jose.JSONWebKey, error) {
	k := jose.JSONWebKey{Key: pub, Use: "sig"}
	switch key := pub.(type) {
	case *ecdsa.PublicKey:
		switch key.Curve.Params().BitSize {
		case 256:
			k.Algorithm = string(jose.ES256)
		case 384:
			k.Algorithm = string(jose.ES384)
		case 521:
			k.Algorithm = string(jose.ES512)
		}
	case *rsa.PublicKey:
		if key.N.BitLen() < 2048 {
			return k, errors.New("RSA keys must have at least 2048 bits")
		}
		k.Algorithm = string(jose.RS256)
	case ed25519.PublicKey:
		k.Algorithm = string(jose.EdDSA)
	default:
		return k, fmt.Errorf("unsupported public key type %T", pub)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return k, fmt.Errorf("thumbprint: %w", err)
	}
	k.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	return k, nil
}

// describeAttester summarises a new attester for the change log (no secrets).
func describeAttester(a *storage.Attester) string {
	parts := []string{KeySources(a)}
	if kids, err := kidsOf(a); err == nil && len(kids) > 0 {
		parts = append(parts, "kids "+strings.Join(sortedSet(kids), ", "))
	}
	if a.Enabled {
		parts = append(parts, "enabled")
	} else {
		parts = append(parts, "disabled")
	}
	return strings.Join(parts, "; ")
}

// attesterAction names an update for the change log: enable/disable when only that changed.
func attesterAction(before, after *storage.Attester) string {
	if before == nil {
		return "update"
	}
	same := *before
	same.Enabled = after.Enabled
	if before.Enabled != after.Enabled && attesterContentEqual(&same, after) {
		if after.Enabled {
			return "enable"
		}
		return "disable"
	}
	return "update"
}

func attesterContentEqual(a, b *storage.Attester) bool {
	return a.Description == b.Description && bytes.Equal(a.JWKS, b.JWKS) && a.JWKSURI == b.JWKSURI &&
		a.X5CRoots == b.X5CRoots && strings.Join(a.JKUAllowlist, "\n") == strings.Join(b.JKUAllowlist, "\n") &&
		bytes.Equal(a.RequiredClaims, b.RequiredClaims) && a.HMACSecret == b.HMACSecret && a.Enabled == b.Enabled
}

// attesterChanges lists which fields an update changed (names only, never values of secrets).
func attesterChanges(before, after *storage.Attester) string {
	if before == nil {
		return describeAttester(after)
	}
	var changed []string
	if before.Description != after.Description {
		changed = append(changed, "description")
	}
	if !bytes.Equal(before.JWKS, after.JWKS) {
		changed = append(changed, "jwks")
	}
	if before.JWKSURI != after.JWKSURI {
		changed = append(changed, "jwks_uri")
	}
	if before.X5CRoots != after.X5CRoots {
		changed = append(changed, "x5c_roots")
	}
	if strings.Join(before.JKUAllowlist, "\n") != strings.Join(after.JKUAllowlist, "\n") {
		changed = append(changed, "jku_allowlist")
	}
	if !bytes.Equal(before.RequiredClaims, after.RequiredClaims) {
		changed = append(changed, "required_claims")
	}
	if before.HMACSecret != after.HMACSecret {
		changed = append(changed, "hmac_secret")
	}
	if before.Enabled != after.Enabled {
		if after.Enabled {
			changed = append(changed, "enabled")
		} else {
			changed = append(changed, "disabled")
		}
	}
	if len(changed) == 0 {
		return "no change"
	}
	return "changed: " + strings.Join(changed, ", ")
}

// KeySources names where an attester's keys come from, in plain words.
func KeySources(a *storage.Attester) string {
	var s []string
	if len(a.JWKS) > 0 {
		s = append(s, "JWK set")
	}
	if a.JWKSURI != "" {
		s = append(s, "jwks_uri")
	}
	if a.X5CRoots != "" {
		s = append(s, "x5c roots")
	}
	if len(a.JKUAllowlist) > 0 {
		s = append(s, "jku allow-list")
	}
	if a.HMACSecret != "" {
		s = append(s, "shared MAC secret")
	}
	if len(s) == 0 {
		return "no keys"
	}
	return strings.Join(s, ", ")
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }
