// Package clientauth is authz's verifier for OAuth 2.0 Attestation-Based Client Authentication
// (ABCA-09, https://datatracker.ietf.org/doc/html/draft-ietf-oauth-attestation-based-client-auth-09)
// as profiled in shared/spec/profile.md: it parses the OAuth-Client-Attestation and
// OAuth-Client-Attestation-PoP headers (ABCA-09 §4, §5.1), verifies the Client Attestation JWT
// against trusted attesters resolved by kid, x5c, jku, keys tried or a shared MAC secret
// (ABCA-09 §7.1, §9.7), verifies the PoP JWT against the attested instance key (ABCA-09 §7.2) or,
// in DPoP combined mode, an RFC 9449 proof through package dpop (ABCA-09 §7.3), issues and checks
// self-contained challenges (ABCA-09 §6), binds the result to the registered client (ABCA-09 §7.1
// step 7, §7.5), and maps every failure to one sentinel error, an audit reason and the RFC 6749
// §5.2 error of ABCA-09 §7.4 (rfc6749.go, the only file that imports fosite). It is pure: no HTTP
// server, no database. Replay is detected by the caller, which inserts Result.Replay atomically
// after every other check passed (ABCA-09 §11.1, profile §5); certificate revocation for x5c
// chains is not checked.
package clientauth
