// Package console holds the admin web console's pages (issue 5: "Admins configure trusted
// attesters" and investigate incidents): embedded html/template files with one typed render
// function per page — login, dashboard (with a server-side SVG bar chart of accepted and
// rejected attestation decisions per attester), attesters, clients, decisions, one client
// instance key, the admin change log, and an error page. Pages need no JavaScript and no external
// assets (styles are inline, so a strict Content-Security-Policy applies); every value is escaped
// by html/template. It leaves out everything else: authentication, CSRF checks, storage and HTTP
// belong to the server package, which fills the page structs. The attestation vocabulary is that
// of draft-ietf-oauth-attestation-based-client-auth-09
// (https://datatracker.ietf.org/doc/draft-ietf-oauth-attestation-based-client-auth/09/).
package console
