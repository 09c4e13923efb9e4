// Package replicas holds the multi-replica test of issue 8: two authz servers, each with its own
// connection pool, sharing one fresh PostgreSQL database act as one authorization server
// (profile §8 "Replicas"). It proves that a challenge issued by one replica is accepted by the
// other (ABCA-09 §6, profile §5: the challenge secret lives in the database), that a PoP jti used
// at one replica is refused at the other (ABCA-09 §11.1, profile §5: the replay set is a unique
// index in the database), that an attester added through the storage API, as the CLI adds it, is
// trusted by the other replica within seconds (ABCA-09 §9.7, the trust generation poll), and that
// the access-token signing keys are shared (RFC 9068 §4: a token from one replica verifies with
// the other's /jwks.json and introspects active there, RFC 7662 §2.2). The test needs PostgreSQL:
// it is skipped when AUTHZ_TEST_POSTGRES_DSN is unset, and fails then when CI=true. The package
// has no non-test code.
// Draft: https://datatracker.ietf.org/doc/html/draft-ietf-oauth-attestation-based-client-auth-09
package replicas
