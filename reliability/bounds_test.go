package reliability

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/clientauth"
	"github.com/authz/authz/dpop"
)

// maxHeaderToken is profile §3: each JWT header value is at most 16 KiB before parsing.
const maxHeaderToken = 16 << 10

// paddedAttestation signs an attestation for g whose compact form is exactly size bytes long,
// padding with a private header member and a private claim (base64url cannot hit every length
// with one of them alone).
func paddedAttestation(t *testing.T, env *testEnv, g *Agent, size int) string {
	t.Helper()
	sign := func(hpad, ppad int) string {
		now := time.Now()
		tok, err := Sign(env.Attester.Key, clientauth.TypAttestation, map[jose.HeaderKey]any{"kid": env.Attester.KID, "pad": strings.Repeat("h", hpad)}, map[string]any{
			"sub": g.ClientID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
			"cnf": map[string]any{"jwk": jose.JSONWebKey{Key: g.Instance.Public()}},
			"pad": strings.Repeat("p", ppad),
		})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for hpad := range 3 {
		// Lengths grow with ppad; walk up from a safe underestimate.
		for ppad := max(0, (size-1024)*3/4); ; ppad++ {
			n := len(sign(hpad, ppad))
			if n == size {
				return sign(hpad, ppad)
			}
			if n > size {
				break
			}
		}
	}
	t.Fatalf("could not pad an attestation to %d bytes", size)
	return ""
}

// TestHostileInput_Bounds is issue 7 item 1 over HTTP: attestation headers up to 16 KiB are
// normal, larger ones (and larger PoP or DPoP headers) are 400 invalid_request, and oversized
// header blocks, bodies and form-field floods never produce a 5xx.
func TestHostileInput_Bounds(t *testing.T) {
	env := newTestServer(t, true, nil)
	g := env.agent(agentID)
	big := strings.Repeat("A", maxHeaderToken+1)

	tests := []struct {
		name       string
		headers    func(t *testing.T) map[string]string
		body       func() string
		wantStatus int
		wantError  string
	}{
		{"attestation_exactly_16k", func(t *testing.T) map[string]string {
			h := env.headers(g, "")
			h[clientauth.HeaderClientAttestation] = paddedAttestation(t, env, g, maxHeaderToken)
			return h
		}, nil, 200, ""},
		{"attestation_over_16k", func(t *testing.T) map[string]string {
			h := env.headers(g, "")
			h[clientauth.HeaderClientAttestation] = paddedAttestation(t, env, g, maxHeaderToken+1)
			return h
		}, nil, 400, "invalid_request"},
		{"attestation_junk_over_16k", func(t *testing.T) map[string]string {
			h := env.headers(g, "")
			h[clientauth.HeaderClientAttestation] = big
			return h
		}, nil, 400, "invalid_request"},
		{"pop_over_16k", func(t *testing.T) map[string]string {
			h := env.headers(g, "")
			h[clientauth.HeaderClientAttestationPoP] = big
			return h
		}, nil, 400, "invalid_request"},
		{"dpop_over_16k", func(t *testing.T) map[string]string {
			h := env.headers(g, "")
			h[dpop.Header] = big
			return h
		}, nil, 400, "invalid_request"},
		{"header_block_over_1m", func(t *testing.T) map[string]string {
			h := env.headers(g, "")
			for i := range 70 {
				h["X-Filler-"+strconv.Itoa(i)] = strings.Repeat("f", maxHeaderToken)
			}
			return h
		}, nil, http.StatusRequestHeaderFieldsTooLarge, ""},
		{"body_over_1m", func(t *testing.T) map[string]string { return env.headers(g, "") },
			func() string { return ccForm.Encode() + "&pad=" + strings.Repeat("x", 1<<20) }, http.StatusRequestEntityTooLarge, "invalid_request"},
		{"ten_thousand_form_fields", func(t *testing.T) map[string]string { return env.headers(g, "") },
			func() string {
				f := url.Values{}
				for i := range 10000 {
					f.Set("f"+strconv.Itoa(i), "v")
				}
				return ccForm.Encode() + "&" + f.Encode()
			}, 0, ""},
		{"repeated_grant_type", func(t *testing.T) map[string]string { return env.headers(g, "") },
			func() string { return ccForm.Encode() + strings.Repeat("&grant_type=client_credentials", 1000) }, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := ccForm.Encode()
			if tt.body != nil {
				body = tt.body()
			}
			resp, b := env.send(http.MethodPost, "/oauth2/token", body, tt.headers(t))
			if resp.StatusCode >= 500 {
				t.Fatalf("%d: %s", resp.StatusCode, b)
			}
			if tt.wantStatus == 0 {
				return
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, b)
			}
			if tt.wantError != "" && !strings.Contains(b, `"error":"`+tt.wantError+`"`) {
				t.Fatalf("body %s, want error %q", b, tt.wantError)
			}
		})
	}
}
