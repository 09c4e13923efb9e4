// Package attestclient is the client side of attestation-based client authentication
// (draft-ietf-oauth-attestation-based-client-auth-09,
// https://datatracker.ietf.org/doc/html/draft-ietf-oauth-attestation-based-client-auth-09) for Go
// agents: it holds a Client Instance Key, obtains a Client Attestation JWT from a pluggable
// attester, discovers the authorization server (RFC 8414), builds a fresh PoP JWT (ABCA-09 §5.1)
// or DPoP proof (combined mode, §5.2; RFC 9449) per request, follows challenges (§6), retries once
// on use_attestation_challenge / use_dpop_nonce / use_fresh_attestation, and exposes the result as
// an oauth2.TokenSource and a DPoP-signing http.RoundTripper.
//
// It depends on go-jose and golang.org/x/oauth2 only; nothing of the authz server.
package attestclient
