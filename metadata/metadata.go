package metadata

import "slices"

// Endpoint paths under the issuer (interface.md "HTTP endpoints").
const (
	PathAuthorization = "/oauth2/authorize"
	PathToken         = "/oauth2/token"
	PathPAR           = "/oauth2/par"
	PathChallenge     = "/oauth2/challenge"
	PathIntrospection = "/oauth2/introspect"
	PathRevocation    = "/oauth2/revoke"
	PathJWKS          = "/jwks.json"
	// PathWellKnown is where the document is served (RFC 8414 §3).
	PathWellKnown = "/.well-known/oauth-authorization-server"
)

// Authentication method names that decide conditional members.
const (
	AuthMethodAttestJWT       = "attest_jwt_client_auth"      // ABCA-09 §13.4
	AuthMethodAttestJWTDPoP   = "attest_jwt_client_auth_dpop" // ABCA-09 §13.5
	AuthMethodPrivateKeyJWT   = "private_key_jwt"             // RFC 7523 §2.2, OpenID Connect Core §9
	AuthMethodClientSecretJWT = "client_secret_jwt"           // OpenID Connect Core §9
)

// Input is everything the document depends on.
type Input struct {
	Issuer                                               string
	AuthMethods                                          []string // token_endpoint_auth_methods_supported, in this order
	AttestationAlgorithms, PoPAlgorithms, DPoPAlgorithms []string // nil => member omitted
	TokenAuthSigningAlgorithms                           []string // for private_key_jwt (token_endpoint_auth_signing_alg_values_supported)
	GrantTypes                                           []string
	Scopes                                               []string
	ChallengeEndpoint                                    bool // publish challenge_endpoint
	PAR                                                  bool // publish pushed_authorization_request_endpoint
	RequirePAR                                           bool // publish require_pushed_authorization_requests: true
}

// Document is the RFC 8414 §2 metadata document. Members are listed in the order they are
// serialised; optional ones are omitted when empty.
type Document struct {
	// RFC 8414 §2: the issuer identifier, exactly as configured.
	Issuer string `json:"issuer"`
	// RFC 8414 §2; RFC 6749 §3.1.
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	// RFC 8414 §2; RFC 6749 §3.2.
	TokenEndpoint string `json:"token_endpoint"`
	// RFC 9126 §5: the PAR endpoint.
	PushedAuthorizationRequestEndpoint string `json:"pushed_authorization_request_endpoint,omitempty"`
	// RFC 9126 §5: authorization requests must be pushed (omitted when false, its default).
	RequirePushedAuthorizationRequests bool `json:"require_pushed_authorization_requests,omitempty"`
	// ABCA-09 §6.1, §13.1: MUST be published when the challenge endpoint exists.
	ChallengeEndpoint string `json:"challenge_endpoint,omitempty"`
	// RFC 8414 §2: the server's JWK set (keys that sign access tokens, RFC 9068 §4).
	JWKSURI string `json:"jwks_uri"`
	// RFC 8414 §2 (RECOMMENDED).
	ScopesSupported []string `json:"scopes_supported,omitempty"`
	// RFC 8414 §2 (REQUIRED): authz serves the code flow only.
	ResponseTypesSupported []string `json:"response_types_supported"`
	// RFC 8414 §2; OAuth 2.0 Multiple Response Types §2.1.
	ResponseModesSupported []string `json:"response_modes_supported,omitempty"`
	// RFC 8414 §2.
	GrantTypesSupported []string `json:"grant_types_supported,omitempty"`
	// RFC 8414 §2; ABCA-09 §8 (attest_jwt_client_auth, attest_jwt_client_auth_dpop).
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	// RFC 8414 §2: MUST be present when private_key_jwt or client_secret_jwt is listed.
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	// RFC 8414 §2; RFC 7009 §2.
	RevocationEndpoint string `json:"revocation_endpoint"`
	// RFC 8414 §2.
	RevocationEndpointAuthMethodsSupported []string `json:"revocation_endpoint_auth_methods_supported,omitempty"`
	// RFC 8414 §2: as for the token endpoint.
	RevocationEndpointAuthSigningAlgValuesSupported []string `json:"revocation_endpoint_auth_signing_alg_values_supported,omitempty"`
	// RFC 8414 §2; RFC 7662 §2.
	IntrospectionEndpoint string `json:"introspection_endpoint"`
	// RFC 8414 §2.
	IntrospectionEndpointAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported,omitempty"`
	// RFC 8414 §2: as for the token endpoint.
	IntrospectionEndpointAuthSigningAlgValuesSupported []string `json:"introspection_endpoint_auth_signing_alg_values_supported,omitempty"`
	// RFC 8414 §2; RFC 7636 §4.2: plain is not offered.
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
	// ABCA-09 §8, §13.3: algorithms accepted for the Client Attestation JWT.
	ClientAttestationSigningAlgValuesSupported []string `json:"client_attestation_signing_alg_values_supported,omitempty"`
	// ABCA-09 §8, §13.3: algorithms accepted for the Client Attestation PoP JWT.
	ClientAttestationPoPSigningAlgValuesSupported []string `json:"client_attestation_pop_signing_alg_values_supported,omitempty"`
	// RFC 9449 §5.1; ABCA-09 §8 (SHOULD with attest_jwt_client_auth_dpop).
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`
}

// Build returns the metadata document for in. Endpoint URLs are in.Issuer followed by the fixed
// paths; the issuer is not trimmed, because the PoP aud is compared with it exactly (ABCA-09 §7.2,
// profile §3). Slices are copied, so the Document does not alias in.
//
// Conditional members:
//   - client_attestation_signing_alg_values_supported: when AttestationAlgorithms is non-empty and
//     an attestation method is advertised (ABCA-09 §8: MUST with attest_jwt_client_auth; combined
//     mode verifies the same attestation);
//   - client_attestation_pop_signing_alg_values_supported: when PoPAlgorithms is non-empty and
//     attest_jwt_client_auth is advertised (ABCA-09 §8);
//   - dpop_signing_alg_values_supported: when DPoPAlgorithms is non-empty (RFC 9449 §5.1;
//     ABCA-09 §8 for attest_jwt_client_auth_dpop);
//   - *_auth_signing_alg_values_supported: when TokenAuthSigningAlgorithms is non-empty and
//     private_key_jwt or client_secret_jwt is advertised (RFC 8414 §2);
//   - pushed_authorization_request_endpoint and require_pushed_authorization_requests: with PAR
//     (RFC 9126 §5);
//   - challenge_endpoint: with ChallengeEndpoint (ABCA-09 §6.1).
func Build(in Input) Document {
	endpoint := func(path string) string { return in.Issuer + path }
	d := Document{
		Issuer:                                    in.Issuer,
		AuthorizationEndpoint:                     endpoint(PathAuthorization),
		TokenEndpoint:                             endpoint(PathToken),
		JWKSURI:                                   endpoint(PathJWKS),
		ScopesSupported:                           clone(in.Scopes),
		ResponseTypesSupported:                    []string{"code"},
		ResponseModesSupported:                    []string{"query"},
		GrantTypesSupported:                       clone(in.GrantTypes),
		TokenEndpointAuthMethodsSupported:         clone(in.AuthMethods),
		RevocationEndpoint:                        endpoint(PathRevocation),
		RevocationEndpointAuthMethodsSupported:    clone(in.AuthMethods),
		IntrospectionEndpoint:                     endpoint(PathIntrospection),
		IntrospectionEndpointAuthMethodsSupported: withoutNone(in.AuthMethods),
		CodeChallengeMethodsSupported:             []string{"S256"},
		DPoPSigningAlgValuesSupported:             clone(in.DPoPAlgorithms),
	}
	if in.PAR {
		d.PushedAuthorizationRequestEndpoint = endpoint(PathPAR)
		d.RequirePushedAuthorizationRequests = in.RequirePAR
	}
	if in.ChallengeEndpoint {
		d.ChallengeEndpoint = endpoint(PathChallenge)
	}
	if slices.Contains(in.AuthMethods, AuthMethodPrivateKeyJWT) || slices.Contains(in.AuthMethods, AuthMethodClientSecretJWT) {
		d.TokenEndpointAuthSigningAlgValuesSupported = clone(in.TokenAuthSigningAlgorithms)
		d.RevocationEndpointAuthSigningAlgValuesSupported = clone(in.TokenAuthSigningAlgorithms)
		d.IntrospectionEndpointAuthSigningAlgValuesSupported = clone(in.TokenAuthSigningAlgorithms)
	}
	normal := slices.Contains(in.AuthMethods, AuthMethodAttestJWT)
	if normal || slices.Contains(in.AuthMethods, AuthMethodAttestJWTDPoP) {
		d.ClientAttestationSigningAlgValuesSupported = clone(in.AttestationAlgorithms)
	}
	if normal {
		d.ClientAttestationPoPSigningAlgValuesSupported = clone(in.PoPAlgorithms)
	}
	return d
}

// clone copies s; empty stays nil so that omitempty members disappear.
func clone(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

// withoutNone drops "none": public clients may revoke their tokens (RFC 7009 §2.1) but not
// introspect (RFC 7662 §2.1 wants the caller authenticated), so introspection does not list it.
func withoutNone(methods []string) []string {
	out := make([]string, 0, len(methods))
	for _, m := range methods {
		if m != "none" {
			out = append(out, m)
		}
	}
	return out
}
