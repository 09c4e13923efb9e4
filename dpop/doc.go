// Package dpop verifies RFC 9449 DPoP proofs (https://www.rfc-editor.org/rfc/rfc9449) as pure
// functions of a proof string, the request it arrived on and a Config: ExtractHeader takes exactly
// one DPoP header line (RFC 9449 §4.3 step 1), and Verify runs the remaining checks of RFC 9449
// §4.3 in spec order, reading only the JOSE header before the signature verifies. It is used both
// for ordinary DPoP and for the DPoP combined mode of draft-ietf-oauth-attestation-based-client-auth-09
// (ABCA-09 §5.2, §7.3, https://datatracker.ietf.org/doc/html/draft-ietf-oauth-attestation-based-client-auth-09),
// where the caller additionally compares Proof.JKT with the attestation's cnf key. It leaves out
// what needs state: the server nonce policy (RFC 9449 §4.3 step 10, §8) and jti replay (§11.1) are
// the caller's, fed by Proof.Nonce and Proof.JTI; and binding an access token to the proof key
// (§4.3 step 12, second half) is the resource server's comparison of Proof.JKT with cnf.jkt.
package dpop
