package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Wire values of ABCA-09.
const (
	headerAttestation    = "OAuth-Client-Attestation"           // §4
	headerPoP            = "OAuth-Client-Attestation-PoP"       // §5.1
	headerChallenge      = "OAuth-Client-Attestation-Challenge" // §6.2
	typPoP               = "oauth-client-attestation-pop+jwt"   // §5.1
	authMethod           = "attest_jwt_client_auth"             // §13.4
	errUseChallenge      = "use_attestation_challenge"          // §7.4
	wellKnownMetadata    = "/.well-known/oauth-authorization-server"
	maxResponseBodyBytes = 1 << 20
)

type config struct {
	issuer   string
	attester string
	clientID string
	scope    string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.issuer, "issuer", "http://127.0.0.1:8080", "issuer identifier of the authorization server (the PoP aud)")
	flag.StringVar(&cfg.attester, "attester", "http://127.0.0.1:8081", "base URL of the client attester (POST /attest)")
	flag.StringVar(&cfg.clientID, "client-id", "agent", "client_id registered with token_endpoint_auth_method attest_jwt_client_auth")
	flag.StringVar(&cfg.scope, "scope", "read", "space-separated scopes to request")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "attested-token: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, newHTTPClient(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "attested-token:", err)
		os.Exit(1)
	}
}

// newHTTPClient has a timeout and does not follow redirects: credentials are sent only to the
// URLs the metadata names.
func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// run performs the six steps and prints each one to out.
func run(ctx context.Context, cfg config, hc *http.Client, out io.Writer) error {
	c := &client{cfg: cfg, hc: hc, out: out}

	// 1. The Client Instance Key. A real client keeps it (ideally in hardware) and uses a
	// different key per authorization server (ABCA-09 §10.1).
	c.step(1, "Generate a Client Instance Key (ES256)")
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate instance key: %w", err)
	}
	public := jose.JSONWebKey{Key: priv.Public(), Algorithm: string(jose.ES256), Use: "sig"}
	jkt, err := thumbprint(public)
	if err != nil {
		return err
	}
	c.printJSON("public JWK", public)
	c.printf("thumbprint (RFC 7638): %s\n", jkt)

	// 2. The Client Attestation JWT.
	c.step(2, "Ask the attester to vouch for this key")
	attestation, err := c.attest(ctx, public)
	if err != nil {
		return err
	}
	c.printJWT("Client Attestation JWT", attestation)

	// 3. Authorization server metadata.
	c.step(3, "Read the authorization server metadata")
	meta, err := c.metadata(ctx)
	if err != nil {
		return err
	}
	c.printf("token_endpoint:     %s\n", meta.TokenEndpoint)
	c.printf("challenge_endpoint: %s\n", orNone(meta.ChallengeEndpoint))
	if len(meta.AuthMethods) > 0 && !slices.Contains(meta.AuthMethods, authMethod) {
		c.printf("warning: the server does not advertise %s\n", authMethod)
	}
	if algs := meta.PoPAlgs; len(algs) > 0 && !slices.Contains(algs, string(jose.ES256)) {
		c.printf("warning: the server does not list ES256 for PoP JWTs (it lists %v)\n", algs)
	}

	// 4. A challenge, when the server offers an endpoint for them.
	c.step(4, "Fetch a challenge")
	challenge := ""
	if meta.ChallengeEndpoint == "" {
		c.printf("the server has no challenge_endpoint; the PoP relies on jti and iat alone\n")
	} else if challenge, err = c.challenge(ctx, meta.ChallengeEndpoint); err != nil {
		return err
	} else {
		c.printf("attestation_challenge: %s\n", challenge)
	}

	// 5 and 6. The PoP and the token request; one retry with the challenge the server sent.
	for attempt := 1; ; attempt++ {
		c.step(5, "Sign the Client Attestation PoP JWT with the instance key")
		pop, err := signPoP(priv, cfg.issuer, challenge, time.Now())
		if err != nil {
			return err
		}
		c.printJWT("Client Attestation PoP JWT", pop)

		c.step(6, "Request a token")
		status, header, body, err := c.token(ctx, meta.TokenEndpoint, attestation, pop)
		if err != nil {
			return err
		}
		c.printf("HTTP %d\n", status)
		if fresh := header.Get(headerChallenge); fresh != "" {
			c.printf("%s: %s\n", headerChallenge, fresh)
		}
		var resp map[string]any
		if err := json.Unmarshal(body, &resp); err != nil {
			return fmt.Errorf("token endpoint answered %d with a body that is not JSON: %.200q", status, body)
		}
		c.printJSON("token response", resp)

		if status == http.StatusOK {
			if at, _ := resp["access_token"].(string); strings.Count(at, ".") == 2 {
				c.printJWT("access token (decoded here without verification; a resource server verifies it with the issuer's jwks_uri)", at)
			}
			return nil
		}
		code, _ := resp["error"].(string)
		fresh := header.Get(headerChallenge)
		if status == http.StatusBadRequest && code == errUseChallenge && attempt == 1 && fresh != "" {
			c.printf("\nThe server wants a (fresh) challenge: retrying once with the value it sent.\n")
			challenge = fresh
			continue
		}
		desc, _ := resp["error_description"].(string)
		return fmt.Errorf("token request failed: %d %s: %s", status, code, desc)
	}
}

// client carries the settings and the output of one run.
type client struct {
	cfg config
	hc  *http.Client
	out io.Writer
}

// attest POSTs {"client_id", "jwk"} to the attester's /attest and returns client_attestation.
func (c *client) attest(ctx context.Context, public jose.JSONWebKey) (string, error) {
	body, err := json.Marshal(map[string]any{"client_id": c.cfg.clientID, "jwk": public})
	if err != nil {
		return "", fmt.Errorf("encode attest request: %w", err)
	}
	endpoint := strings.TrimSuffix(c.cfg.attester, "/") + "/attest"
	c.printf("POST %s\n", endpoint)
	var resp struct {
		Attestation string `json:"client_attestation"`
		Error       string `json:"error"`
	}
	status, _, err := c.doJSON(ctx, http.MethodPost, endpoint, "application/json", bytes.NewReader(body), &resp)
	if err != nil {
		return "", fmt.Errorf("attester: %w", err)
	}
	if status != http.StatusOK || resp.Attestation == "" {
		return "", fmt.Errorf("attester answered %d: %s", status, orNone(resp.Error))
	}
	return resp.Attestation, nil
}

// serverMetadata is the part of the RFC 8414 document this client reads.
type serverMetadata struct {
	Issuer            string   `json:"issuer"`
	TokenEndpoint     string   `json:"token_endpoint"`
	ChallengeEndpoint string   `json:"challenge_endpoint"`
	AuthMethods       []string `json:"token_endpoint_auth_methods_supported"`
	PoPAlgs           []string `json:"client_attestation_pop_signing_alg_values_supported"`
}

// metadata fetches the RFC 8414 §3 document and checks that its issuer is the one configured
// (RFC 8414 §3.3): the PoP aud must be that exact string (ABCA-09 §5.1).
func (c *client) metadata(ctx context.Context) (*serverMetadata, error) {
	u, err := url.Parse(c.cfg.issuer)
	if err != nil || u.Scheme == "" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("issuer %q is not an absolute URL without query or fragment", c.cfg.issuer)
	}
	// RFC 8414 §3.1: the well-known suffix goes between the host and any path of the issuer.
	u.Path = wellKnownMetadata + strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	c.printf("GET %s\n", u)
	var meta serverMetadata
	status, _, err := c.doJSON(ctx, http.MethodGet, u.String(), "", nil, &meta)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("metadata: HTTP %d", status)
	}
	if meta.Issuer != c.cfg.issuer {
		return nil, fmt.Errorf("metadata issuer %q differs from -issuer %q (RFC 8414 §3.3)", meta.Issuer, c.cfg.issuer)
	}
	if meta.TokenEndpoint == "" {
		return nil, errors.New("metadata has no token_endpoint")
	}
	return &meta, nil
}

// challenge POSTs to the challenge endpoint (ABCA-09 §6.1) and returns attestation_challenge.
func (c *client) challenge(ctx context.Context, endpoint string) (string, error) {
	c.printf("POST %s\n", endpoint)
	var resp struct {
		Challenge string `json:"attestation_challenge"`
	}
	status, _, err := c.doJSON(ctx, http.MethodPost, endpoint, "", nil, &resp)
	if err != nil {
		return "", fmt.Errorf("challenge endpoint: %w", err)
	}
	if status != http.StatusOK || resp.Challenge == "" {
		return "", fmt.Errorf("challenge endpoint answered %d without attestation_challenge", status)
	}
	return resp.Challenge, nil
}

// signPoP builds the Client Attestation PoP JWT of ABCA-09 §5.1: typ
// oauth-client-attestation-pop+jwt, alg ES256 (no kid: the verifier uses the attestation's
// cnf.jwk), claims aud = the issuer exactly, a random jti, iat, and challenge when one was given.
func signPoP(key *ecdsa.PrivateKey, issuer, challenge string, now time.Time) (string, error) {
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType(typPoP),
	)
	if err != nil {
		return "", fmt.Errorf("PoP signer: %w", err)
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("PoP jti: %w", err)
	}
	claims := struct {
		Aud       string `json:"aud"`
		JTI       string `json:"jti"`
		IAT       int64  `json:"iat"`
		Challenge string `json:"challenge,omitempty"`
	}{Aud: issuer, JTI: base64.RawURLEncoding.EncodeToString(jti), IAT: now.Unix(), Challenge: challenge}
	pop, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign PoP: %w", err)
	}
	return pop, nil
}

// token POSTs grant_type=client_credentials to the token endpoint, authenticating with the
// attestation and its PoP in the two headers (ABCA-09 §7.5).
func (c *client) token(ctx context.Context, endpoint, attestation, pop string) (int, http.Header, []byte, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if c.cfg.scope != "" {
		form.Set("scope", c.cfg.scope)
	}
	c.printf("POST %s\n  %s: %s…\n  %s: %s…\n  body: %s\n", endpoint,
		headerAttestation, prefix(attestation, 24), headerPoP, prefix(pop, 24), form.Encode())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set(headerAttestation, attestation)
	req.Header.Set(headerPoP, pop)
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("token request: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBodyBytes))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("token response: %w", err)
	}
	return resp.StatusCode, resp.Header, body, nil
}

// doJSON sends a request and decodes a JSON answer (of any status) into v.
func (c *client) doJSON(ctx context.Context, method, endpoint, contentType string, body io.Reader, v any) (int, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, endpoint, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBodyBytes)).Decode(v); err != nil {
		return resp.StatusCode, resp.Header, fmt.Errorf("HTTP %d with a body that is not JSON: %w", resp.StatusCode, err)
	}
	return resp.StatusCode, resp.Header, nil
}

// thumbprint is the RFC 7638 SHA-256 thumbprint, base64url: what authz records as instance_jkt.
func thumbprint(k jose.JSONWebKey) (string, error) {
	sum, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// Output helpers.

func (c *client) step(n int, title string) {
	c.printf("\n== %d. %s ==\n", n, title)
}

func (c *client) printf(format string, args ...any) {
	_, _ = fmt.Fprintf(c.out, format, args...)
}

func (c *client) printJSON(label string, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		c.printf("%s: (cannot print: %v)\n", label, err)
		return
	}
	c.printf("%s:\n%s\n", label, b)
}

// printJWT prints a compact JWS as its decoded header and payload (not verified).
func (c *client) printJWT(label, token string) {
	c.printf("%s (%d bytes):\n", label, len(token))
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		c.printf("  (not a compact JWS)\n")
		return
	}
	for i, name := range []string{"header", "claims"} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		var pretty bytes.Buffer
		if err != nil || json.Indent(&pretty, raw, "  ", "  ") != nil {
			c.printf("  %s: (not base64url JSON)\n", name)
			continue
		}
		c.printf("  %s: %s\n", name, pretty.String())
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
