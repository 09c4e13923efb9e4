// Package devattester is a development Client Attester for attestation-based client
// authentication (draft-ietf-oauth-attestation-based-client-auth-09,
// https://datatracker.ietf.org/doc/html/draft-ietf-oauth-attestation-based-client-auth-09): it
// signs a Client Attestation JWT (ABCA-09 §4) binding whatever public Client Instance Key it is
// sent (cnf.jwk, RFC 7800) to whatever client_id it is asked for, and publishes its own public key
// as a JWK set (RFC 7517 §5) so an authorization server can trust it through jwks_uri (§9.7). It
// backs `authz dev-attester` (interface.md) and tests. It deliberately leaves out the one thing a
// real attester exists for — checking the instance before vouching for it (steps 1–4 of the §1
// flow) — so it must never be trusted in production.
package devattester
