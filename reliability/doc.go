// Package reliability holds the tests a security reviewer asks of an authorization server that is
// attacked by design (issue 7): a kill -9 during attested load loses no issued token's audit
// record and leaves no token without one (profile §7, the token and its decision commit in one
// transaction); a PostgreSQL outage fails requests fast with 503 and service resumes by itself;
// rate limits per remote address and per claimed client keep a flood of bad attestations from
// starving good clients; CORS and security headers are present for configured origins only; and
// the token endpoint's form and header handling never answers 5xx to any input (a native fuzzer).
// Its non-test files are the small harness the tests and cmd/authz-soak share: ABCA-09 §4
// attestation and §5.1 PoP signing, running the real authz binary, and the audit invariant
// checked directly in the database. It implements no part of the protocol itself. The draft is
// https://datatracker.ietf.org/doc/html/draft-ietf-oauth-attestation-based-client-auth-09
// (ABCA-09); RFC 9449 (DPoP) and RFC 6585 §4 (429) are cited where used.
package reliability
