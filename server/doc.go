// Package server wires authz together: the echo route table, one file per endpoint, the fosite
// composition (fosite.go), the client-authentication strategy that puts attestation-based client
// authentication (draft-ietf-oauth-attestation-based-client-auth-09,
// https://datatracker.ietf.org/doc/html/draft-ietf-oauth-attestation-based-client-auth-09) in front
// of fosite's own methods (strategy.go), the minting of RFC 9068 JWT access tokens carrying the
// attestation evidence of profile §6 (tokens.go), and errors.go, the single place that turns errors
// into HTTP responses.
//
// Verification itself lives in clientauth (pure), persistence in storage. The server owns the
// order: verify, then record replay keys, the token and the audit decision in one transaction.
package server
