package metadata_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/authz/authz/metadata"
)

var update = flag.Bool("update", false, "rewrite testdata/metadata.golden.json")

const issuer = "https://as.example.com"

// representativeInput is the configuration of a server with every method and feature enabled.
func representativeInput() metadata.Input {
	asym := []string{"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA", "RS256"}
	return metadata.Input{
		Issuer: issuer,
		AuthMethods: []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none",
			"attest_jwt_client_auth", "attest_jwt_client_auth_dpop"},
		AttestationAlgorithms:      append(slices.Clone(asym), "HS256"),
		PoPAlgorithms:              asym,
		DPoPAlgorithms:             asym,
		TokenAuthSigningAlgorithms: []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
		GrantTypes:                 []string{"authorization_code", "client_credentials", "refresh_token"},
		Scopes:                     []string{"read", "write"},
		ChallengeEndpoint:          true,
		PAR:                        true,
	}
}

func marshal(t *testing.T, d metadata.Document) []byte {
	t.Helper()
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return append(b, '\n')
}

func members(t *testing.T, d metadata.Document) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(marshal(t, d), &m); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return m
}

// TestBuild_golden pins the whole document; regenerate with `go test ./metadata -update`.
func TestBuild_golden(t *testing.T) {
	got := marshal(t, metadata.Build(representativeInput()))
	golden := filepath.Join("testdata", "metadata.golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./metadata -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("metadata differs from %s (run go test ./metadata -update if intended)\ngot:\n%s", golden, got)
	}
}

// TestBuild_endpoints checks every endpoint is the issuer, verbatim, plus its fixed path.
func TestBuild_endpoints(t *testing.T) {
	tests := []struct {
		name   string
		issuer string
	}{
		{name: "https_host", issuer: "https://as.example.com"},
		{name: "loopback_with_port", issuer: "http://127.0.0.1:8080"},
		{name: "issuer_with_path", issuer: "https://example.com/tenant-a"},
		{name: "trailing_slash_kept_verbatim", issuer: "https://as.example.com/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := representativeInput()
			in.Issuer = tt.issuer
			m := members(t, metadata.Build(in))
			want := map[string]string{
				"issuer":                                tt.issuer,
				"authorization_endpoint":                tt.issuer + "/oauth2/authorize",
				"token_endpoint":                        tt.issuer + "/oauth2/token",
				"pushed_authorization_request_endpoint": tt.issuer + "/oauth2/par",
				"challenge_endpoint":                    tt.issuer + "/oauth2/challenge",
				"introspection_endpoint":                tt.issuer + "/oauth2/introspect",
				"revocation_endpoint":                   tt.issuer + "/oauth2/revoke",
				"jwks_uri":                              tt.issuer + "/jwks.json",
			}
			for member, url := range want {
				if m[member] != url {
					t.Errorf("%s = %v, want %s", member, m[member], url)
				}
			}
		})
	}
}

// TestBuild_conditional_members checks when each optional member appears.
func TestBuild_conditional_members(t *testing.T) {
	const (
		attAlgs   = "client_attestation_signing_alg_values_supported"
		popAlgs   = "client_attestation_pop_signing_alg_values_supported"
		dpopAlgs  = "dpop_signing_alg_values_supported"
		tokAlgs   = "token_endpoint_auth_signing_alg_values_supported"
		revAlgs   = "revocation_endpoint_auth_signing_alg_values_supported"
		intAlgs   = "introspection_endpoint_auth_signing_alg_values_supported"
		par       = "pushed_authorization_request_endpoint"
		reqPAR    = "require_pushed_authorization_requests"
		challenge = "challenge_endpoint"
		scopes    = "scopes_supported"
		grants    = "grant_types_supported"
	)
	tests := []struct {
		name    string
		mutate  func(in *metadata.Input)
		present []string
		absent  []string
	}{
		{name: "everything_enabled", mutate: func(in *metadata.Input) {},
			present: []string{attAlgs, popAlgs, dpopAlgs, tokAlgs, revAlgs, intAlgs, par, challenge, scopes, grants},
			absent:  []string{reqPAR}},
		{name: "only_combined_mode_has_no_pop_algs", mutate: func(in *metadata.Input) {
			in.AuthMethods = []string{"attest_jwt_client_auth_dpop"}
		}, present: []string{attAlgs, dpopAlgs}, absent: []string{popAlgs, tokAlgs}},
		{name: "only_normal_mode", mutate: func(in *metadata.Input) {
			in.AuthMethods = []string{"attest_jwt_client_auth"}
		}, present: []string{attAlgs, popAlgs, dpopAlgs}, absent: []string{tokAlgs, revAlgs, intAlgs}},
		{name: "no_attestation_method", mutate: func(in *metadata.Input) {
			in.AuthMethods = []string{"client_secret_basic", "none"}
		}, present: []string{dpopAlgs}, absent: []string{attAlgs, popAlgs, tokAlgs}},
		{name: "nil_algorithm_lists_omitted", mutate: func(in *metadata.Input) {
			in.AttestationAlgorithms, in.PoPAlgorithms, in.DPoPAlgorithms, in.TokenAuthSigningAlgorithms = nil, nil, nil, nil
		}, absent: []string{attAlgs, popAlgs, dpopAlgs, tokAlgs, revAlgs, intAlgs}},
		{name: "empty_algorithm_lists_omitted", mutate: func(in *metadata.Input) {
			in.AttestationAlgorithms, in.PoPAlgorithms, in.DPoPAlgorithms = []string{}, []string{}, []string{}
		}, absent: []string{attAlgs, popAlgs, dpopAlgs}},
		{name: "client_secret_jwt_needs_signing_algs", mutate: func(in *metadata.Input) {
			in.AuthMethods = []string{"client_secret_jwt"}
		}, present: []string{tokAlgs, revAlgs, intAlgs}},
		{name: "par_disabled", mutate: func(in *metadata.Input) { in.PAR, in.RequirePAR = false, true },
			absent: []string{par, reqPAR}},
		{name: "par_required", mutate: func(in *metadata.Input) { in.RequirePAR = true },
			present: []string{par, reqPAR}},
		{name: "no_challenge_endpoint", mutate: func(in *metadata.Input) { in.ChallengeEndpoint = false },
			absent: []string{challenge}},
		{name: "no_scopes_or_grants", mutate: func(in *metadata.Input) { in.Scopes, in.GrantTypes = nil, nil },
			absent: []string{scopes, grants}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := representativeInput()
			tt.mutate(&in)
			m := members(t, metadata.Build(in))
			for _, k := range tt.present {
				if _, ok := m[k]; !ok {
					t.Errorf("%s missing", k)
				}
			}
			for _, k := range tt.absent {
				if v, ok := m[k]; ok {
					t.Errorf("%s = %v, want it omitted", k, v)
				}
			}
			for _, k := range []string{"issuer", "token_endpoint", "jwks_uri", "response_types_supported", "code_challenge_methods_supported"} {
				if _, ok := m[k]; !ok {
					t.Errorf("required member %s missing", k)
				}
			}
		})
	}
}

// TestBuild_lists_follow_input checks the lists are published exactly as given, in order
// (profile §3: metadata publishes exactly the allow-lists the verifier uses).
func TestBuild_lists_follow_input(t *testing.T) {
	in := representativeInput()
	d := metadata.Build(in)
	tests := []struct {
		name      string
		got, want []string
	}{
		{name: "token_auth_methods", got: d.TokenEndpointAuthMethodsSupported, want: in.AuthMethods},
		{name: "revocation_auth_methods", got: d.RevocationEndpointAuthMethodsSupported, want: in.AuthMethods},
		// Public clients ("none") may revoke (RFC 7009 §2.1) but not introspect (RFC 7662 §2.1).
		{name: "introspection_auth_methods", got: d.IntrospectionEndpointAuthMethodsSupported,
			want: slices.DeleteFunc(slices.Clone(in.AuthMethods), func(m string) bool { return m == "none" })},
		{name: "attestation_algs", got: d.ClientAttestationSigningAlgValuesSupported, want: in.AttestationAlgorithms},
		{name: "pop_algs", got: d.ClientAttestationPoPSigningAlgValuesSupported, want: in.PoPAlgorithms},
		{name: "dpop_algs", got: d.DPoPSigningAlgValuesSupported, want: in.DPoPAlgorithms},
		{name: "token_signing_algs", got: d.TokenEndpointAuthSigningAlgValuesSupported, want: in.TokenAuthSigningAlgorithms},
		{name: "grant_types", got: d.GrantTypesSupported, want: in.GrantTypes},
		{name: "scopes", got: d.ScopesSupported, want: in.Scopes},
		{name: "response_types", got: d.ResponseTypesSupported, want: []string{"code"}},
		{name: "response_modes", got: d.ResponseModesSupported, want: []string{"query"}},
		{name: "code_challenge_methods", got: d.CodeChallengeMethodsSupported, want: []string{"S256"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !slices.Equal(tt.got, tt.want) {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

// TestBuild_does_not_alias_input checks that changing the input afterwards leaves the document alone.
func TestBuild_does_not_alias_input(t *testing.T) {
	in := representativeInput()
	d := metadata.Build(in)
	in.AuthMethods[0] = "changed"
	in.DPoPAlgorithms[0] = "changed"
	in.Scopes[0] = "changed"
	if d.TokenEndpointAuthMethodsSupported[0] == "changed" || d.DPoPSigningAlgValuesSupported[0] == "changed" || d.ScopesSupported[0] == "changed" {
		t.Fatalf("Document aliases Input")
	}
}
