package storage

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"
)

// conformanceCase is one behaviour every backend must show. Each case gets fresh databases.
type conformanceCase struct {
	name string
	run  func(t *testing.T, b backend)
}

// conformanceCases is the suite (dexidp/dex storage/conformance): the same functions run on
// SQLite and PostgreSQL.
var conformanceCases = []conformanceCase{
	{"client_crud", testClientCRUD},
	{"client_fosite_interfaces", testClientFositeInterfaces},
	{"attester_crud", testAttesterCRUD},
	{"create_update_never_upsert", testCreateUpdateNeverUpsert},
	{"session_round_trip", testSessionRoundTrip},
	{"session_hydrated_into_prototype", testSessionHydration},
	{"invalidated_code_returned_with_requester", testInvalidatedCode},
	{"concurrent_code_invalidation_one_winner", testConcurrentCodeInvalidation},
	{"inactive_refresh_returned_with_requester", testInactiveRefresh},
	{"concurrent_refresh_rotation_one_winner", testConcurrentRotation},
	{"revocation_acts_on_whole_grant", testRevokeWholeGrant},
	{"par_round_trip_and_expiry", testPAR},
	{"replay", testReplay},
	{"concurrent_replay_one_winner", testConcurrentReplay},
	{"commit_grant", testCommitGrant},
	{"client_assertion_jti", testClientAssertionJTI},
	{"intx_rollback_leaves_nothing", testInTxRollback},
	{"nested_tx_joins", testNestedTx},
	{"every_method_uses_ctx_tx", testEveryMethodInTx},
	{"shared_secret_get_or_create", testSharedSecret},
	{"signing_key_get_or_create", testSigningKey},
	{"concurrent_migrate", testConcurrentMigrate},
	{"audit_decisions", testAuditDecisions},
	{"revoke_instance", testRevokeInstance},
	{"generation_increments", testGeneration},
	{"prune_expired", testPruneExpired},
	{"malformed_stored_data", testMalformedStoredData},
	{"fosite_flows", testFositeFlows},
	{"lock_conflict_is_serialization_failure", testLockConflict},
}

func runConformance(t *testing.T, b backend) {
	for _, c := range conformanceCases {
		t.Run(c.name, func(t *testing.T) { c.run(t, b) })
	}
}

func TestConformanceSQLite(t *testing.T) { runConformance(t, sqliteBackend()) }

func TestConformancePostgres(t *testing.T) {
	b, ok := postgresBackend(t)
	if !ok {
		return
	}
	runConformance(t, b)
}

// --- clients and attesters -------------------------------------------------------------------

func testClientCRUD(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	ctx := bg()
	c := mustUpsertClient(t, s, "agent")
	if !c.CreatedAt.Equal(dbTime(testStart)) || !c.UpdatedAt.Equal(dbTime(testStart)) {
		t.Fatalf("timestamps = %v/%v, want %v", c.CreatedAt, c.UpdatedAt, testStart)
	}
	got, err := s.GetClientRecord(ctx, "agent")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("GetClientRecord =\n%+v\nwant\n%+v", got, c)
	}

	clock.Advance(time.Minute)
	c2 := testClient(t, "agent")
	c2.Scopes = []string{"read"}
	c2.Attesters = nil
	c2.JWKS = nil
	if err := s.UpsertClient(ctx, c2); err != nil {
		t.Fatal(err)
	}
	if !c2.CreatedAt.Equal(c.CreatedAt) || !c2.UpdatedAt.Equal(dbTime(clock.Now())) {
		t.Fatalf("update timestamps = %v/%v: created_at must be kept, updated_at now", c2.CreatedAt, c2.UpdatedAt)
	}
	got, err = s.GetClientRecord(ctx, "agent")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c2) {
		t.Fatalf("after update =\n%+v\nwant\n%+v", got, c2)
	}
	bc := mustUpsertClient(t, s, "b-client")
	if err := s.CreateAccessTokenSession(ctx, "b-token", testRequest(t, bc, "b-grant", "", clock.Now())); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListClients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "agent" || list[1].ID != "b-client" {
		t.Fatalf("ListClients = %v", list)
	}

	tests := []struct {
		name    string
		op      func() error
		wantErr error
	}{
		{"upsert_empty_id", func() error { return s.UpsertClient(ctx, &Client{}) }, ErrInvalid},
		{"upsert_nil", func() error { return s.UpsertClient(ctx, nil) }, ErrInvalid},
		{"upsert_bad_jwks", func() error { c := testClient(t, "x"); c.JWKS = []byte("{"); return s.UpsertClient(ctx, c) }, ErrInvalid},
		{"get_missing", func() error { _, err := s.GetClientRecord(ctx, "nope"); return err }, ErrNotFound},
		{"fosite_get_missing", func() error { _, err := s.GetClient(ctx, "nope"); return err }, fosite.ErrNotFound},
		{"delete_missing", func() error { return s.DeleteClient(ctx, "nope") }, ErrNotFound},
		{"delete", func() error { return s.DeleteClient(ctx, "b-client") }, nil},
		{"get_deleted", func() error { _, err := s.GetClient(ctx, "b-client"); return err }, ErrNotFound},
		{"deleted_client_tokens_gone", func() error {
			var n int64
			if err := s.conn(ctx).Model(&requestModel{}).Where("client_id = ?", "b-client").Count(&n).Error; err != nil || n != 0 {
				return fmt.Errorf("%d token rows left (%v)", n, err)
			}
			return nil
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func testClientFositeInterfaces(t *testing.T, b backend) {
	s, _ := newStore(t, b)
	ctx := bg()
	mustUpsertClient(t, s, "agent")
	public := &Client{ID: "spa", Public: true}
	if err := s.UpsertClient(ctx, public); err != nil {
		t.Fatal(err)
	}
	basic := &Client{ID: "svc", TokenEndpointAuthSigningAlg: "PS256"}
	if err := s.UpsertClient(ctx, basic); err != nil {
		t.Fatal(err)
	}
	get := func(id string) fosite.OpenIDConnectClient {
		t.Helper()
		fc, err := s.GetClient(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		c, ok := fc.(*Client)
		if !ok {
			t.Fatalf("GetClient returned %T, want *Client", fc)
		}
		return c
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"auth_method_as_registered", get("agent").GetTokenEndpointAuthMethod(), "attest_jwt_client_auth"},
		{"auth_method_default_public", get("spa").GetTokenEndpointAuthMethod(), "none"},
		{"auth_method_default_confidential", get("svc").GetTokenEndpointAuthMethod(), "client_secret_basic"},
		{"signing_alg_default_es256", get("agent").GetTokenEndpointAuthSigningAlgorithm(), "ES256"},
		{"signing_alg_registered", get("svc").GetTokenEndpointAuthSigningAlgorithm(), "PS256"},
		{"jwks_parsed", len(get("agent").GetJSONWebKeys().Keys), 1},
		{"jwks_kid", get("agent").GetJSONWebKeys().Keys[0].KeyID, "k1"},
		{"no_jwks", get("spa").GetJSONWebKeys() == nil, true},
		{"request_uris_empty", len(get("agent").GetRequestURIs()), 0},
		{"request_object_alg_empty", get("agent").GetRequestObjectSigningAlgorithm(), ""},
		{"grant_types_default", []string(get("spa").(fosite.Client).GetGrantTypes()), []string{"authorization_code"}},
		{"response_types_default", []string(get("spa").(fosite.Client).GetResponseTypes()), []string{"code"}},
		{"scopes", []string(get("agent").(fosite.Client).GetScopes()), []string{"read", "write", "offline"}},
		{"audience", []string(get("agent").(fosite.Client).GetAudience()), []string{"https://api.example"}},
		{"public", get("spa").(fosite.Client).IsPublic(), true},
		{"hashed_secret", string(get("agent").(fosite.Client).GetHashedSecret()), "$2a$10$not-a-real-bcrypt-hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Fatalf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func testAttesterCRUD(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	ctx := bg()
	a := &Attester{
		ID: "dev-attester", Description: "dev", JWKS: []byte(`{"keys":[]}`), JWKSURI: "https://att.example/jwks",
		X5CRoots: "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n", JKUAllowlist: []string{"https://att.example/jku"},
		RequiredClaims: []byte(`{"aal":"high"}`), HMACSecret: strings.Repeat("s", 32), Enabled: true, Source: "cli",
	}
	if err := s.UpsertAttester(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAttester(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("GetAttester =\n%+v\nwant\n%+v", got, a)
	}
	clock.Advance(time.Second)
	a.Enabled = false
	a.RequiredClaims = nil
	if err := s.UpsertAttester(ctx, a); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListAttesters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Enabled || list[0].RequiredClaims != nil || !list[0].UpdatedAt.After(list[0].CreatedAt) {
		t.Fatalf("ListAttesters after update = %+v", list)
	}
	tests := []struct {
		name    string
		op      func() error
		wantErr error
	}{
		{"upsert_empty_id", func() error { return s.UpsertAttester(ctx, &Attester{}) }, ErrInvalid},
		{"upsert_bad_required_claims", func() error { return s.UpsertAttester(ctx, &Attester{ID: "x", RequiredClaims: []byte("[")}) }, ErrInvalid},
		{"get_missing", func() error { _, err := s.GetAttester(ctx, "nope"); return err }, ErrNotFound},
		{"delete_missing", func() error { return s.DeleteAttester(ctx, "nope") }, ErrNotFound},
		{"delete", func() error { return s.DeleteAttester(ctx, a.ID) }, nil},
		{"get_deleted", func() error { _, err := s.GetAttester(ctx, a.ID); return err }, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// --- fosite sessions ------------------------------------------------------------------------

// sessionKind drives one fosite storage family through create/get/delete.
type sessionKind struct {
	name    string
	create  func(s *Store, ctx context.Context, sig string, r fosite.Requester) error
	get     func(s *Store, ctx context.Context, sig string, proto fosite.Session) (fosite.Requester, error)
	delete  func(s *Store, ctx context.Context, sig string) error
	form    url.Values // the form the stored request keeps
	expires fosite.TokenType
}

func sessionKinds() []sessionKind {
	tokenForm := url.Values{"grant_type": {"authorization_code"}, "scope": {"read write"}, "client_id": {"agent"}}
	codeForm := url.Values{"grant_type": {"authorization_code"}, "scope": {"read write"}, "client_id": {"agent"},
		"redirect_uri": {"https://app.example/cb"}, "dpop_jkt": {"dpop-thumb"}}
	return []sessionKind{
		{"authorize_code",
			func(s *Store, ctx context.Context, sig string, r fosite.Requester) error {
				return s.CreateAuthorizeCodeSession(ctx, sig, r)
			},
			func(s *Store, ctx context.Context, sig string, p fosite.Session) (fosite.Requester, error) {
				return s.GetAuthorizeCodeSession(ctx, sig, p)
			},
			nil, codeForm, fosite.AuthorizeCode},
		{"access_token",
			func(s *Store, ctx context.Context, sig string, r fosite.Requester) error {
				return s.CreateAccessTokenSession(ctx, sig, r)
			},
			func(s *Store, ctx context.Context, sig string, p fosite.Session) (fosite.Requester, error) {
				return s.GetAccessTokenSession(ctx, sig, p)
			},
			func(s *Store, ctx context.Context, sig string) error { return s.DeleteAccessTokenSession(ctx, sig) },
			tokenForm, fosite.AccessToken},
		{"refresh_token",
			func(s *Store, ctx context.Context, sig string, r fosite.Requester) error {
				return s.CreateRefreshTokenSession(ctx, sig, "access-"+sig, r)
			},
			func(s *Store, ctx context.Context, sig string, p fosite.Session) (fosite.Requester, error) {
				return s.GetRefreshTokenSession(ctx, sig, p)
			},
			func(s *Store, ctx context.Context, sig string) error { return s.DeleteRefreshTokenSession(ctx, sig) },
			tokenForm, fosite.RefreshToken},
		{"pkce",
			func(s *Store, ctx context.Context, sig string, r fosite.Requester) error {
				return s.CreatePKCERequestSession(ctx, sig, r)
			},
			func(s *Store, ctx context.Context, sig string, p fosite.Session) (fosite.Requester, error) {
				return s.GetPKCERequestSession(ctx, sig, p)
			},
			func(s *Store, ctx context.Context, sig string) error { return s.DeletePKCERequestSession(ctx, sig) },
			codeForm, fosite.AuthorizeCode},
	}
}

func testSessionRoundTrip(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	ctx := bg()
	c := mustUpsertClient(t, s, "agent")
	for _, k := range sessionKinds() {
		t.Run(k.name, func(t *testing.T) {
			// A JWT signature is long (RS256: 342 characters): the hashed key must fit.
			sig := k.name + "." + strings.Repeat("A", 700)
			want := testRequest(t, c, "grant-"+k.name, "jkt-"+k.name, clock.Now())
			if err := k.create(s, ctx, sig, want); err != nil {
				t.Fatal(err)
			}
			if err := k.create(s, ctx, sig, want); !errors.Is(err, ErrConflict) {
				t.Fatalf("second create = %v, want ErrConflict", err)
			}
			got, err := k.get(s, ctx, sig, NewSession())
			if err != nil {
				t.Fatal(err)
			}
			checkRequest(t, got, want, k.form)
			if _, err := k.get(s, ctx, "other-"+sig, NewSession()); !errors.Is(err, fosite.ErrNotFound) {
				t.Fatalf("get missing = %v, want fosite.ErrNotFound", err)
			}
			if k.delete == nil {
				return
			}
			if err := k.delete(s, ctx, sig); err != nil {
				t.Fatal(err)
			}
			if _, err := k.get(s, ctx, sig, NewSession()); !errors.Is(err, fosite.ErrNotFound) {
				t.Fatalf("get deleted = %v, want fosite.ErrNotFound", err)
			}
			if err := k.delete(s, ctx, sig); err != nil {
				t.Fatalf("deleting a missing row = %v, want nil (memory.go)", err)
			}
		})
	}
}

// checkRequest compares a stored request with the one created, field by field.
func checkRequest(t *testing.T, got fosite.Requester, want *fosite.Request, form url.Values) {
	t.Helper()
	if got.GetID() != want.GetID() {
		t.Errorf("id = %q, want %q", got.GetID(), want.GetID())
	}
	if !got.GetRequestedAt().Equal(dbTime(want.RequestedAt)) {
		t.Errorf("requested_at = %v, want %v", got.GetRequestedAt(), want.RequestedAt)
	}
	if got.GetClient().GetID() != want.Client.GetID() {
		t.Errorf("client = %q", got.GetClient().GetID())
	}
	if _, ok := got.GetClient().(*Client); !ok {
		t.Errorf("client type %T, want *Client", got.GetClient())
	}
	for _, l := range []struct {
		name      string
		got, want fosite.Arguments
	}{
		{"scopes", got.GetRequestedScopes(), want.RequestedScope},
		{"granted_scopes", got.GetGrantedScopes(), want.GrantedScope},
		{"audience", got.GetRequestedAudience(), want.RequestedAudience},
		{"granted_audience", got.GetGrantedAudience(), want.GrantedAudience},
	} {
		if !reflect.DeepEqual(l.got, l.want) {
			t.Errorf("%s = %v, want %v", l.name, l.got, l.want)
		}
	}
	if !reflect.DeepEqual(got.GetRequestForm(), form) {
		t.Errorf("form = %v, want %v (sanitised)", got.GetRequestForm(), form)
	}
	sess, ok := got.GetSession().(*Session)
	if !ok {
		t.Fatalf("session %T, want *Session", got.GetSession())
	}
	ws := want.Session.(*Session)
	if sess.InstanceJKT != ws.InstanceJKT || sess.Attester != ws.Attester || sess.PoPMethod != ws.PoPMethod ||
		sess.AuthMethod != ws.AuthMethod || sess.Subject != ws.Subject || sess.Username != ws.Username {
		t.Errorf("session = %+v, want %+v", sess, ws)
	}
	if sess.JWTClaims.JTI != ws.JWTClaims.JTI || sess.JWTHeader.Extra["typ"] != "at+jwt" {
		t.Errorf("claims/header = %+v / %+v", sess.JWTClaims, sess.JWTHeader)
	}
	if ca, _ := sess.JWTClaims.Extra["client_attestation"].(map[string]interface{}); ca["instance_jkt"] != ws.InstanceJKT {
		t.Errorf("extra claims = %v", sess.JWTClaims.Extra)
	}
	for tt, exp := range ws.ExpiresAt {
		if !sess.GetExpiresAt(tt).Equal(exp) {
			t.Errorf("expires_at[%s] = %v, want %v", tt, sess.GetExpiresAt(tt), exp)
		}
	}
}

func testSessionHydration(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	ctx := bg()
	c := mustUpsertClient(t, s, "agent")
	for _, k := range sessionKinds() {
		t.Run(k.name, func(t *testing.T) {
			sig := "sig-" + k.name
			if err := k.create(s, ctx, sig, testRequest(t, c, "g-"+k.name, "jkt-1", clock.Now())); err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				name  string
				proto fosite.Session
			}{
				{"fresh_prototype", NewSession()},
				{"used_prototype", func() fosite.Session {
					p := NewSession()
					p.JWTClaims.Extra["live"] = true
					p.InstanceJKT = "overwritten"
					p.SetExpiresAt(fosite.AccessToken, testStart.Add(42*time.Minute))
					return p
				}()},
				{"nil_prototype", nil},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					got, err := k.get(s, ctx, sig, tt.proto)
					if err != nil {
						t.Fatal(err)
					}
					sess, ok := got.GetSession().(*Session)
					if !ok {
						t.Fatalf("session %T, want *Session", got.GetSession())
					}
					if tt.proto != nil && fosite.Session(sess) != tt.proto {
						t.Fatal("the stored session was not decoded into the prototype the caller passed")
					}
					if sess.InstanceJKT != "jkt-1" || sess.Subject != "alice" || sess.JWTHeader.Extra["typ"] != "at+jwt" {
						t.Fatalf("stored fields not hydrated: %+v", sess)
					}
					if !sess.GetExpiresAt(fosite.AuthorizeCode).Equal(testStart.Add(time.Hour)) {
						t.Fatalf("stored expiry not hydrated: %v", sess.ExpiresAt)
					}
					if tt.name != "used_prototype" {
						return
					}
					// Maps merge (json.Unmarshal, as Hydra): fosite sets token expiries on the live
					// session before it hydrates the stored code session into it again.
					if _, live := sess.JWTClaims.Extra["live"]; !live {
						t.Fatalf("claims set on the live session were dropped: %v", sess.JWTClaims.Extra)
					}
					if sess.GetExpiresAt(fosite.AccessToken).IsZero() {
						t.Fatal("expiry set on the live session was dropped")
					}
					if !sess.GetExpiresAt(fosite.AccessToken).Equal(testStart.Add(time.Hour)) {
						t.Fatalf("stored access token expiry did not replace the live one: %v", sess.GetExpiresAt(fosite.AccessToken))
					}
				})
			}
		})
	}
	t.Run("clone_keeps_type", func(t *testing.T) {
		sess := testRequest(t, c, "g", "jkt-c", clock.Now()).Session.(*Session)
		cl, ok := sess.Clone().(*Session)
		if !ok || cl == sess || cl.InstanceJKT != "jkt-c" || !reflect.DeepEqual(cl, sess) {
			t.Fatalf("Clone = %#v", cl)
		}
		cl.JWTClaims.Extra["x"] = 1
		if _, leaked := sess.JWTClaims.Extra["x"]; leaked {
			t.Fatal("Clone shares the claims map")
		}
		var nilSess *Session
		if nilSess.Clone() != nil {
			t.Fatal("nil Clone is not nil")
		}
	})
	t.Run("session_json_round_trip", func(t *testing.T) {
		sess := testRequest(t, c, "g", "jkt-j", clock.Now()).Session.(*Session)
		sess.DPoPJKT = "dpop"
		b, err := json.Marshal(sess)
		if err != nil {
			t.Fatal(err)
		}
		back := NewSession()
		if err := json.Unmarshal(b, back); err != nil {
			t.Fatal(err)
		}
		if back.InstanceJKT != "jkt-j" || back.DPoPJKT != "dpop" || back.Subject != "alice" || back.JWTClaims.JTI != sess.JWTClaims.JTI {
			t.Fatalf("round trip = %+v", back)
		}
	})
}

func testInvalidatedCode(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	ctx := bg()
	c := mustUpsertClient(t, s, "agent")
	if err := s.CreateAuthorizeCodeSession(ctx, "code-1", testRequest(t, c, "grant-1", "", clock.Now())); err != nil {
		t.Fatal(err)
	}
	if err := s.InvalidateAuthorizeCodeSession(ctx, "code-1"); err != nil {
		t.Fatal(err)
	}
	proto := NewSession()
	req, err := s.GetAuthorizeCodeSession(ctx, "code-1", proto)
	if !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		t.Fatalf("err = %v, want ErrInvalidatedAuthorizeCode", err)
	}
	if req == nil || req.GetID() != "grant-1" || req.GetSession() != fosite.Session(proto) {
		t.Fatalf("the invalidated code must come back with its requester (fosite revokes the grant by its id): %v", req)
	}
	tests := []struct {
		name    string
		code    string
		wantErr error
	}{
		{"invalidate_again", "code-1", fosite.ErrSerializationFailure},
		{"invalidate_missing", "code-2", fosite.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.InvalidateAuthorizeCodeSession(ctx, tt.code); !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// concurrency is the number of goroutines racing in the concurrent cases.
const concurrency = 20

// race runs fn concurrently n times, released together, and returns each call's error.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner checks exactly one call succeeded and every other failed with wantErr.
func oneWinner(t *testing.T, errs []error, wantErr error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("calls %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, wantErr):
			t.Fatalf("call %d: %v, want %v", i, err, wantErr)
		}
	}
	if winner < 0 {
		t.Fatalf("no call succeeded: %v", errs)
	}
	return winner
}

func testConcurrentCodeInvalidation(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	c := mustUpsertClient(t, s, "agent")
	if err := s.CreateAuthorizeCodeSession(bg(), "code-r", testRequest(t, c, "grant-r", "", clock.Now())); err != nil {
		t.Fatal(err)
	}
	errs := race(concurrency, func(int) error {
		return s.InTx(bg(), func(ctx context.Context) error { return s.InvalidateAuthorizeCodeSession(ctx, "code-r") })
	})
	oneWinner(t, errs, fosite.ErrSerializationFailure)
}

func testInactiveRefresh(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	ctx := bg()
	c := mustUpsertClient(t, s, "agent")
	if err := s.CreateRefreshTokenSession(ctx, "rt-1", "at-1", testRequest(t, c, "grant-1", "", clock.Now())); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeRefreshToken(ctx, "grant-1"); err != nil {
		t.Fatal(err)
	}
	req, err := s.GetRefreshTokenSession(ctx, "rt-1", nil)
	if !errors.Is(err, fosite.ErrInactiveToken) {
		t.Fatalf("err = %v, want ErrInactiveToken", err)
	}
	if req == nil || req.GetID() != "grant-1" {
		t.Fatalf("an inactive refresh token must come back with its requester (fosite's reuse detection needs it): %v", req)
	}
	if _, ok := req.GetSession().(*Session); !ok {
		t.Fatalf("nil prototype: session %T, want *Session", req.GetSession())
	}
}

func testConcurrentRotation(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	ctx := bg()
	c := mustUpsertClient(t, s, "agent")
	req := testRequest(t, c, "grant-rot", "jkt", clock.Now())
	if err := s.CreateAccessTokenSession(ctx, "at-0", req); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRefreshTokenSession(ctx, "rt-0", "at-0", req); err != nil {
		t.Fatal(err)
	}
	// Each racer does what fosite's refresh handler does (flow_refresh.go PopulateTokenEndpointResponse).
	errs := race(concurrency, func(i int) error {
		tctx, err := s.BeginTX(ctx)
		if err != nil {
			return err
		}
		if err := s.RotateRefreshToken(tctx, "grant-rot", "rt-0"); err != nil {
			if rerr := s.Rollback(tctx); rerr != nil {
				return rerr
			}
			return err
		}
		if err := s.CreateAccessTokenSession(tctx, uniq("at", i), req); err != nil {
			return err
		}
		if err := s.CreateRefreshTokenSession(tctx, uniq("rt", i), uniq("at", i), req); err != nil {
			return err
		}
		return s.Commit(tctx)
	})
	w := oneWinner(t, errs, fosite.ErrSerializationFailure)
	if _, err := s.GetRefreshTokenSession(ctx, "rt-0", nil); !errors.Is(err, fosite.ErrInactiveToken) {
		t.Fatalf("rotated token: %v, want ErrInactiveToken", err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "at-0", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("old access token: %v, want revoked", err)
	}
	if _, err := s.GetRefreshTokenSession(ctx, uniq("rt", w), nil); err != nil {
		t.Fatalf("winner's refresh token: %v", err)
	}
	if _, err := s.GetAccessTokenSession(ctx, uniq("at", w), nil); err != nil {
		t.Fatalf("winner's access token: %v", err)
	}
	if err := s.RotateRefreshToken(ctx, "other-grant", uniq("rt", w)); !errors.Is(err, fosite.ErrSerializationFailure) {
		t.Fatalf("rotating with another grant id = %v, want ErrSerializationFailure", err)
	}
}

func testRevokeWholeGrant(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	ctx := bg()
	c := mustUpsertClient(t, s, "agent")
	grant := testRequest(t, c, "grant-a", "", clock.Now())
	other := testRequest(t, c, "grant-b", "", clock.Now())
	for i := range 3 {
		if err := s.CreateAccessTokenSession(ctx, uniq("at-a", i), grant); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		if err := s.CreateRefreshTokenSession(ctx, uniq("rt-a", i), uniq("at-a", i), grant); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateAccessTokenSession(ctx, "at-b", other); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRefreshTokenSession(ctx, "rt-b", "at-b", other); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAccessToken(ctx, "grant-a"); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeRefreshToken(ctx, "grant-a"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s.GetAccessTokenSession(ctx, uniq("at-a", i), nil); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("access token %d of the revoked grant: %v, want ErrNotFound", i, err)
		}
	}
	for i := range 2 {
		if _, err := s.GetRefreshTokenSession(ctx, uniq("rt-a", i), nil); !errors.Is(err, fosite.ErrInactiveToken) {
			t.Errorf("refresh token %d of the revoked grant: %v, want ErrInactiveToken", i, err)
		}
	}
	if _, err := s.GetAccessTokenSession(ctx, "at-b", nil); err != nil {
		t.Errorf("other grant's access token: %v", err)
	}
	if _, err := s.GetRefreshTokenSession(ctx, "rt-b", nil); err != nil {
		t.Errorf("other grant's refresh token: %v", err)
	}
	for _, id := range []string{"grant-a", "unknown-grant"} {
		if err := s.RevokeAccessToken(ctx, id); err != nil {
			t.Errorf("RevokeAccessToken(%s) again: %v", id, err)
		}
	}
}

// --- PAR ------------------------------------------------------------------------------------

func testPAR(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	ctx := bg()
	c := mustUpsertClient(t, s, "agent")
	newPAR := func(withExpiry bool) *fosite.AuthorizeRequest {
		ar := fosite.NewAuthorizeRequest()
		ar.ID = "par-grant"
		ar.Client = c
		ar.RequestedAt = clock.Now()
		ar.RequestedScope = fosite.Arguments{"read"}
		ar.ResponseTypes = fosite.Arguments{"code"}
		ar.State = "state-123456"
		ar.ResponseMode = fosite.ResponseModeQuery
		ar.DefaultResponseMode = fosite.ResponseModeQuery
		ar.RedirectURI, _ = url.Parse("https://app.example/cb?x=1")
		ar.Form = url.Values{"client_id": {"agent"}, "response_type": {"code"}, "code_challenge": {"abc"},
			"code_challenge_method": {"S256"}, "dpop_jkt": {"thumb"}, "client_secret": {"never-stored"}}
		sess := NewSession()
		sess.Subject = "alice"
		if withExpiry {
			sess.SetExpiresAt(fosite.PushedAuthorizeRequestContext, clock.Now().Add(90*time.Second))
		}
		ar.Session = sess
		return ar
	}
	const uri = "urn:ietf:params:oauth:request_uri:abc"
	want := newPAR(true)
	if err := s.CreatePARSession(ctx, uri, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetPARSession(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	wantForm := url.Values{"client_id": {"agent"}, "response_type": {"code"}, "code_challenge": {"abc"},
		"code_challenge_method": {"S256"}, "dpop_jkt": {"thumb"}}
	if got.GetID() != "par-grant" || got.GetClient().GetID() != "agent" || got.GetState() != "state-123456" ||
		got.GetRedirectURI().String() != "https://app.example/cb?x=1" || !reflect.DeepEqual(got.GetResponseTypes(), fosite.Arguments{"code"}) ||
		got.GetResponseMode() != fosite.ResponseModeQuery || !reflect.DeepEqual(got.GetRequestForm(), wantForm) ||
		!reflect.DeepEqual(got.GetRequestedScopes(), fosite.Arguments{"read"}) {
		t.Fatalf("GetPARSession = %+v", got)
	}
	if sess, ok := got.GetSession().(*Session); !ok || sess.Subject != "alice" {
		t.Fatalf("PAR session = %#v", got.GetSession())
	}

	if err := s.CreatePARSession(ctx, uri+"-default", newPAR(false)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		advance time.Duration
		uri     string
		wantErr error
	}{
		{"valid_before_expiry", 89 * time.Second, uri, nil},
		{"expired_after_session_expiry", 2 * time.Second, uri, fosite.ErrNotFound},
		{"default_lifespan_still_valid", 0, uri + "-default", nil},
		{"default_lifespan_expired", 5*time.Minute - 91*time.Second + time.Second, uri + "-default", fosite.ErrNotFound},
		{"unknown_uri", 0, uri + "-nope", fosite.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.Advance(tt.advance)
			_, err := s.GetPARSession(ctx, tt.uri)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
	t.Run("delete", func(t *testing.T) {
		if err := s.CreatePARSession(ctx, uri+"-del", newPAR(true)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeletePARSession(ctx, uri+"-del"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetPARSession(ctx, uri+"-del"); !errors.Is(err, fosite.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
		if err := s.DeletePARSession(ctx, uri+"-del"); err != nil {
			t.Fatalf("deleting a missing request: %v", err)
		}
	})
}

// --- replay ---------------------------------------------------------------------------------

func testReplay(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	ctx := bg()
	long := strings.Repeat("j", 20000) // a hostile jti: the hashed key still fits the index
	tests := []struct {
		name    string
		key     string
		exp     time.Duration // from now
		advance time.Duration // before the call
		wantErr error
	}{
		{"first_use", "jkt|jti-1", time.Minute, 0, nil},
		{"duplicate", "jkt|jti-1", time.Minute, 0, ErrReplayed},
		{"other_key", "jkt|jti-2", time.Minute, 0, nil},
		{"duplicate_just_before_expiry", "jkt|jti-1", time.Minute, 59 * time.Second, ErrReplayed},
		{"expired_key_reusable", "jkt|jti-1", time.Minute, time.Second, nil},
		{"reused_key_is_live_again", "jkt|jti-1", time.Minute, 0, ErrReplayed},
		{"long_key", long, time.Minute, 0, nil},
		{"long_key_duplicate", long, time.Minute, 0, ErrReplayed},
		{"empty_key", "", time.Minute, 0, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.Advance(tt.advance)
			err := s.MarkReplay(ctx, tt.key, clock.Now().Add(tt.exp))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
	t.Run("inside_transaction_duplicate_keeps_tx_usable", func(t *testing.T) {
		if err := s.MarkReplay(ctx, "jkt|jti-tx", clock.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		err := s.InTx(ctx, func(ctx context.Context) error {
			if err := s.MarkReplay(ctx, "jkt|jti-tx", clock.Now().Add(time.Minute)); !errors.Is(err, ErrReplayed) {
				t.Errorf("duplicate in tx = %v", err)
			}
			return s.MarkReplay(ctx, "jkt|jti-3", clock.Now().Add(time.Minute))
		})
		if err != nil {
			t.Fatalf("the transaction must survive a duplicate (no failed statement): %v", err)
		}
	})
}

func testConcurrentReplay(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	exp := clock.Now().Add(time.Minute)
	oneWinner(t, race(concurrency, func(int) error { return s.MarkReplay(bg(), "jkt|same-jti", exp) }), ErrReplayed)
	// An expired key is taken over by exactly one of the racers too.
	clock.Advance(2 * time.Minute)
	oneWinner(t, race(concurrency, func(int) error {
		return s.InTx(bg(), func(ctx context.Context) error {
			return s.MarkReplay(ctx, "jkt|same-jti", clock.Now().Add(time.Minute))
		})
	}), ErrReplayed)
}

func testClientAssertionJTI(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	ctx := bg()
	exp := clock.Now().Add(time.Minute)
	tests := []struct {
		name    string
		op      func() error
		wantErr error
	}{
		{"unknown_jti_valid", func() error { return s.ClientAssertionJWTValid(ctx, "a1") }, nil},
		{"set", func() error { return s.SetClientAssertionJWT(ctx, "a1", exp) }, nil},
		{"known_jti_invalid", func() error { return s.ClientAssertionJWTValid(ctx, "a1") }, fosite.ErrJTIKnown},
		{"set_duplicate", func() error { return s.SetClientAssertionJWT(ctx, "a1", exp) }, fosite.ErrJTIKnown},
		{"namespaced_from_replay_keys", func() error { return s.MarkReplay(ctx, "a1", exp) }, nil},
		{"expired_jti_valid", func() error { clock.Advance(2 * time.Minute); return s.ClientAssertionJWTValid(ctx, "a1") }, nil},
		{"expired_jti_settable", func() error { return s.SetClientAssertionJWT(ctx, "a1", clock.Now().Add(time.Minute)) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// --- transactions ---------------------------------------------------------------------------

// writeEverything writes one row of every kind through ctx.
func writeEverything(t *testing.T, s *Store, ctx context.Context, tag string, now time.Time) error {
	t.Helper()
	c := testClient(t, "client-"+tag)
	if err := s.UpsertClient(ctx, c); err != nil {
		return err
	}
	if err := s.CreateAccessTokenSession(ctx, "at-"+tag, testRequest(t, c, "grant-"+tag, "", now)); err != nil {
		return err
	}
	if err := s.MarkReplay(ctx, "replay-"+tag, now.Add(time.Minute)); err != nil {
		return err
	}
	return s.RecordDecision(ctx, &Decision{Endpoint: "/oauth2/token", ClientID: "client-" + tag, Decision: "accepted", Reason: "ok"})
}

// nothingWritten checks no row of writeEverything(tag) exists.
func nothingWritten(t *testing.T, s *Store, tag string, now time.Time) {
	t.Helper()
	ctx := bg()
	if _, err := s.GetClientRecord(ctx, "client-"+tag); !errors.Is(err, ErrNotFound) {
		t.Errorf("client %s: %v, want rolled back", tag, err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "at-"+tag, nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Errorf("token %s: %v, want rolled back", tag, err)
	}
	if err := s.MarkReplay(ctx, "replay-"+tag, now.Add(time.Minute)); err != nil {
		t.Errorf("replay %s: %v, want rolled back", tag, err)
	}
	ds, err := s.ListDecisions(ctx, DecisionFilter{ClientID: "client-" + tag})
	if err != nil || len(ds) != 0 {
		t.Errorf("decisions %s: %v %v, want rolled back", tag, ds, err)
	}
}

func testInTxRollback(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	now := clock.Now()
	errBoom := errors.New("boom")
	gen0, err := s.Generation(bg())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("error_rolls_back", func(t *testing.T) {
		err := s.InTx(bg(), func(ctx context.Context) error {
			if err := writeEverything(t, s, ctx, "err", now); err != nil {
				return err
			}
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("InTx = %v, want the function's error", err)
		}
		nothingWritten(t, s, "err", now)
	})
	t.Run("panic_rolls_back", func(t *testing.T) {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("the panic did not propagate")
				}
			}()
			_ = s.InTx(bg(), func(ctx context.Context) error {
				if err := writeEverything(t, s, ctx, "panic", now); err != nil {
					return err
				}
				panic("boom")
			})
		}()
		nothingWritten(t, s, "panic", now)
	})
	t.Run("generation_not_bumped", func(t *testing.T) {
		if gen, err := s.Generation(bg()); err != nil || gen != gen0 {
			t.Fatalf("generation = %d, %v; want %d", gen, err, gen0)
		}
	})
	t.Run("commit_persists", func(t *testing.T) {
		if err := s.InTx(bg(), func(ctx context.Context) error { return writeEverything(t, s, ctx, "ok", now) }); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetClientRecord(bg(), "client-ok"); err != nil {
			t.Fatal(err)
		}
	})
}

func testNestedTx(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	now := clock.Now()
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		fn      func(t *testing.T, ctx context.Context, tag string) error
		wantErr error
		kept    bool
	}{
		{"fosite_begintx_joins_and_commit_is_noop", func(t *testing.T, ctx context.Context, tag string) error {
			fctx, err := s.BeginTX(ctx)
			if err != nil {
				return err
			}
			if err := writeEverything(t, s, fctx, tag, now); err != nil {
				return err
			}
			if err := s.Commit(fctx); err != nil {
				return err
			}
			return errBoom // the outer unit of work fails after fosite "committed"
		}, errBoom, false},
		{"nested_intx_joins", func(t *testing.T, ctx context.Context, tag string) error {
			if err := s.InTx(ctx, func(ctx context.Context) error { return writeEverything(t, s, ctx, tag, now) }); err != nil {
				return err
			}
			return errBoom
		}, errBoom, false},
		{"nested_rollback_dooms_outer", func(t *testing.T, ctx context.Context, tag string) error {
			fctx, err := s.BeginTX(ctx)
			if err != nil {
				return err
			}
			if err := writeEverything(t, s, fctx, tag, now); err != nil {
				return err
			}
			return s.Rollback(fctx) // fosite rolled back; the outer function ignores it
		}, ErrRolledBack, false},
		{"nested_intx_error_dooms_outer", func(t *testing.T, ctx context.Context, tag string) error {
			_ = s.InTx(ctx, func(ctx context.Context) error {
				if err := writeEverything(t, s, ctx, tag, now); err != nil {
					return err
				}
				return errBoom
			})
			return nil
		}, ErrRolledBack, false},
		{"nested_all_succeed", func(t *testing.T, ctx context.Context, tag string) error {
			fctx, err := s.BeginTX(ctx)
			if err != nil {
				return err
			}
			if err := s.InTx(fctx, func(ctx context.Context) error { return writeEverything(t, s, ctx, tag, now) }); err != nil {
				return err
			}
			return s.Commit(fctx)
		}, nil, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tag := uniq("nested", i)
			err := s.InTx(bg(), func(ctx context.Context) error { return tt.fn(t, ctx, tag) })
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("InTx = %v, want %v", err, tt.wantErr)
			}
			if tt.kept {
				if _, err := s.GetClientRecord(bg(), "client-"+tag); err != nil {
					t.Fatalf("committed client: %v", err)
				}
				return
			}
			nothingWritten(t, s, tag, now)
		})
	}
	t.Run("top_level_begintx_commit", func(t *testing.T) {
		ctx, err := s.BeginTX(bg())
		if err != nil {
			t.Fatal(err)
		}
		if err := writeEverything(t, s, ctx, "top-commit", now); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetClientRecord(bg(), "client-top-commit"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("top_level_begintx_rollback", func(t *testing.T) {
		ctx, err := s.BeginTX(bg())
		if err != nil {
			t.Fatal(err)
		}
		if err := writeEverything(t, s, ctx, "top-rollback", now); err != nil {
			t.Fatal(err)
		}
		if err := s.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Rollback(ctx); err != nil {
			t.Fatalf("second rollback (fosite's deferred rollback after a failed commit): %v", err)
		}
		nothingWritten(t, s, "top-rollback", now)
	})
	t.Run("commit_without_tx", func(t *testing.T) {
		if err := s.Commit(bg()); err == nil {
			t.Fatal("Commit without a transaction succeeded")
		}
		if err := s.Rollback(bg()); err == nil {
			t.Fatal("Rollback without a transaction succeeded")
		}
	})
	t.Run("other_store_tx_ignored", func(t *testing.T) {
		other, _ := newStore(t, b)
		err := other.InTx(bg(), func(ctx context.Context) error {
			// s must not use other's transaction (another database).
			return writeEverything(t, s, ctx, "cross", now)
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetClientRecord(bg(), "client-cross"); err != nil {
			t.Fatal(err)
		}
		if _, err := other.GetClientRecord(bg(), "client-cross"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("write leaked into the other store: %v", err)
		}
	})
}

// testEveryMethodInTx calls every method inside one transaction. On SQLite the pool has one
// connection, so a method that bypassed the context's transaction would wait for the
// connection the transaction holds until the deadline (fosite.md §3.3 item 7).
func testEveryMethodInTx(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	now := clock.Now()
	ctx, cancel := context.WithTimeout(bg(), 30*time.Second)
	defer cancel()
	var calls []string
	call := func(name string, err error) error {
		calls = append(calls, name)
		if err != nil {
			return errors.New(name + ": " + err.Error())
		}
		return nil
	}
	par := fosite.NewAuthorizeRequest()
	err := s.InTx(ctx, func(ctx context.Context) error {
		c := testClient(t, "tx-client")
		req := testRequest(t, c, "tx-grant", "tx-jkt", now)
		par.Client, par.Session = c, NewSession()
		steps := []func() error{
			func() error { return call("Ping", s.Ping(ctx)) },
			func() error { return call("UpsertClient", s.UpsertClient(ctx, c)) },
			func() error { _, err := s.GetClientRecord(ctx, c.ID); return call("GetClientRecord", err) },
			func() error { _, err := s.GetClient(ctx, c.ID); return call("GetClient", err) },
			func() error { _, err := s.ListClients(ctx); return call("ListClients", err) },
			func() error {
				return call("UpsertAttester", s.UpsertAttester(ctx, &Attester{ID: "tx-att", Enabled: true}))
			},
			func() error { _, err := s.GetAttester(ctx, "tx-att"); return call("GetAttester", err) },
			func() error { _, err := s.ListAttesters(ctx); return call("ListAttesters", err) },
			func() error { _, err := s.Generation(ctx); return call("Generation", err) },
			func() error {
				return call("CreateAuthorizeCodeSession", s.CreateAuthorizeCodeSession(ctx, "tx-code", req))
			},
			func() error {
				_, err := s.GetAuthorizeCodeSession(ctx, "tx-code", NewSession())
				return call("GetAuthorizeCodeSession", err)
			},
			func() error {
				return call("InvalidateAuthorizeCodeSession", s.InvalidateAuthorizeCodeSession(ctx, "tx-code"))
			},
			func() error {
				err := s.InvalidateAuthorizeCodeSession(ctx, "tx-code")
				if errors.Is(err, fosite.ErrSerializationFailure) {
					err = nil
				}
				return call("InvalidateAuthorizeCodeSession(again)", err)
			},
			func() error { return call("CreatePKCERequestSession", s.CreatePKCERequestSession(ctx, "tx-pkce", req)) },
			func() error {
				_, err := s.GetPKCERequestSession(ctx, "tx-pkce", nil)
				return call("GetPKCERequestSession", err)
			},
			func() error { return call("DeletePKCERequestSession", s.DeletePKCERequestSession(ctx, "tx-pkce")) },
			func() error { return call("CreateAccessTokenSession", s.CreateAccessTokenSession(ctx, "tx-at", req)) },
			func() error {
				_, err := s.GetAccessTokenSession(ctx, "tx-at", nil)
				return call("GetAccessTokenSession", err)
			},
			func() error {
				return call("CreateRefreshTokenSession", s.CreateRefreshTokenSession(ctx, "tx-rt", "tx-at", req))
			},
			func() error {
				_, err := s.GetRefreshTokenSession(ctx, "tx-rt", nil)
				return call("GetRefreshTokenSession", err)
			},
			func() error { return call("RotateRefreshToken", s.RotateRefreshToken(ctx, "tx-grant", "tx-rt")) },
			func() error { return call("RevokeRefreshToken", s.RevokeRefreshToken(ctx, "tx-grant")) },
			func() error { return call("RevokeAccessToken", s.RevokeAccessToken(ctx, "tx-grant")) },
			func() error { return call("DeleteAccessTokenSession", s.DeleteAccessTokenSession(ctx, "tx-at")) },
			func() error { return call("DeleteRefreshTokenSession", s.DeleteRefreshTokenSession(ctx, "tx-rt")) },
			func() error { return call("CreatePARSession", s.CreatePARSession(ctx, "tx-par", par)) },
			func() error { _, err := s.GetPARSession(ctx, "tx-par"); return call("GetPARSession", err) },
			func() error { return call("DeletePARSession", s.DeletePARSession(ctx, "tx-par")) },
			func() error { return call("MarkReplay", s.MarkReplay(ctx, "tx-replay", now.Add(time.Minute))) },
			func() error { return call("ClientAssertionJWTValid", s.ClientAssertionJWTValid(ctx, "tx-jti")) },
			func() error {
				return call("SetClientAssertionJWT", s.SetClientAssertionJWT(ctx, "tx-jti", now.Add(time.Minute)))
			},
			func() error { _, err := s.SharedSecret(ctx, "tx-secret", 32); return call("SharedSecret", err) },
			func() error { _, err := s.EnsureSigningKey(ctx); return call("EnsureSigningKey", err) },
			func() error { _, err := s.SigningKeys(ctx); return call("SigningKeys", err) },
			func() error { return call("RecordDecision", s.RecordDecision(ctx, &Decision{Decision: "accepted"})) },
			func() error {
				_, err := s.ListDecisions(ctx, DecisionFilter{Limit: 1})
				return call("ListDecisions", err)
			},
			func() error { _, err := s.PruneDecisions(ctx, now.Add(-time.Hour)); return call("PruneDecisions", err) },
			func() error { return call("RevokeInstance", s.RevokeInstance(ctx, "tx-jkt", "test")) },
			func() error { _, err := s.IsInstanceRevoked(ctx, "tx-jkt"); return call("IsInstanceRevoked", err) },
			func() error { _, err := s.RevokedInstances(ctx); return call("RevokedInstances", err) },
			func() error { return call("PruneExpired", s.PruneExpired(ctx, now)) },
			func() error { return call("DeleteAttester", s.DeleteAttester(ctx, "tx-att")) },
			func() error { return call("DeleteClient", s.DeleteClient(ctx, c.ID)) },
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after %v: %v", calls, err)
	}
}

// --- shared secrets, signing keys, migration ---------------------------------------------------

func testSharedSecret(t *testing.T, b backend) {
	d := newTestDB(t, b)
	stores := []*Store{d.migrated(t), d.open(t)} // two replicas on one database
	secrets := make([][]byte, concurrency)
	errs := race(concurrency, func(i int) error {
		var err error
		secrets[i], err = stores[i%2].SharedSecret(bg(), "global", 32)
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if len(secrets[i]) != 32 || string(secrets[i]) != string(secrets[0]) {
			t.Fatalf("call %d got another secret", i)
		}
	}
	tests := []struct {
		name    string
		secret  string
		size    int
		wantErr error
	}{
		{"same_value_again", "global", 32, nil},
		{"other_name_other_value", "cookie", 32, nil},
		{"size_mismatch", "global", 64, ErrCorrupt},
		{"zero_size", "x", 0, ErrInvalid},
		{"empty_name", "", 32, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := stores[0].SharedSecret(bg(), tt.secret, tt.size)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && (string(got) == string(secrets[0])) != (tt.secret == "global") {
				t.Fatalf("secret %q: same as global = %v", tt.secret, string(got) == string(secrets[0]))
			}
		})
	}
}

func testSigningKey(t *testing.T, b backend) {
	d := newTestDB(t, b)
	stores := []*Store{d.migrated(t), d.open(t)}
	keys := make([]*SigningKey, concurrency)
	errs := race(concurrency, func(i int) error {
		var err error
		keys[i], err = stores[i%2].EnsureSigningKey(bg())
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if keys[i].KID != keys[0].KID || !keys[i].Private.Equal(keys[0].Private) {
			t.Fatalf("call %d got key %s, call 0 got %s", i, keys[i].KID, keys[0].KID)
		}
	}
	k := keys[0]
	if k.Alg != "ES256" || !k.Active || k.Private.Curve.Params().Name != "P-256" || !k.CreatedAt.Equal(dbTime(testStart)) {
		t.Fatalf("key = %s %s active=%v created=%v", k.KID, k.Alg, k.Active, k.CreatedAt)
	}
	if want, err := thumbprint(&k.Private.PublicKey); err != nil || want != k.KID || len(k.KID) != 43 {
		t.Fatalf("kid %q is not the RFC 7638 thumbprint %q (%v)", k.KID, want, err)
	}
	digest := sha256.Sum256([]byte("payload"))
	sig, err := ecdsa.SignASN1(rand.Reader, k.Private, digest[:])
	if err != nil || !ecdsa.VerifyASN1(&k.Private.PublicKey, digest[:], sig) {
		t.Fatalf("stored key does not sign: %v", err)
	}
	list, err := stores[1].SigningKeys(bg())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].KID != k.KID || !list[0].Active {
		t.Fatalf("SigningKeys = %+v", list)
	}
}

func testConcurrentMigrate(t *testing.T, b backend) {
	d := newTestDB(t, b)
	stores := []*Store{d.open(t), d.open(t)}
	errs := race(2, func(i int) error { return stores[i].Migrate(bg()) })
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: Migrate on an empty database: %v", i, err)
		}
	}
	for i, s := range stores {
		if err := s.Migrate(bg()); err != nil {
			t.Fatalf("replica %d: Migrate again: %v", i, err)
		}
		if gen, err := s.Generation(bg()); err != nil || gen != 0 {
			t.Fatalf("replica %d: generation = %d, %v; want 0", i, gen, err)
		}
	}
	mustUpsertClient(t, stores[0], "agent")
	if _, err := stores[1].GetClient(bg(), "agent"); err != nil {
		t.Fatal(err)
	}
}

// --- audit ----------------------------------------------------------------------------------

func testAuditDecisions(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	ctx := bg()
	now := clock.Now()
	records := []Decision{
		{Time: now.Add(-3 * time.Hour), Endpoint: "/oauth2/token", ClientID: "a", Attester: "att1", InstanceJKT: "j1", Decision: "rejected", Reason: "pop_signature_invalid", Challenge: "none"},
		{Time: now.Add(-2 * time.Hour), Endpoint: "/oauth2/token", ClientID: "a", VerifiedClientID: "a", Attester: "att1", Resolution: "kid", InstanceJKT: "j1", PoPMethod: "attestation_pop_jwt", PoPAud: "https://as.example", Decision: "accepted", Reason: "ok", Challenge: "valid", TokenRequestID: "r1"},
		{Time: now.Add(-time.Hour), Endpoint: "/oauth2/par", ClientID: "b", Attester: "att2", InstanceJKT: "j2", Decision: "rejected", Reason: "attestation_expired", Challenge: "missing"},
		{Endpoint: "/oauth2/introspect", ClientID: "b", Decision: "accepted", Reason: "ok"}, // zero Time: now
	}
	for i := range records {
		if err := s.RecordDecision(ctx, &records[i]); err != nil {
			t.Fatal(err)
		}
		if records[i].ID == 0 {
			t.Fatalf("record %d: no id", i)
		}
	}
	if !records[3].Time.Equal(dbTime(now)) {
		t.Fatalf("zero time recorded as %v, want now", records[3].Time)
	}
	all, err := s.ListDecisions(ctx, DecisionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("ListDecisions = %d records", len(all))
	}
	for i := range all {
		want := records[len(records)-1-i]
		want.Time = dbTime(want.Time)
		if !reflect.DeepEqual(all[i], want) {
			t.Fatalf("record %d =\n%+v\nwant\n%+v", i, all[i], want)
		}
	}
	ids := func(ds []Decision) []int64 {
		out := []int64{}
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}
	id := func(i int) int64 { return records[i].ID }
	tests := []struct {
		name   string
		filter DecisionFilter
		want   []int64
	}{
		{"client", DecisionFilter{ClientID: "a"}, []int64{id(1), id(0)}},
		{"decision", DecisionFilter{Decision: "accepted"}, []int64{id(3), id(1)}},
		{"attester", DecisionFilter{Attester: "att2"}, []int64{id(2)}},
		{"reason", DecisionFilter{Reason: "pop_signature_invalid"}, []int64{id(0)}},
		{"instance_jkt", DecisionFilter{InstanceJKT: "j1"}, []int64{id(1), id(0)}},
		{"since_inclusive", DecisionFilter{Since: now.Add(-2 * time.Hour)}, []int64{id(3), id(2), id(1)}},
		{"until_exclusive", DecisionFilter{Until: now.Add(-time.Hour)}, []int64{id(1), id(0)}},
		{"since_and_until", DecisionFilter{Since: now.Add(-150 * time.Minute), Until: now.Add(-30 * time.Minute)}, []int64{id(2), id(1)}},
		{"limit", DecisionFilter{Limit: 2}, []int64{id(3), id(2)}},
		{"cursor", DecisionFilter{BeforeID: id(2), Limit: 1}, []int64{id(1)}},
		{"combined", DecisionFilter{ClientID: "a", Decision: "rejected"}, []int64{id(0)}},
		{"no_match", DecisionFilter{ClientID: "zzz"}, []int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ListDecisions(ctx, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids(got), tt.want) {
				t.Fatalf("ids = %v, want %v", ids(got), tt.want)
			}
		})
	}
	t.Run("json_members", func(t *testing.T) {
		raw, err := json.Marshal(all[2])
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		want := []string{"attester", "challenge", "client_id", "decision", "endpoint", "instance_jkt", "pop_aud", "pop_method", "reason", "resolution", "time", "token_request_id", "verified_client_id"}
		if !reflect.DeepEqual(keys, want) {
			t.Fatalf("members = %v, want profile §7's %v", keys, want)
		}
		ts, _ := m["time"].(string)
		if parsed, err := time.Parse(time.RFC3339, ts); err != nil || !strings.HasSuffix(ts, "Z") || !parsed.Equal(all[2].Time) {
			t.Fatalf("time %q is not RFC 3339 UTC (%v)", ts, err)
		}
	})
	t.Run("prune", func(t *testing.T) {
		n, err := s.PruneDecisions(ctx, now.Add(-90*time.Minute))
		if err != nil || n != 2 {
			t.Fatalf("PruneDecisions = %d, %v; want 2", n, err)
		}
		left, err := s.ListDecisions(ctx, DecisionFilter{})
		if err != nil || !reflect.DeepEqual(ids(left), []int64{id(3), id(2)}) {
			t.Fatalf("left = %v, %v", ids(left), err)
		}
	})
}

// --- instance revocation and generation ----------------------------------------------------------

func testRevokeInstance(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	ctx := bg()
	c := mustUpsertClient(t, s, "agent")
	now := clock.Now()
	bad := testRequest(t, c, "grant-bad", "jkt-bad", now)
	dpopBound := testRequest(t, c, "grant-dpop", "jkt-other", now)
	dpopBound.Session.(*Session).DPoPJKT = "jkt-bad"
	good := testRequest(t, c, "grant-good", "jkt-good", now)
	for _, r := range []*fosite.Request{bad, dpopBound, good} {
		if err := s.CreateAccessTokenSession(ctx, "at-"+r.ID, r); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateRefreshTokenSession(ctx, "rt-"+r.ID, "at-"+r.ID, r); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateAuthorizeCodeSession(ctx, "code-"+r.ID, r); err != nil {
			t.Fatal(err)
		}
	}
	gen0, _ := s.Generation(ctx)
	if err := s.RevokeInstance(ctx, "jkt-bad", "device reported stolen"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		get     func() error
		wantErr error
	}{
		{"instance_access_token_revoked", func() error { _, err := s.GetAccessTokenSession(ctx, "at-grant-bad", nil); return err }, fosite.ErrNotFound},
		{"instance_refresh_token_inactive", func() error { _, err := s.GetRefreshTokenSession(ctx, "rt-grant-bad", nil); return err }, fosite.ErrInactiveToken},
		{"instance_code_invalidated", func() error { _, err := s.GetAuthorizeCodeSession(ctx, "code-grant-bad", nil); return err }, fosite.ErrInvalidatedAuthorizeCode},
		{"dpop_bound_access_token_revoked", func() error { _, err := s.GetAccessTokenSession(ctx, "at-grant-dpop", nil); return err }, fosite.ErrNotFound},
		{"dpop_bound_refresh_token_inactive", func() error { _, err := s.GetRefreshTokenSession(ctx, "rt-grant-dpop", nil); return err }, fosite.ErrInactiveToken},
		{"other_access_token_kept", func() error { _, err := s.GetAccessTokenSession(ctx, "at-grant-good", nil); return err }, nil},
		{"other_refresh_token_kept", func() error { _, err := s.GetRefreshTokenSession(ctx, "rt-grant-good", nil); return err }, nil},
		{"other_code_kept", func() error { _, err := s.GetAuthorizeCodeSession(ctx, "code-grant-good", nil); return err }, nil},
		{"revoke_again", func() error { return s.RevokeInstance(ctx, "jkt-bad", "again") }, nil},
		{"revoke_empty", func() error { return s.RevokeInstance(ctx, "", "x") }, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.get()
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
	if ok, err := s.IsInstanceRevoked(ctx, "jkt-bad"); err != nil || !ok {
		t.Fatalf("IsInstanceRevoked(bad) = %v, %v", ok, err)
	}
	if ok, err := s.IsInstanceRevoked(ctx, "jkt-good"); err != nil || ok {
		t.Fatalf("IsInstanceRevoked(good) = %v, %v", ok, err)
	}
	clock.Advance(time.Second)
	if err := s.RevokeInstance(ctx, "jkt-2", ""); err != nil {
		t.Fatal(err)
	}
	if list, err := s.RevokedInstances(ctx); err != nil || !reflect.DeepEqual(list, []string{"jkt-bad", "jkt-2"}) {
		t.Fatalf("RevokedInstances = %v, %v", list, err)
	}
	if gen, _ := s.Generation(ctx); gen != gen0+3 {
		t.Fatalf("generation = %d, want %d (one bump per revocation)", gen, gen0+3)
	}
}

func testGeneration(t *testing.T, b backend) {
	s, _ := newStore(t, b)
	ctx := bg()
	steps := []struct {
		name string
		op   func() error
		bump int64
	}{
		{"upsert_client", func() error { mustUpsertClient(t, s, "c1"); return nil }, 1},
		{"update_client", func() error { mustUpsertClient(t, s, "c1"); return nil }, 1},
		{"upsert_attester", func() error { return s.UpsertAttester(ctx, &Attester{ID: "a1", Enabled: true}) }, 1},
		{"delete_attester", func() error { return s.DeleteAttester(ctx, "a1") }, 1},
		{"delete_client", func() error { return s.DeleteClient(ctx, "c1") }, 1},
		{"revoke_instance", func() error { return s.RevokeInstance(ctx, "j", "") }, 1},
		{"failed_delete_no_bump", func() error {
			if err := s.DeleteClient(ctx, "c1"); !errors.Is(err, ErrNotFound) {
				return err
			}
			return nil
		}, 0},
		{"reads_no_bump", func() error { _, err := s.ListClients(ctx); return err }, 0},
		{"two_writes_in_one_tx", func() error {
			return s.InTx(ctx, func(ctx context.Context) error {
				if err := s.UpsertAttester(ctx, &Attester{ID: "a2"}); err != nil {
					return err
				}
				return s.UpsertAttester(ctx, &Attester{ID: "a3"})
			})
		}, 2},
	}
	prev, err := s.Generation(ctx)
	if err != nil || prev != 0 {
		t.Fatalf("initial generation = %d, %v; want 0", prev, err)
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := st.op(); err != nil {
				t.Fatal(err)
			}
			gen, err := s.Generation(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if gen != prev+st.bump {
				t.Fatalf("generation = %d, want %d", gen, prev+st.bump)
			}
			prev = gen
		})
	}
}

// --- garbage collection and hostile rows ---------------------------------------------------------

func testPruneExpired(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	ctx := bg()
	c := mustUpsertClient(t, s, "agent")
	now := clock.Now()
	expired := testRequest(t, c, "grant-old", "", now.Add(-2*time.Hour)) // expired an hour ago
	live := testRequest(t, c, "grant-new", "", now)
	forever := testRequest(t, c, "grant-forever", "", now)
	delete(forever.Session.(*Session).ExpiresAt, fosite.RefreshToken) // refresh lifespan -1: never expires
	for _, r := range []*fosite.Request{expired, live} {
		if err := s.CreateAccessTokenSession(ctx, "at-"+r.ID, r); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateAuthorizeCodeSession(ctx, "code-"+r.ID, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateRefreshTokenSession(ctx, "rt-forever", "", forever); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkReplay(ctx, "old", now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkReplay(ctx, "new", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	ar := fosite.NewAuthorizeRequest()
	ar.Client, ar.Session = c, NewSession()
	ar.Session.SetExpiresAt(fosite.PushedAuthorizeRequestContext, now.Add(time.Second))
	if err := s.CreatePARSession(ctx, "par", ar); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	if err := s.PruneExpired(ctx, clock.Now()); err != nil {
		t.Fatal(err)
	}
	count := func(model any) int64 {
		var n int64
		if err := s.conn(ctx).Model(model).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(&requestModel{}); n != 3 {
		t.Errorf("token rows = %d, want 3 (live access + code, never-expiring refresh)", n)
	}
	if _, err := s.GetAccessTokenSession(ctx, "at-grant-new", nil); err != nil {
		t.Errorf("live token pruned: %v", err)
	}
	if _, err := s.GetRefreshTokenSession(ctx, "rt-forever", nil); err != nil {
		t.Errorf("never-expiring refresh token pruned: %v", err)
	}
	if n := count(&replayModel{}); n != 1 {
		t.Errorf("replay rows = %d, want 1", n)
	}
	if n := count(&parModel{}); n != 0 {
		t.Errorf("pushed requests = %d, want 0", n)
	}
}

// testMalformedStoredData corrupts rows behind the store's back: every read returns an error
// wrapping ErrCorrupt and nothing panics.
func testMalformedStoredData(t *testing.T, b backend) {
	s, clock := newStore(t, b)
	ctx := bg()
	c := mustUpsertClient(t, s, "agent")
	now := clock.Now()
	if err := s.CreateAccessTokenSession(ctx, "at-bad-session", testRequest(t, c, "g1", "", now)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRefreshTokenSession(ctx, "rt-bad-scopes", "", testRequest(t, c, "g2", "", now)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAuthorizeCodeSession(ctx, "code-bad-form", testRequest(t, c, "g3", "", now)); err != nil {
		t.Fatal(err)
	}
	ar := fosite.NewAuthorizeRequest()
	ar.Client, ar.Session = c, NewSession()
	if err := s.CreatePARSession(ctx, "par-bad", ar); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertAttester(ctx, &Attester{ID: "att-bad"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnsureSigningKey(ctx); err != nil {
		t.Fatal(err)
	}
	mustUpsertClient(t, s, "client-bad")
	corrupt := func(model any, where, col string, val any) {
		t.Helper()
		if err := s.conn(ctx).Model(model).Where(where).Update(col, val).Error; err != nil {
			t.Fatalf("corrupt %s: %v", col, err)
		}
	}
	corrupt(&requestModel{}, "request_id = 'g1'", "session", `{"JWTClaims": 7`)
	corrupt(&requestModel{}, "request_id = 'g2'", "granted_scopes", `{"not":"a list"}`)
	corrupt(&requestModel{}, "request_id = 'g3'", "form", "%zz")
	corrupt(&parModel{}, "1 = 1", "request", "[")
	corrupt(&attesterModel{}, "id = 'att-bad'", "jku_allowlist", "nope")
	corrupt(&signingKeyModel{}, "1 = 1", "private_der", []byte("not der"))
	corrupt(&clientModel{}, "id = 'client-bad'", "scopes", "[1,2")
	tests := []struct {
		name string
		op   func() error
	}{
		{"access_session_json", func() error { _, err := s.GetAccessTokenSession(ctx, "at-bad-session", NewSession()); return err }},
		{"access_session_json_nil_proto", func() error { _, err := s.GetAccessTokenSession(ctx, "at-bad-session", nil); return err }},
		{"refresh_scopes_json", func() error { _, err := s.GetRefreshTokenSession(ctx, "rt-bad-scopes", nil); return err }},
		{"code_form", func() error { _, err := s.GetAuthorizeCodeSession(ctx, "code-bad-form", nil); return err }},
		{"par_json", func() error { _, err := s.GetPARSession(ctx, "par-bad"); return err }},
		{"attester_list", func() error { _, err := s.GetAttester(ctx, "att-bad"); return err }},
		{"attesters_list", func() error { _, err := s.ListAttesters(ctx); return err }},
		{"signing_key_der", func() error { _, err := s.EnsureSigningKey(ctx); return err }},
		{"signing_keys_der", func() error { _, err := s.SigningKeys(ctx); return err }},
		{"client_scopes", func() error { _, err := s.GetClient(ctx, "client-bad"); return err }},
		{"clients_list", func() error { _, err := s.ListClients(ctx); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
	t.Run("client_bad_jwks_reads_as_none", func(t *testing.T) {
		corrupt(&clientModel{}, "id = 'agent'", "jwks", []byte("{"))
		fc, err := s.GetClient(ctx, "agent")
		if err != nil {
			t.Fatal(err)
		}
		if fc.(*Client).GetJSONWebKeys() != nil {
			t.Fatal("malformed JWKS parsed")
		}
	})
}

// testCreateUpdateNeverUpsert: the admin writes. Create never replaces (ErrConflict), update and
// secret rotation never re-create a deleted record (ErrNotFound), and of concurrent creates of
// one id exactly one wins.
func testCreateUpdateNeverUpsert(t *testing.T, b backend) {
	s, _ := newStore(t, b)
	ctx := context.Background()
	c := testClient(t, "cu")
	if err := s.CreateClient(ctx, c); err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
	dup := testClient(t, "cu")
	dup.Description = "replaced?"
	if err := s.CreateClient(ctx, dup); !errors.Is(err, ErrConflict) {
		t.Fatalf("CreateClient of an existing id: %v, want ErrConflict", err)
	}
	if got, _ := s.GetClientRecord(ctx, "cu"); got.Description != c.Description {
		t.Fatalf("a refused create changed the client: %q", got.Description)
	}
	c.Description = "updated"
	if err := s.UpdateClient(ctx, c, false); err != nil {
		t.Fatalf("UpdateClient: %v", err)
	}
	if got, _ := s.GetClientRecord(ctx, "cu"); got.Description != "updated" {
		t.Fatalf("after UpdateClient: %q", got.Description)
	}
	if err := s.SetClientSecret(ctx, "cu", []byte("$2a$10$another-hash")); err != nil {
		t.Fatalf("SetClientSecret: %v", err)
	}
	if got, _ := s.GetClientRecord(ctx, "cu"); string(got.SecretHash) != "$2a$10$another-hash" || got.Description != "updated" {
		t.Fatalf("after SetClientSecret: %q %q", got.SecretHash, got.Description)
	}
	// An update that read the client before the rotation does not bring the old secret back;
	// one that sets the secret itself (a method change) does write it.
	c.Description = "updated again" // c still holds the pre-rotation hash
	if err := s.UpdateClient(ctx, c, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetClientRecord(ctx, "cu"); string(got.SecretHash) != "$2a$10$another-hash" || got.Description != "updated again" {
		t.Fatalf("a stale update undid the rotation: %q %q", got.SecretHash, got.Description)
	}
	c.SecretHash = nil
	if err := s.UpdateClient(ctx, c, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetClientRecord(ctx, "cu"); len(got.SecretHash) != 0 {
		t.Fatalf("UpdateClient with the secret did not clear it: %q", got.SecretHash)
	}
	if err := s.DeleteClient(ctx, "cu"); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateClient(ctx, c, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UpdateClient of a deleted client: %v, want ErrNotFound", err)
	}
	if err := s.SetClientSecret(ctx, "cu", []byte("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetClientSecret of a deleted client: %v, want ErrNotFound", err)
	}
	if _, err := s.GetClientRecord(ctx, "cu"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the deleted client came back: %v", err)
	}

	a := &Attester{ID: "att-cu", JWKS: []byte(`{"keys":[]}`), Enabled: true, Source: "api"}
	if err := s.CreateAttester(ctx, a); err != nil {
		t.Fatalf("CreateAttester: %v", err)
	}
	if err := s.CreateAttester(ctx, &Attester{ID: "att-cu", Enabled: false, Source: "api"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("CreateAttester of an existing id: %v, want ErrConflict", err)
	}
	a.Enabled = false
	if err := s.UpdateAttester(ctx, a); err != nil {
		t.Fatalf("UpdateAttester: %v", err)
	}
	if got, _ := s.GetAttester(ctx, "att-cu"); got.Enabled {
		t.Fatal("UpdateAttester did not apply")
	}
	if err := s.DeleteAttester(ctx, "att-cu"); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateAttester(ctx, a); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UpdateAttester of a deleted attester: %v, want ErrNotFound", err)
	}

	// Concurrent creates of one id: exactly one succeeds, the others are ErrConflict (or, under
	// lock contention, a serialization failure the caller may retry — never a second client).
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			r := testClient(t, "race")
			r.Description = fmt.Sprint("writer ", i)
			errs <- s.CreateClient(ctx, r)
		}()
	}
	wins := 0
	for range n {
		err := <-errs
		switch {
		case err == nil:
			wins++
		case errors.Is(err, ErrConflict), errors.Is(err, fosite.ErrSerializationFailure):
		default:
			t.Errorf("concurrent CreateClient: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d concurrent creates of one id succeeded, want 1", wins)
	}
}
