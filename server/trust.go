package server

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/clientauth"
	"github.com/authz/authz/storage"
)

// trustPollInterval is how often a replica checks the database for attester, client or
// instance-revocation changes made by another process (CLI, admin API, another replica).
const trustPollInterval = 2 * time.Second

// trust keeps the verifier's attester set and the revoked-instance set in step with the database.
type trust struct {
	store    *storage.Store
	verifier *clientauth.Verifier
	log      *slog.Logger

	// keys, when set, is refreshed with the signing keys on every change (key rotation).
	keys *keyring
	// clients, when set, is emptied on every change.
	clients *clientCache

	generation atomic.Int64
	revoked    atomic.Pointer[map[string]bool]
	attesters  atomic.Int64 // how many the last reload trusts
}

func newTrust(store *storage.Store, verifier *clientauth.Verifier, log *slog.Logger) *trust {
	t := &trust{store: store, verifier: verifier, log: log}
	empty := map[string]bool{}
	t.revoked.Store(&empty)
	t.generation.Store(-1)
	return t
}

// attesterCount is the number of attesters the last reload trusts (enabled or not).
func (t *trust) attesterCount() int64 { return t.attesters.Load() }

// isRevoked reports whether an admin revoked the instance key with this thumbprint.
func (t *trust) isRevoked(jkt string) bool {
	return (*t.revoked.Load())[jkt]
}

// reload loads attesters and revoked instances when the database generation changed.
func (t *trust) reload(ctx context.Context, force bool) error {
	gen, err := t.store.Generation(ctx)
	if err != nil {
		return fmt.Errorf("trust: read generation: %w", err)
	}
	if !force && gen == t.generation.Load() {
		return nil
	}
	records, err := t.store.ListAttesters(ctx)
	if err != nil {
		return fmt.Errorf("trust: list attesters: %w", err)
	}
	// One broken record (say, written by an older CLI) must not take the other attesters, the
	// instance revocations or the signing keys down with it: each record joins the set only if
	// the set stays valid (clientauth's own rules), and the others are logged and skipped.
	attesters := make([]clientauth.Attester, 0, len(records))
	for i := range records {
		a, err := AttesterFromRecord(&records[i])
		if err == nil {
			err = clientauth.ValidateAttesters(append(slices.Clone(attesters), a))
		}
		if err != nil {
			t.log.Error("attester ignored: its stored configuration is invalid; fix or remove it", "attester", records[i].ID, "error", err)
			continue
		}
		attesters = append(attesters, a)
	}
	if err := t.verifier.SetAttesters(attesters); err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	revokedList, err := t.store.RevokedInstances(ctx)
	if err != nil {
		return fmt.Errorf("trust: list revoked instances: %w", err)
	}
	revoked := make(map[string]bool, len(revokedList))
	for _, jkt := range revokedList {
		revoked[jkt] = true
	}
	t.revoked.Store(&revoked)
	if t.keys != nil {
		signingKeys, err := t.store.SigningKeys(ctx)
		if err != nil {
			return fmt.Errorf("trust: signing keys: %w", err)
		}
		if err := t.keys.set(signingKeys); err != nil {
			return fmt.Errorf("trust: %w", err)
		}
	}
	if t.clients != nil {
		t.clients.reset()
	}
	t.attesters.Store(int64(len(attesters)))
	if prev := t.generation.Swap(gen); prev != -1 {
		t.log.Info("trust configuration reloaded", "attesters", len(attesters), "revoked_instances", len(revoked), "generation", gen)
	}
	return nil
}

// run polls for changes until ctx ends.
func (t *trust) run(ctx context.Context) {
	tick := time.NewTicker(trustPollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := t.reload(ctx, false); err != nil && !errors.Is(err, context.Canceled) {
				t.log.Warn("trust reload failed; keeping the previous attesters", "error", err)
			}
		}
	}
}

// AttesterFromRecord converts a stored attester into the verifier's form, validating it.
func AttesterFromRecord(r *storage.Attester) (clientauth.Attester, error) {
	a := clientauth.Attester{
		ID:           r.ID,
		JWKSURI:      r.JWKSURI,
		JKUAllowlist: r.JKUAllowlist,
		Enabled:      r.Enabled,
	}
	if r.HMACSecret != "" {
		a.HMACSecret = []byte(r.HMACSecret)
	}
	if len(r.JWKS) > 0 {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(r.JWKS, &set); err != nil {
			return a, fmt.Errorf("attester %s: jwks: %w", r.ID, err)
		}
		for _, k := range set.Keys {
			if !k.IsPublic() {
				return a, fmt.Errorf("attester %s: jwks: key %q is not a public key", r.ID, k.KeyID)
			}
		}
		a.Keys = &set
	}
	if r.X5CRoots != "" {
		roots, err := parseCertificates([]byte(r.X5CRoots))
		if err != nil {
			return a, fmt.Errorf("attester %s: x5c_roots: %w", r.ID, err)
		}
		a.X5CRoots = roots
	}
	if len(r.RequiredClaims) > 0 {
		if err := json.Unmarshal(r.RequiredClaims, &a.RequiredClaims); err != nil {
			return a, fmt.Errorf("attester %s: required_claims: %w", r.ID, err)
		}
	}
	return a, nil
}

// parseCertificates reads every CERTIFICATE block of a PEM bundle.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return certs, nil
}

// CheckAttesterKids refuses an attester whose static key ids collide with another attester's
// (profile §4: kids must be unique across attesters, or kid lookup would be ambiguous).
func CheckAttesterKids(ctx context.Context, store *storage.Store, rec *storage.Attester) error {
	mine, err := kidsOf(rec)
	if err != nil {
		return err
	}
	others, err := store.ListAttesters(ctx)
	if err != nil {
		return fmt.Errorf("list attesters: %w", err)
	}
	for i := range others {
		if others[i].ID == rec.ID {
			continue
		}
		theirs, err := kidsOf(&others[i])
		if err != nil {
			continue
		}
		for kid := range mine {
			if theirs[kid] {
				return fmt.Errorf("attester %s: kid %q is already used by attester %s", rec.ID, kid, others[i].ID)
			}
		}
	}
	return nil
}

func kidsOf(rec *storage.Attester) (map[string]bool, error) {
	kids := map[string]bool{}
	if len(rec.JWKS) == 0 {
		return kids, nil
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(rec.JWKS, &set); err != nil {
		return nil, fmt.Errorf("attester %s: jwks: %w", rec.ID, err)
	}
	for _, k := range set.Keys {
		if k.KeyID != "" {
			kids[k.KeyID] = true
		}
	}
	return kids, nil
}
