// Package resource protects Go resource servers with authz's access tokens: it validates RFC 9068
// JWT access tokens against the issuer's published keys, enforces DPoP sender constraint (RFC 9449
// §7: Authorization: DPoP, a proof with ath, cnf.jkt equal to the proof key, proof jti replay) and
// hands the handler the token's claims, including authz's client_attestation evidence (which
// attester vouched for which instance key).
//
// Every token must name the resource server in aud (Config.Audience, RFC 9068 §4); the issuer's
// key set is fetched again every five minutes (a removed key stops being trusted); while the
// issuer is unreachable the last set serves for up to an hour, then requests fail with 503.
//
// It does not do authorization: checking scopes against the resource is the handler's job.
package resource
