// Package metadata builds authz's OAuth 2.0 Authorization Server Metadata document
// (RFC 8414, https://www.rfc-editor.org/rfc/rfc8414) as a pure function of configuration: Build
// takes the issuer, the enabled authentication methods and the verifiers' algorithm allow-lists
// and returns the Document served at /.well-known/oauth-authorization-server, with the members of
// RFC 9126 (PAR), RFC 9449 (DPoP) and draft-ietf-oauth-attestation-based-client-auth-09 §6.1 and §8
// (https://datatracker.ietf.org/doc/html/draft-ietf-oauth-attestation-based-client-auth-09).
// Endpoint URLs are the issuer, used verbatim, followed by the fixed paths of interface.md. It does
// no I/O and no validation: the issuer is checked by the config package, and HTTP caching
// and serving are the server's.
package metadata
