// Package bench is authz's load generator and measuring kit (issue 8, `make bench`). It starts
// `authz serve` as a child process with a generated configuration (SQLite, or a fresh PostgreSQL
// database), pre-generates every request of a run — a Client Attestation JWT per client instance,
// reused as ABCA-09 §9.2 allows, and a unique Client Attestation PoP JWT (ABCA-09 §5.1), DPoP proof
// (RFC 9449 §4.2, combined mode ABCA-09 §5.2) or RFC 7523 client assertion per request — so that no
// client-side cryptography runs while the clock runs, then drives the client_credentials grant
// (RFC 6749 §4.4) over keep-alive HTTP/1.1 connections at a fixed concurrency. Server CPU time and
// peak resident memory come from the child's own accounting (/proc/PID/stat, /proc/PID/status),
// so the generator sharing the machine does not distort them. It also measures the crypto bound:
// the CPU time of the unavoidable ES256 work of one attested token request (verify the
// attestation, verify the PoP, sign the RFC 9068 access token) on one core. It reports; it never
// judges speed. Linux only for the process accounting (elsewhere CPU and RSS read as unknown).
// Draft: https://datatracker.ietf.org/doc/html/draft-ietf-oauth-attestation-based-client-auth-09
package bench
