package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"golang.org/x/crypto/bcrypt"

	"github.com/authz/authz/clientauth"
	"github.com/authz/authz/config"
	"github.com/authz/authz/storage"
)

// SyncConfig upserts the attesters and clients of the configuration file into the database
// (interface.md: "loaded at start (created or updated)"). Records added through the CLI or the
// admin API are left alone. Every record is validated before anything is written, and all writes
// happen in one transaction: a broken file changes nothing. A record the file changes — or
// re-creates after an admin deleted it — gets an admin change record by the actor "config" and a
// warning in the log: an admin change undone here is visible in the change log, which never
// claims a state the database no longer has. (A first load into an empty database is not
// recorded.)
func SyncConfig(ctx context.Context, cfg *config.Config, store *storage.Store, log *slog.Logger) error {
	attesters, err := configAttesters(cfg)
	if err != nil {
		return err
	}
	clients := make([]*storage.Client, 0, len(cfg.Clients))
	for _, c := range cfg.Clients {
		rec, err := ClientRecordFromConfig(ctx, store, c)
		if err != nil {
			return err
		}
		clients = append(clients, rec)
	}
	var changes []storage.AdminChange
	err = store.InTx(ctx, func(ctx context.Context) error {
		changes = changes[:0]
		for _, a := range attesters {
			before, err := store.GetAttester(ctx, a.ID)
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("attester %s: %w", a.ID, err)
			}
			if err := store.UpsertAttester(ctx, a); err != nil {
				return fmt.Errorf("attester %s: %w", a.ID, err)
			}
			switch {
			case before == nil:
				if logged, err := hasChanges(ctx, store, "attester", a.ID); err != nil {
					return err
				} else if logged {
					changes = append(changes, configChange("create", "attester", a.ID, describeAttester(a)))
				}
			case !attesterContentEqual(before, a):
				changes = append(changes, configChange(attesterAction(before, a), "attester", a.ID, attesterChanges(before, a)))
			}
		}
		for _, c := range clients {
			before, err := store.GetClientRecord(ctx, c.ID)
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("client %s: %w", c.ID, err)
			}
			if err := store.UpsertClient(ctx, c); err != nil {
				return fmt.Errorf("client %s: %w", c.ID, err)
			}
			switch detail := clientChanges(before, c); {
			case before == nil:
				if logged, err := hasChanges(ctx, store, "client", c.ID); err != nil {
					return err
				} else if logged {
					changes = append(changes, configChange("create", "client", c.ID, detail))
				}
			case detail != "no change":
				changes = append(changes, configChange("update", "client", c.ID, detail))
			}
		}
		for i := range changes {
			if err := store.RecordAdminChange(ctx, &changes[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("server: load config into the database: %w", err)
	}
	for _, ch := range changes {
		log.WarnContext(ctx, "config: the configuration file's version of a record was written to the database; an admin change to it, if any, is undone",
			"resource", ch.Resource, "id", ch.ResourceID, "action", ch.Action, "detail", ch.Detail)
	}
	return nil
}

// hasChanges reports whether the change log has a record of resource id (say, its deletion).
func hasChanges(ctx context.Context, store *storage.Store, resource, id string) (bool, error) {
	prior, err := store.ListAdminChanges(ctx, storage.AdminChangeFilter{Resource: resource, ResourceID: id, Limit: 1})
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", resource, id, err)
	}
	return len(prior) > 0, nil
}

// configChange is the change record of a write by SyncConfig.
func configChange(action, resource, id, detail string) storage.AdminChange {
	return storage.AdminChange{Actor: "config", Action: action, Resource: resource, ResourceID: id,
		Detail: "from the configuration file: " + detail}
}

// CheckConfigAttesters reads the configured attesters (jwks_file, x5c_roots) and validates them
// as one trust set — public keys only, kids unique across attesters (profile §4) — so every
// command refuses a broken file before it touches the database.
func CheckConfigAttesters(cfg *config.Config) error {
	_, err := configAttesters(cfg)
	return err
}

// configAttesters converts the configured attesters and validates them as a set.
func configAttesters(cfg *config.Config) ([]*storage.Attester, error) {
	records := make([]*storage.Attester, 0, len(cfg.Attesters))
	set := make([]clientauth.Attester, 0, len(cfg.Attesters))
	for _, a := range cfg.Attesters {
		rec, err := AttesterRecordFromConfig(a)
		if err != nil {
			return nil, err
		}
		ca, err := AttesterFromRecord(rec)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		records, set = append(records, rec), append(set, ca)
	}
	if err := clientauth.ValidateAttesters(set); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return records, nil
}

// AttesterRecordFromConfig converts one configured attester, reading jwks_file and x5c_roots.
func AttesterRecordFromConfig(a config.Attester) (*storage.Attester, error) {
	rec := &storage.Attester{
		ID: a.ID, Description: a.Description, JWKSURI: a.JWKSURI, JKUAllowlist: a.JKUAllowlist,
		HMACSecret: a.HMACSecret, Enabled: a.IsEnabled(), Source: "config",
	}
	var err error
	switch {
	case a.JWKS != nil:
		if rec.JWKS, err = config.JSONOf(a.JWKS); err != nil {
			return nil, fmt.Errorf("config: attester %s: jwks: %w", a.ID, err)
		}
	case a.JWKSFile != "":
		if rec.JWKS, err = readSmallFile(a.JWKSFile); err != nil {
			return nil, fmt.Errorf("config: attester %s: jwks_file: %w", a.ID, err)
		}
	}
	if a.X5CRoots != "" {
		pem, err := readSmallFile(a.X5CRoots)
		if err != nil {
			return nil, fmt.Errorf("config: attester %s: x5c_roots: %w", a.ID, err)
		}
		rec.X5CRoots = string(pem)
	}
	if len(a.RequiredClaims) > 0 {
		if rec.RequiredClaims, err = config.JSONOf(map[string]any(a.RequiredClaims)); err != nil {
			return nil, fmt.Errorf("config: attester %s: required_claims: %w", a.ID, err)
		}
	}
	return rec, nil
}

// ClientRecordFromConfig converts one configured client. The secret is stored as a bcrypt hash;
// an unchanged secret keeps its stored hash.
func ClientRecordFromConfig(ctx context.Context, store *storage.Store, c config.Client) (*storage.Client, error) {
	rec := &storage.Client{
		ID: c.ClientID, Description: c.Description, RedirectURIs: c.RedirectURIs, GrantTypes: c.GrantTypes,
		Scopes: c.Scopes, Public: c.TokenEndpointAuthMethod == config.AuthMethodNone,
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, TokenEndpointAuthSigningAlg: c.TokenEndpointAuthSigningAlg,
		Attesters: c.Attesters, RequireAttestation: c.RequireAttestation, Source: "config",
	}
	for _, g := range c.GrantTypes {
		if g == "authorization_code" {
			rec.ResponseTypes = []string{"code"}
		}
	}
	if c.JWKS != nil {
		b, err := config.JSONOf(c.JWKS)
		if err != nil {
			return nil, fmt.Errorf("config: client %s: jwks: %w", c.ClientID, err)
		}
		rec.JWKS = json.RawMessage(b)
	}
	if c.ClientSecret != "" {
		hash, err := HashClientSecret(ctx, store, c.ClientID, c.ClientSecret)
		if err != nil {
			return nil, err
		}
		rec.SecretHash = hash
	}
	return rec, nil
}

// HashClientSecret returns the stored hash when it already matches secret, else a new bcrypt
// hash (cost clientSecretCost).
func HashClientSecret(ctx context.Context, store *storage.Store, clientID, secret string) ([]byte, error) {
	if store != nil {
		existing, err := store.GetClientRecord(ctx, clientID)
		if err == nil && len(existing.SecretHash) > 0 && bcrypt.CompareHashAndPassword(existing.SecretHash, []byte(secret)) == nil {
			return existing.SecretHash, nil
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("client %s: %w", clientID, err)
		}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), clientSecretCost)
	if err != nil {
		return nil, fmt.Errorf("client %s: hash secret: %w", clientID, err)
	}
	return hash, nil
}

// readSmallFile reads a key or certificate file of at most 1 MiB.
func readSmallFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > 1<<20 {
		return nil, fmt.Errorf("%s is larger than 1 MiB", path)
	}
	return os.ReadFile(path)
}
