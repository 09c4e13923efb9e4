// Command attested-token is a reference client for OAuth 2.0 Attestation-Based Client
// Authentication (draft-ietf-oauth-attestation-based-client-auth-09,
// https://datatracker.ietf.org/doc/html/draft-ietf-oauth-attestation-based-client-auth-09).
// It obtains an access token with the client_credentials grant, printing every step:
//
//  1. generate a Client Instance Key (ES256, ABCA-09 §1 step 1);
//  2. ask a client attester for a Client Attestation JWT binding that key (§4);
//  3. read the authorization server metadata (RFC 8414) for token_endpoint and challenge_endpoint;
//  4. fetch a challenge from challenge_endpoint (§6.1);
//  5. sign a Client Attestation PoP JWT with the instance key (§5.1);
//  6. call the token endpoint with the OAuth-Client-Attestation and OAuth-Client-Attestation-PoP
//     headers, retrying once with a fresh challenge on use_attestation_challenge (§6.2, §7.4).
//
// It uses only the Go standard library and go-jose, so it can be read as a template for any
// client. The attester protocol (POST /attest with {"client_id", "jwk"}) is the one of
// `authz dev-attester`; a production client asks its vendor's attester instead.
//
//	go run ./examples/attested-token -issuer http://127.0.0.1:8080 -attester http://127.0.0.1:8081 -client-id agent -scope read
package main
