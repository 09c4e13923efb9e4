package attestclient

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
)

// Wire names (ABCA-09 §4, §5, §6, §13; RFC 9449).
const (
	HeaderClientAttestation          = "OAuth-Client-Attestation"
	HeaderClientAttestationPoP       = "OAuth-Client-Attestation-PoP"
	HeaderClientAttestationChallenge = "OAuth-Client-Attestation-Challenge"
	HeaderDPoP                       = "DPoP"
	HeaderDPoPNonce                  = "DPoP-Nonce"
	AuthMethodAttestJWT              = "attest_jwt_client_auth"
	AuthMethodAttestJWTDPoP          = "attest_jwt_client_auth_dpop"
	typPoP                           = "oauth-client-attestation-pop+jwt"
	typDPoP                          = "dpop+jwt"
)

// AttestationSource returns a Client Attestation JWT for clientID that binds instanceKey (the
// public Client Instance Key) — typically by asking the vendor's attester backend.
type AttestationSource func(ctx context.Context, clientID string, instanceKey jose.JSONWebKey) (string, error)

// Config configures a Client.
type Config struct {
	Issuer   string   // the AS issuer; metadata is read from issuer + /.well-known/oauth-authorization-server
	ClientID string   // the OAuth client_id (the attestation's sub)
	Scopes   []string // requested scopes
	// Key is the Client Instance Key. nil generates a fresh ES256 (P-256) key.
	Key crypto.Signer
	// Attestation obtains the Client Attestation JWT.
	Attestation AttestationSource
	// CombinedMode authenticates with attest_jwt_client_auth_dpop (one DPoP proof is both the PoP
	// and the token-binding proof, ABCA-09 §5.2); otherwise attest_jwt_client_auth.
	CombinedMode bool
	// DPoPBound asks for a DPoP-bound access token in normal mode (the instance key signs the
	// proof); combined mode is always DPoP-bound.
	DPoPBound bool
	// HTTPClient is used for every request (default: 10s timeout).
	HTTPClient *http.Client
	// Explain, when set, receives a readable line for each step (for `authz token --explain`).
	Explain func(step string, detail any)
}

// Metadata is the part of the RFC 8414 document the client uses.
type Metadata struct {
	Issuer                       string   `json:"issuer"`
	TokenEndpoint                string   `json:"token_endpoint"`
	ChallengeEndpoint            string   `json:"challenge_endpoint"`
	AuthMethods                  []string `json:"token_endpoint_auth_methods_supported"`
	AttestationAlgorithms        []string `json:"client_attestation_signing_alg_values_supported"`
	PoPAlgorithms                []string `json:"client_attestation_pop_signing_alg_values_supported"`
	DPoPAlgorithms               []string `json:"dpop_signing_alg_values_supported"`
	PushedAuthorizationEndpoint  string   `json:"pushed_authorization_request_endpoint"`
	IntrospectionEndpoint        string   `json:"introspection_endpoint"`
	AuthorizationEndpoint        string   `json:"authorization_endpoint"`
	TokenEndpointAuthSigningAlgs []string `json:"token_endpoint_auth_signing_alg_values_supported"`
}

// Client obtains tokens with attestation. It is safe for concurrent use.
type Client struct {
	cfg  Config
	http *http.Client
	md   Metadata
	key  crypto.Signer
	alg  jose.SignatureAlgorithm
	pub  jose.JSONWebKey

	mu          sync.Mutex
	attMu       sync.Mutex // one attestation fetch at a time: concurrent callers share its result
	attestation string
	attExp      time.Time
	challenge   string // the newest challenge the AS gave (ABCA-09 §6.2: use the newest)
	dpopNonce   string
}

// Errors.
var (
	ErrUnsupported = errors.New("attestclient: the authorization server does not support this")
	ErrToken       = errors.New("attestclient: token request failed")
)

// TokenError is an RFC 6749 §5.2 error response.
type TokenError struct {
	Status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *TokenError) Error() string {
	return fmt.Sprintf("attestclient: token endpoint answered %d %s: %s", e.Status, e.Code, e.Description)
}

func (e *TokenError) Unwrap() error { return ErrToken }

// New discovers the AS and checks that it supports what cfg asks for.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.Attestation == nil {
		return nil, errors.New("attestclient: Issuer, ClientID and Attestation are required")
	}
	c := &Client{cfg: cfg, http: cfg.HTTPClient, key: cfg.Key}
	if c.http == nil {
		c.http = &http.Client{Timeout: 10 * time.Second}
	}
	if c.key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("attestclient: generate instance key: %w", err)
		}
		c.key = k
	}
	alg, err := algorithmFor(c.key)
	if err != nil {
		return nil, err
	}
	c.alg = alg
	c.pub = jose.JSONWebKey{Key: c.key.Public(), Algorithm: string(alg), Use: "sig"}
	if err := c.discover(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// algorithmFor picks the JWS algorithm of an instance key (asymmetric only, ABCA-09 §5.1).
func algorithmFor(k crypto.Signer) (jose.SignatureAlgorithm, error) {
	switch pub := k.Public().(type) {
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		case elliptic.P521():
			return jose.ES512, nil
		}
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	case *rsa.PublicKey:
		return jose.PS256, nil
	}
	return "", fmt.Errorf("attestclient: unsupported instance key type %T", k.Public())
}

// InstanceKey returns the public Client Instance Key.
func (c *Client) InstanceKey() jose.JSONWebKey { return c.pub }

// Thumbprint is the RFC 7638 SHA-256 thumbprint of the instance key (what the AS calls instance_jkt).
func (c *Client) Thumbprint() string {
	tp, _ := c.pub.Thumbprint(crypto.SHA256)
	return base64.RawURLEncoding.EncodeToString(tp)
}

// Metadata returns the discovered AS metadata.
func (c *Client) Metadata() Metadata { return c.md }

func (c *Client) explain(step string, detail any) {
	if c.cfg.Explain != nil {
		c.cfg.Explain(step, detail)
	}
}

// discover reads RFC 8414 metadata and refuses clearly when the AS lacks the method or algorithm.
func (c *Client) discover(ctx context.Context) error {
	u := strings.TrimSuffix(c.cfg.Issuer, "/") + "/.well-known/oauth-authorization-server"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("attestclient: discovery: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("attestclient: discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("attestclient: discovery: %s answered %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&c.md); err != nil {
		return fmt.Errorf("attestclient: discovery: %w", err)
	}
	// RFC 8414 §3.3: the issuer in the document must be the one we asked for.
	if c.md.Issuer != c.cfg.Issuer {
		return fmt.Errorf("attestclient: discovery: metadata issuer %q is not %q (RFC 8414 §3.3)", c.md.Issuer, c.cfg.Issuer)
	}
	c.explain("discovery", map[string]any{"token_endpoint": c.md.TokenEndpoint, "challenge_endpoint": c.md.ChallengeEndpoint, "auth_methods": c.md.AuthMethods})
	method := c.method()
	if !contains(c.md.AuthMethods, method) {
		return fmt.Errorf("%w: %s is not in token_endpoint_auth_methods_supported %v", ErrUnsupported, method, c.md.AuthMethods)
	}
	// The instance key signs the PoP (normal mode) and the DPoP proofs (combined mode, or
	// DPoPBound): each list it signs for must accept its algorithm.
	lists := [][]string{c.md.PoPAlgorithms}
	switch {
	case c.cfg.CombinedMode:
		lists = [][]string{c.md.DPoPAlgorithms}
	case c.cfg.DPoPBound:
		lists = append(lists, c.md.DPoPAlgorithms)
	}
	for _, algs := range lists {
		if !contains(algs, string(c.alg)) {
			return fmt.Errorf("%w: the instance key's algorithm %s is not accepted (%v)", ErrUnsupported, c.alg, algs)
		}
	}
	return nil
}

func (c *Client) method() string {
	if c.cfg.CombinedMode {
		return AuthMethodAttestJWTDPoP
	}
	return AuthMethodAttestJWT
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// currentAttestation returns a cached attestation, fetching a new one when none is held, it
// expires within a minute, or refresh is set (use_fresh_attestation).
func (c *Client) currentAttestation(ctx context.Context, refresh bool) (string, error) {
	c.mu.Lock()
	att, exp := c.attestation, c.attExp
	c.mu.Unlock()
	if att != "" && !refresh && time.Until(exp) > time.Minute {
		return att, nil
	}
	c.attMu.Lock()
	defer c.attMu.Unlock()
	c.mu.Lock()
	fetched := c.attestation != att // another caller fetched one while this one waited
	att, exp = c.attestation, c.attExp
	c.mu.Unlock()
	if fetched && att != "" && time.Until(exp) > time.Minute {
		return att, nil
	}
	att, err := c.cfg.Attestation(ctx, c.cfg.ClientID, c.pub.Public())
	if err != nil {
		return "", fmt.Errorf("attestclient: obtain attestation: %w", err)
	}
	exp, hasExp, alg, err := inspectAttestation(att)
	if err != nil {
		return "", err
	}
	if len(c.md.AttestationAlgorithms) > 0 && !contains(c.md.AttestationAlgorithms, alg) {
		return "", fmt.Errorf("%w: attestation algorithm %s is not in client_attestation_signing_alg_values_supported %v (ABCA-09 §8)", ErrUnsupported, alg, c.md.AttestationAlgorithms)
	}
	c.mu.Lock()
	c.attestation, c.attExp = att, exp
	c.mu.Unlock()
	shown := map[string]any{"alg": alg, "exp": exp.UTC().Format(time.RFC3339)}
	if !hasExp {
		shown["exp"] = "none (reused until " + exp.UTC().Format(time.RFC3339) + ")"
	}
	c.explain("attestation", shown)
	return att, nil
}

// inspectAttestation reads exp and alg of our own attestation (not a verification: the AS does that).
// hasExp is false when the attestation has no exp; exp is then a reuse horizon of an hour.
func inspectAttestation(att string) (exp time.Time, hasExp bool, alg string, err error) {
	tok, err := jwt.ParseSigned(att, []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.PS384, jose.PS512, jose.RS256, jose.EdDSA, jose.HS256, jose.HS384, jose.HS512})
	if err != nil {
		return time.Time{}, false, "", fmt.Errorf("attestclient: the attestation is not a JWT: %w", err)
	}
	var claims jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil {
		return time.Time{}, false, "", fmt.Errorf("attestclient: attestation claims: %w", err)
	}
	if claims.Expiry == nil {
		return time.Now().Add(time.Hour), false, tok.Headers[0].Algorithm, nil
	}
	return claims.Expiry.Time(), true, tok.Headers[0].Algorithm, nil
}

// fetchChallenge asks the challenge endpoint (ABCA-09 §6.1) when the AS has one and we hold none.
func (c *Client) fetchChallenge(ctx context.Context) error {
	if c.md.ChallengeEndpoint == "" {
		return nil
	}
	c.mu.Lock()
	have := c.challenge != ""
	c.mu.Unlock()
	if have {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.md.ChallengeEndpoint, nil)
	if err != nil {
		return fmt.Errorf("attestclient: challenge: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("attestclient: challenge: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Challenge string `json:"attestation_challenge"`
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("attestclient: challenge endpoint answered %d", resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil {
		return fmt.Errorf("attestclient: challenge: %w", err)
	}
	c.mu.Lock()
	c.challenge = body.Challenge
	c.mu.Unlock()
	c.explain("challenge", body.Challenge)
	return nil
}

// remember keeps the newest challenge and DPoP nonce of any response (ABCA-09 §6.2, RFC 9449 §8).
func (c *Client) remember(h http.Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := h.Get(HeaderClientAttestationChallenge); v != "" {
		c.challenge = v
	}
	if v := h.Get(HeaderDPoPNonce); v != "" {
		c.dpopNonce = v
	}
}

func (c *Client) signer(typ string, withJWK bool) (jose.Signer, error) {
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
	if withJWK {
		opts = opts.WithHeader("jwk", c.pub.Public())
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: c.alg, Key: c.key}, opts)
	if err != nil {
		return nil, fmt.Errorf("attestclient: signer: %w", err)
	}
	return s, nil
}

func newJTI() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// buildPoP signs a Client Attestation PoP JWT (ABCA-09 §5.1): aud is the issuer exactly, a new
// jti, iat now, and the newest challenge.
func (c *Client) buildPoP(challenge string) (string, error) {
	s, err := c.signer(typPoP, false)
	if err != nil {
		return "", err
	}
	claims := map[string]any{"aud": c.cfg.Issuer, "jti": newJTI(), "iat": time.Now().Unix()}
	if challenge != "" {
		claims["challenge"] = challenge
	}
	c.explain("pop", claims)
	return jwt.Signed(s).Claims(claims).Serialize()
}

// BuildDPoP signs an RFC 9449 §4.2 proof for method and url (query and fragment dropped); nonce
// and accessToken (ath) are optional.
func (c *Client) BuildDPoP(method, rawURL, nonce, accessToken string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("attestclient: dpop htu: %w", err)
	}
	// RFC 9449 §4.2: htu is the target URI without query and fragment (and never user info).
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment, u.User = "", false, "", "", nil
	if method == "" {
		method = http.MethodGet // net/http sends an empty method as GET
	}
	s, err := c.signer(typDPoP, true)
	if err != nil {
		return "", err
	}
	claims := map[string]any{"jti": newJTI(), "htm": method, "htu": u.String(), "iat": time.Now().Unix()}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	if accessToken != "" {
		h := sha256.Sum256([]byte(accessToken))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(h[:])
	}
	c.explain("dpop", claims)
	return jwt.Signed(s).Claims(claims).Serialize()
}

// Token runs the client_credentials grant with attestation (ABCA-09 §7.5), retrying at most once
// on use_attestation_challenge, use_dpop_nonce or use_fresh_attestation.
func (c *Client) Token(ctx context.Context) (*oauth2.Token, error) {
	return c.tokenRequest(ctx, url.Values{"grant_type": {"client_credentials"}})
}

// Exchange runs any token request (authorization_code, refresh_token) with attestation.
func (c *Client) Exchange(ctx context.Context, form url.Values) (*oauth2.Token, error) {
	return c.tokenRequest(ctx, form)
}

func (c *Client) tokenRequest(ctx context.Context, form url.Values) (*oauth2.Token, error) {
	freshAttestation := false
	for attempt := 0; attempt < 2; attempt++ {
		tok, err := c.tryToken(ctx, form, freshAttestation)
		var te *TokenError
		if err == nil || !errors.As(err, &te) || attempt == 1 {
			return tok, err
		}
		switch te.Code {
		case "use_attestation_challenge", "use_dpop_nonce":
			c.explain("retry", te.Code+": using the challenge from the response")
		case "use_fresh_attestation":
			c.explain("retry", te.Code+": fetching a new attestation")
			freshAttestation = true
		default:
			return nil, err
		}
	}
	return nil, errors.New("attestclient: unreachable")
}

func (c *Client) tryToken(ctx context.Context, form url.Values, freshAttestation bool) (*oauth2.Token, error) {
	att, err := c.currentAttestation(ctx, freshAttestation)
	if err != nil {
		return nil, err
	}
	if err := c.fetchChallenge(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	challenge := c.challenge
	c.mu.Unlock()

	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	f.Set("client_id", c.cfg.ClientID)
	if len(c.cfg.Scopes) > 0 && f.Get("grant_type") == "client_credentials" {
		f.Set("scope", strings.Join(c.cfg.Scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.md.TokenEndpoint, strings.NewReader(f.Encode()))
	if err != nil {
		return nil, fmt.Errorf("attestclient: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set(HeaderClientAttestation, att)
	if c.cfg.CombinedMode {
		// ABCA-09 §7.3: the challenge travels in the DPoP nonce. A server that issues DPoP-Nonce
		// (RFC 9449 §8) gets its newest nonce; authz sends the same value in both headers.
		nonce := challenge
		c.mu.Lock()
		if c.dpopNonce != "" {
			nonce = c.dpopNonce
		}
		c.mu.Unlock()
		proof, err := c.BuildDPoP(http.MethodPost, c.md.TokenEndpoint, nonce, "")
		if err != nil {
			return nil, err
		}
		req.Header.Set(HeaderDPoP, proof)
	} else {
		pop, err := c.buildPoP(challenge)
		if err != nil {
			return nil, err
		}
		req.Header.Set(HeaderClientAttestationPoP, pop)
		if c.cfg.DPoPBound {
			c.mu.Lock()
			nonce := c.dpopNonce
			c.mu.Unlock()
			proof, err := c.BuildDPoP(http.MethodPost, c.md.TokenEndpoint, nonce, "")
			if err != nil {
				return nil, err
			}
			req.Header.Set(HeaderDPoP, proof)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("attestclient: token request: %w", err)
	}
	defer resp.Body.Close()
	// A challenge is single-purpose: forget the one just used unless the response names another.
	c.mu.Lock()
	if c.challenge == challenge {
		c.challenge = ""
	}
	if c.cfg.CombinedMode {
		c.dpopNonce = ""
	}
	c.mu.Unlock()
	c.remember(resp.Header)
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("attestclient: token response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		te := &TokenError{Status: resp.StatusCode}
		_ = json.Unmarshal(body, te)
		if te.Code == "" {
			te.Code = "http_" + fmt.Sprint(resp.StatusCode)
		}
		c.explain("response", map[string]any{"status": resp.StatusCode, "error": te.Code, "error_description": te.Description})
		return nil, te
	}
	var tr struct {
		AccessToken  string `json:"access_token"`
		TokenType    string `json:"token_type"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int64  `json:"expires_in"`
		Scope        string `json:"scope"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("attestclient: token response is not JSON: %w", err)
	}
	if tr.AccessToken == "" {
		return nil, errors.New("attestclient: token response has no access_token")
	}
	c.explain("response", map[string]any{"status": resp.StatusCode, "token_type": tr.TokenType, "expires_in": tr.ExpiresIn, "scope": tr.Scope})
	tok := &oauth2.Token{AccessToken: tr.AccessToken, TokenType: tr.TokenType, RefreshToken: tr.RefreshToken}
	if tr.ExpiresIn > 0 {
		tok.Expiry = time.Now().Add(time.Duration(tr.ExpiresIn) * time.Second)
	}
	var raw map[string]any
	_ = json.Unmarshal(body, &raw)
	return tok.WithExtra(raw), nil
}

// TokenSource returns a cached, concurrency-safe oauth2.TokenSource for client_credentials that
// fetches a new token shortly before expiry: existing Go code uses it unchanged.
func (c *Client) TokenSource(ctx context.Context) oauth2.TokenSource {
	return oauth2.ReuseTokenSourceWithExpiry(nil, tokenSourceFunc(func() (*oauth2.Token, error) { return c.Token(ctx) }), 30*time.Second)
}

type tokenSourceFunc func() (*oauth2.Token, error)

func (f tokenSourceFunc) Token() (*oauth2.Token, error) { return f() }

// Transport returns an http.RoundTripper that authorizes resource requests with tokens from ts:
// `Authorization: DPoP <token>` plus a fresh proof with ath for DPoP tokens (RFC 9449 §7.1),
// `Bearer` otherwise. It retries once with the server's DPoP-Nonce when asked (RFC 9449 §9).
func (c *Client) Transport(ts oauth2.TokenSource, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{c: c, ts: ts, base: base}
}

type transport struct {
	c    *Client
	ts   oauth2.TokenSource
	base http.RoundTripper
	mu   sync.Mutex
	// nonces per origin (RFC 9449 §8: a resource server may demand its own nonce)
	nonces map[string]string
}

// RoundTrip sends req with the token (and a DPoP proof for a DPoP-bound token), retrying once
// with the server's nonce when it answers 401 with error="use_dpop_nonce" (RFC 9449 §9) and the
// body can be sent again. req is not changed; its body is closed on every path (the
// http.RoundTripper contract).
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	fail := func(err error) (*http.Response, error) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	tok, err := t.ts.Token()
	if err != nil {
		return fail(err)
	}
	for attempt := 0; ; attempt++ {
		r := req.Clone(req.Context())
		if req.Body != nil && req.GetBody != nil && attempt > 0 {
			if r.Body, err = req.GetBody(); err != nil {
				return fail(err)
			}
		}
		if strings.EqualFold(tok.TokenType, "DPoP") {
			t.mu.Lock()
			nonce := t.nonces[req.URL.Host]
			t.mu.Unlock()
			proof, err := t.c.BuildDPoP(req.Method, req.URL.String(), nonce, tok.AccessToken)
			if err != nil {
				return fail(err)
			}
			r.Header.Set("Authorization", "DPoP "+tok.AccessToken)
			r.Header.Set(HeaderDPoP, proof)
		} else {
			r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		}
		resp, err := t.base.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		nonce := resp.Header.Get(HeaderDPoPNonce)
		if nonce != "" {
			t.remember(req.URL.Host, nonce) // RFC 9449 §8.2: a server may send a new one on any answer
		}
		if nonce == "" || attempt > 0 || resp.StatusCode != http.StatusUnauthorized || !asksForNonce(resp.Header) ||
			(req.Body != nil && req.GetBody == nil) {
			return resp, nil
		}
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10) // let the connection be reused
		resp.Body.Close()
	}
}

// asksForNonce reports whether a 401's challenges include a DPoP challenge with
// error="use_dpop_nonce" (RFC 9449 §9); any other 401 (an expired or revoked token) is final.
func asksForNonce(h http.Header) bool {
	for _, v := range h.Values("WWW-Authenticate") {
		scheme, params, _ := strings.Cut(strings.TrimSpace(v), " ")
		if strings.EqualFold(scheme, "DPoP") && strings.Contains(params, `error="use_dpop_nonce"`) {
			return true
		}
	}
	return false
}

func (t *transport) remember(host, nonce string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nonces == nil {
		t.nonces = map[string]string{}
	}
	t.nonces[host] = nonce
}
