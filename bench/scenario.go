package bench

import (
	"crypto/ecdsa"
	"encoding/base64"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/clientauth"
	"github.com/authz/authz/config"
	"github.com/authz/authz/reliability"
)

// The four client-authentication scenarios of `make bench` (issue 8), named after the client's
// token_endpoint_auth_method.
const (
	ScenarioAttest      = config.AuthMethodAttestJWT         // ABCA-09 §7.5, PoP JWT (normal mode)
	ScenarioAttestDPoP  = config.AuthMethodAttestJWTDPoP     // ABCA-09 §5.2, §7.3 (combined mode)
	ScenarioPrivateKey  = config.AuthMethodPrivateKeyJWT     // RFC 7523 §2.2 client assertion
	ScenarioSecretBasic = config.AuthMethodClientSecretBasic // RFC 6749 §2.3.1
)

// Scenarios lists every scenario in the order `make bench` runs them.
var Scenarios = []string{ScenarioAttest, ScenarioAttestDPoP, ScenarioPrivateKey, ScenarioSecretBasic}

// Client ids the generated configuration registers, one per scenario.
const (
	clientAttest      = "bench-agent"
	clientAttestDPoP  = "bench-agent-dpop"
	clientPrivateKey  = "bench-pkjwt"
	clientSecretBasic = "bench-svc"
	attesterID        = "bench-attester"
	attesterKID       = "bench-attester-1"
	clientKeyKID      = "bench-pkjwt-1"
)

// Lifetimes of the pre-generated credentials. The PoP, DPoP and assertion iat is the generation
// time; a run must start within the server's pop_max_age (60 s by default) of it, which
// Generate's callers guarantee by generating right before each run.
const (
	attestationTTL = time.Hour
	assertionTTL   = 5 * time.Minute
)

// Fixture holds the keys and secrets a run's server is configured with and its requests are
// made from.
type Fixture struct {
	Issuer       string
	AttesterKey  *ecdsa.PrivateKey
	ClientKey    *ecdsa.PrivateKey // private_key_jwt
	ClientSecret string            // client_secret_basic
}

// NewFixture generates the attester key, the private_key_jwt client key and the client secret.
func NewFixture(issuer string) (*Fixture, error) {
	att, err := reliability.NewKey()
	if err != nil {
		return nil, err
	}
	ck, err := reliability.NewKey()
	if err != nil {
		return nil, err
	}
	secret, err := reliability.RandomString()
	if err != nil {
		return nil, err
	}
	return &Fixture{Issuer: issuer, AttesterKey: att, ClientKey: ck, ClientSecret: secret}, nil
}

// TokenURL is the token endpoint under the issuer.
func (f *Fixture) TokenURL() string { return strings.TrimSuffix(f.Issuer, "/") + "/oauth2/token" }

// ClientID returns the client registered for scenario.
func ClientID(scenario string) string {
	switch scenario {
	case ScenarioAttest:
		return clientAttest
	case ScenarioAttestDPoP:
		return clientAttestDPoP
	case ScenarioPrivateKey:
		return clientPrivateKey
	case ScenarioSecretBasic:
		return clientSecretBasic
	}
	return ""
}

// ValidScenario reports whether name is one of Scenarios.
func ValidScenario(name string) bool { return ClientID(name) != "" }

// ServerOptions are the run-specific parts of a generated configuration.
type ServerOptions struct {
	Listen   string // host:port
	Driver   string // sqlite | postgres
	DSN      string
	LogLevel string // default warn
}

// ConfigYAML is the authz configuration of a bench server: the issuer, one attester, the four
// scenario clients, rate limits off (they would measure the limiter, not the server) and every
// attestation check at its default (profile §5). It is validated with config.Parse.
func (f *Fixture) ConfigYAML(o ServerOptions) ([]byte, error) {
	attJWKS, err := PublicJWKS(f.AttesterKey, attesterKID)
	if err != nil {
		return nil, err
	}
	clientJWKS, err := PublicJWKS(f.ClientKey, clientKeyKID)
	if err != nil {
		return nil, err
	}
	level := o.LogLevel
	if level == "" {
		level = "warn"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "issuer: %s\n", yamlString(f.Issuer))
	fmt.Fprintf(&b, "listen: %s\n", yamlString(o.Listen))
	fmt.Fprintf(&b, "database:\n  driver: %s\n  dsn: %s\n", yamlString(o.Driver), yamlString(o.DSN))
	fmt.Fprintf(&b, "log:\n  level: %s\n", level)
	b.WriteString("rate_limit:\n  per_address: 0\n  per_client: 0\n")
	fmt.Fprintf(&b, "attesters:\n  - id: %s\n    jwks: %s\n", attesterID, yamlString(attJWKS))
	b.WriteString("clients:\n")
	client := func(id, method string, extra ...string) {
		fmt.Fprintf(&b, "  - client_id: %s\n    token_endpoint_auth_method: %s\n    grant_types: [client_credentials]\n    scopes: [read]\n", id, method)
		for _, e := range extra {
			fmt.Fprintf(&b, "    %s\n", e)
		}
	}
	client(clientAttest, config.AuthMethodAttestJWT, "attesters: ["+attesterID+"]")
	client(clientAttestDPoP, config.AuthMethodAttestJWTDPoP, "attesters: ["+attesterID+"]")
	client(clientPrivateKey, config.AuthMethodPrivateKeyJWT, "token_endpoint_auth_signing_alg: ES256", "jwks: "+yamlString(clientJWKS))
	client(clientSecretBasic, config.AuthMethodClientSecretBasic, "client_secret: "+yamlString(f.ClientSecret))
	data := []byte(b.String())
	if _, err := config.Parse(data, nil); err != nil {
		return nil, fmt.Errorf("bench: generated configuration: %w", err)
	}
	return data, nil
}

// yamlString quotes s as a YAML single-quoted scalar.
func yamlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Request is one pre-serialised HTTP/1.1 request, in parts written with one writev; parts that
// every request of a client instance shares (the attestation header) are shared slices.
type Request [][]byte

// Len is the request's size in bytes.
func (r Request) Len() int {
	n := 0
	for _, p := range r {
		n += len(p)
	}
	return n
}

// Pool hands out pre-generated requests, each once; a repeating pool hands out its one request
// forever (a request without per-request proof, client_secret_basic).
type Pool struct {
	reqs   []Request
	repeat bool
	next   atomic.Int64
}

// Len is the number of distinct requests.
func (p *Pool) Len() int { return len(p.reqs) }

// Take returns the next request, or false when every request was used.
func (p *Pool) Take() (Request, bool) {
	if p.repeat {
		return p.reqs[0], true
	}
	i := p.next.Add(1) - 1
	if i >= int64(len(p.reqs)) {
		return nil, false
	}
	return p.reqs[i], true
}

// Remaining is how many requests are left (-1 for a repeating pool).
func (p *Pool) Remaining() int {
	if p.repeat {
		return -1
	}
	return max(0, len(p.reqs)-int(p.next.Load()))
}

// GenerateOptions size a pool.
type GenerateOptions struct {
	Requests  int // requests with a unique proof (ignored for client_secret_basic)
	Instances int // client instances, each with its own key and attestation (attestation scenarios)
	Host      string
	Now       time.Time // iat of every proof; zero = time.Now()
}

// Generate pre-generates the requests of scenario before any timing (issue 8): per instance one
// attestation reused for all its requests (ABCA-09 §9.2), and per request a fresh PoP, DPoP proof
// or client assertion with a unique jti (ABCA-09 §11.1, RFC 9449 §11.1, RFC 7523 §3). It signs on
// every core.
func (f *Fixture) Generate(scenario string, o GenerateOptions) (*Pool, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	o.Instances = max(o.Instances, 1)
	o.Requests = max(o.Requests, 1)
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}
	head := "POST /oauth2/token HTTP/1.1\r\nHost: " + o.Host + "\r\nContent-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\n"
	switch scenario {
	case ScenarioSecretBasic:
		body := form.Encode()
		cred := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(clientSecretBasic) + ":" + url.QueryEscape(f.ClientSecret)))
		req := head + "Authorization: Basic " + cred + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
		return &Pool{reqs: []Request{{[]byte(req)}}, repeat: true}, nil
	case ScenarioAttest, ScenarioAttestDPoP, ScenarioPrivateKey:
	default:
		return nil, fmt.Errorf("bench: unknown scenario %q", scenario)
	}

	// Per instance: its key, its attestation header line (shared by its requests).
	type instance struct {
		key     *ecdsa.PrivateKey
		attLine []byte
	}
	instances := make([]instance, o.Instances)
	if scenario != ScenarioPrivateKey {
		attester, err := NewSigner(f.AttesterKey, clientauth.TypAttestation, map[jose.HeaderKey]any{"kid": attesterKID})
		if err != nil {
			return nil, err
		}
		for i := range instances {
			k, err := reliability.NewKey()
			if err != nil {
				return nil, err
			}
			att, err := Attestation(attester, ClientID(scenario), k, o.Now, attestationTTL)
			if err != nil {
				return nil, err
			}
			instances[i] = instance{key: k, attLine: []byte("OAuth-Client-Attestation: " + att + "\r\n")}
		}
	}
	form.Set("client_id", ClientID(scenario))
	body := form.Encode()
	fixedHead := []byte(head)
	fixedAttHead := []byte(head + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n")

	reqs := make([]Request, o.Requests)
	workers := min(runtime.GOMAXPROCS(0), o.Requests)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = f.generateRange(scenario, reqs, w, workers, o, body, fixedHead, fixedAttHead, func(i int) (*ecdsa.PrivateKey, []byte) {
				in := instances[i%len(instances)]
				return in.key, in.attLine
			})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return &Pool{reqs: reqs}, nil
}

// generateRange fills reqs[w], reqs[w+step], ... with its own signers (one per instance key).
func (f *Fixture) generateRange(scenario string, reqs []Request, w, step int, o GenerateOptions, body string, fixedHead, fixedAttHead []byte, instanceOf func(int) (*ecdsa.PrivateKey, []byte)) error {
	signers := map[*ecdsa.PrivateKey]*Signer{}
	signerFor := func(k *ecdsa.PrivateKey) (*Signer, error) {
		if s, ok := signers[k]; ok {
			return s, nil
		}
		var s *Signer
		var err error
		switch scenario {
		case ScenarioAttest:
			s, err = NewSigner(k, clientauth.TypPoP, nil)
		case ScenarioAttestDPoP:
			s, err = DPoPSigner(k)
		case ScenarioPrivateKey:
			s, err = NewSigner(k, "JWT", map[jose.HeaderKey]any{"kid": clientKeyKID})
		}
		if err != nil {
			return nil, err
		}
		signers[k] = s
		return s, nil
	}
	for i := w; i < len(reqs); i += step {
		switch scenario {
		case ScenarioAttest, ScenarioAttestDPoP:
			key, attLine := instanceOf(i)
			s, err := signerFor(key)
			if err != nil {
				return err
			}
			var line string
			if scenario == ScenarioAttest {
				pop, err := PoP(s, f.Issuer, o.Now)
				if err != nil {
					return err
				}
				line = "OAuth-Client-Attestation-PoP: " + pop
			} else {
				proof, err := DPoP(s, "POST", f.TokenURL(), o.Now)
				if err != nil {
					return err
				}
				line = "DPoP: " + proof
			}
			reqs[i] = Request{fixedAttHead, attLine, []byte(line + "\r\n\r\n" + body)}
		case ScenarioPrivateKey:
			s, err := signerFor(f.ClientKey)
			if err != nil {
				return err
			}
			a, err := ClientAssertion(s, clientPrivateKey, f.TokenURL(), o.Now, assertionTTL)
			if err != nil {
				return err
			}
			b := body + "&" + url.Values{"client_assertion_type": {ClientAssertionType}, "client_assertion": {a}}.Encode()
			reqs[i] = Request{fixedHead, []byte("Content-Length: " + strconv.Itoa(len(b)) + "\r\n\r\n" + b)}
		}
	}
	return nil
}
