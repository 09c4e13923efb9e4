// Package templates owns the HTML pages authz shows to people: the login and consent pages of
// the authorization endpoint (RFC 6749 §3.1, §4.1.1) and the error page. The pages are embedded
// html/template files with one typed render function each, so every value is escaped for its
// context and a hostile client description cannot inject markup. The CSS is inline and no page
// needs JavaScript. The consent page says in plain words what attestation-based client
// authentication (draft-ietf-oauth-attestation-based-client-auth-09,
// https://datatracker.ietf.org/doc/html/draft-ietf-oauth-attestation-based-client-auth-09) does
// and does not mean for the user's decision: a verified instance, vouched for by a named attester,
// is about provenance, never about the safety of what it asks for. The package leaves out
// sessions, CSRF token generation and form handling, which belong to server/.
package templates
