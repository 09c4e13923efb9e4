// Package storage is authz's persistence layer: unexported GORM models on SQLite (embedded,
// one writer) or PostgreSQL (several replicas), the fosite storage interfaces (clients, the
// authorization code, access token, refresh token and PKCE sessions of RFC 6749 and RFC 7636,
// the pushed authorization requests of RFC 9126, client assertion jti replay of RFC 7523 §3),
// transactions carried in the context (fosite's storage.Transactional and InTx), and the tables
// authz adds: the replay set of ABCA-09 §11.1 and profile §5 (one atomic insert on a unique
// key), shared secrets and the RFC 9068 access-token signing keys created race-free by the first
// replica, trusted attesters (ABCA-09 §9.7, profile §4), the audit decisions of profile §7,
// revoked client instance keys, and a generation counter replicas poll to reload their trust
// set. Draft: https://datatracker.ietf.org/doc/html/draft-ietf-oauth-attestation-based-client-auth-09
// (pinned in DraftRevision). fosite's storage/memory.go is the behavioural oracle and Hydra's
// persister_oauth2.go the blueprint; conformance_test.go runs one suite on both backends.
// Verification, HTTP and the decision of what to record are left to clientauth and server.
package storage

// DraftRevision is the revision of the attestation draft this package's citations refer to.
const DraftRevision = "draft-ietf-oauth-attestation-based-client-auth-09"
