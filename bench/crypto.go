package bench

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/authz/authz/clientauth"
	"github.com/authz/authz/reliability"
)

// CryptoBound is the CPU time of each unavoidable cryptographic step of a token request, measured
// on one goroutine (one core) with go-jose v4 and ES256, each step including the compact-JWS
// parsing and the claim decoding it cannot do without. Times are per operation.
type CryptoBound struct {
	Iterations int
	// VerifyAttestation: parse, ES256 verify with the attester key, decode sub/iat/exp and the
	// cnf.jwk public key (ABCA-09 §7.1 steps 3–5).
	VerifyAttestation time.Duration
	// VerifyPoP: parse, ES256 verify with cnf.jwk, decode aud/jti/iat (ABCA-09 §7.2).
	VerifyPoP time.Duration
	// VerifyDPoP: parse, read the header jwk, ES256 verify with it, decode the claims, RFC 7638
	// thumbprint of the key (RFC 9449 §4.3, combined mode ABCA-09 §7.3).
	VerifyDPoP time.Duration
	// VerifyAssertion: parse, ES256 verify with the client key, decode the RFC 7523 claims.
	VerifyAssertion time.Duration
	// SignAccessToken: marshal RFC 9068 claims, ES256 sign, serialise.
	SignAccessToken time.Duration
	// RawVerify and RawSign are the bare P-256 ECDSA operations (crypto/ecdsa, SHA-256 digest
	// given), the floor under every JOSE library.
	RawVerify, RawSign time.Duration
}

// PerRequest is the crypto bound of one token request of scenario: what no implementation of
// that client authentication can skip. client_secret_basic has no signature to verify (its
// secret comparison is a design choice, not a bound) and counts the token signature only.
func (c CryptoBound) PerRequest(scenario string) time.Duration {
	switch scenario {
	case ScenarioAttest:
		return c.VerifyAttestation + c.VerifyPoP + c.SignAccessToken
	case ScenarioAttestDPoP:
		return c.VerifyAttestation + c.VerifyDPoP + c.SignAccessToken
	case ScenarioPrivateKey:
		return c.VerifyAssertion + c.SignAccessToken
	case ScenarioSecretBasic:
		return c.SignAccessToken
	}
	return 0
}

// processCPU is this process's user+system CPU time (getrusage RUSAGE_SELF): the garbage
// collector's background work counts too, as it would in a server.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("bench: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// cpuPerOp runs op iterations times (after a short warm-up) and returns the CPU time per call.
func cpuPerOp(iterations int, op func() error) (time.Duration, error) {
	for range min(iterations/10+1, 100) {
		if err := op(); err != nil {
			return 0, err
		}
	}
	runtime.GC()
	before, err := processCPU()
	if err != nil {
		return 0, err
	}
	for range iterations {
		if err := op(); err != nil {
			return 0, err
		}
	}
	after, err := processCPU()
	if err != nil {
		return 0, err
	}
	return (after - before) / time.Duration(iterations), nil
}

// cryptoMaterial is one attested request's worth of tokens and keys.
type cryptoMaterial struct {
	attesterKey, instanceKey, asKey *ecdsa.PrivateKey
	attestation, pop, dpop, assert  string
	atSigner                        jose.Signer
	digest                          [32]byte
	rawSig                          []byte
}

func newCryptoMaterial() (*cryptoMaterial, error) {
	m := &cryptoMaterial{}
	var err error
	for _, k := range []**ecdsa.PrivateKey{&m.attesterKey, &m.instanceKey, &m.asKey} {
		if *k, err = reliability.NewKey(); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	attester, err := NewSigner(m.attesterKey, clientauth.TypAttestation, map[jose.HeaderKey]any{"kid": attesterKID})
	if err != nil {
		return nil, err
	}
	if m.attestation, err = Attestation(attester, clientAttest, m.instanceKey, now, time.Hour); err != nil {
		return nil, err
	}
	popSigner, err := NewSigner(m.instanceKey, clientauth.TypPoP, nil)
	if err != nil {
		return nil, err
	}
	if m.pop, err = PoP(popSigner, "http://127.0.0.1:8080", now); err != nil {
		return nil, err
	}
	dpopSigner, err := DPoPSigner(m.instanceKey)
	if err != nil {
		return nil, err
	}
	if m.dpop, err = DPoP(dpopSigner, "POST", "http://127.0.0.1:8080/oauth2/token", now); err != nil {
		return nil, err
	}
	assertSigner, err := NewSigner(m.instanceKey, "JWT", map[jose.HeaderKey]any{"kid": clientKeyKID})
	if err != nil {
		return nil, err
	}
	if m.assert, err = ClientAssertion(assertSigner, clientPrivateKey, "http://127.0.0.1:8080/oauth2/token", now, time.Minute); err != nil {
		return nil, err
	}
	m.digest = sha256.Sum256([]byte(m.pop))
	if m.rawSig, err = ecdsa.SignASN1(rand.Reader, m.asKey, m.digest[:]); err != nil {
		return nil, fmt.Errorf("bench: raw sign: %w", err)
	}
	m.atSigner, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: m.asKey},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "as-key-1"))
	if err != nil {
		return nil, fmt.Errorf("bench: signer: %w", err)
	}
	return m, nil
}

var es256 = []jose.SignatureAlgorithm{jose.ES256}

type attestationClaims struct {
	Sub string           `json:"sub"`
	Exp *jwt.NumericDate `json:"exp"`
	Iat *jwt.NumericDate `json:"iat"`
	Cnf struct {
		JWK jose.JSONWebKey `json:"jwk"`
	} `json:"cnf"`
}

type popClaims struct {
	Aud       string           `json:"aud"`
	JTI       string           `json:"jti"`
	Iat       *jwt.NumericDate `json:"iat"`
	Challenge string           `json:"challenge"`
}

func (m *cryptoMaterial) verifyAttestation() (*jose.JSONWebKey, error) {
	tok, err := jwt.ParseSigned(m.attestation, es256)
	if err != nil {
		return nil, fmt.Errorf("bench: attestation: %w", err)
	}
	var c attestationClaims
	if err := tok.Claims(&m.attesterKey.PublicKey, &c); err != nil {
		return nil, fmt.Errorf("bench: attestation: %w", err)
	}
	if c.Sub == "" || !c.Cnf.JWK.IsPublic() {
		return nil, errors.New("bench: attestation claims")
	}
	return &c.Cnf.JWK, nil
}

func (m *cryptoMaterial) verifyPoP(key any) error {
	tok, err := jwt.ParseSigned(m.pop, es256)
	if err != nil {
		return fmt.Errorf("bench: pop: %w", err)
	}
	var c popClaims
	if err := tok.Claims(key, &c); err != nil {
		return fmt.Errorf("bench: pop: %w", err)
	}
	if c.JTI == "" {
		return errors.New("bench: pop claims")
	}
	return nil
}

func (m *cryptoMaterial) verifyDPoP() error {
	tok, err := jwt.ParseSigned(m.dpop, es256)
	if err != nil || len(tok.Headers) != 1 || tok.Headers[0].JSONWebKey == nil {
		return fmt.Errorf("bench: dpop: %v", err)
	}
	jwk := tok.Headers[0].JSONWebKey
	var c struct {
		JTI string           `json:"jti"`
		HTM string           `json:"htm"`
		HTU string           `json:"htu"`
		Iat *jwt.NumericDate `json:"iat"`
	}
	if err := tok.Claims(jwk, &c); err != nil {
		return fmt.Errorf("bench: dpop: %w", err)
	}
	if _, err := jwk.Thumbprint(crypto.SHA256); err != nil {
		return fmt.Errorf("bench: dpop: %w", err)
	}
	return nil
}

func (m *cryptoMaterial) verifyAssertion() error {
	tok, err := jwt.ParseSigned(m.assert, es256)
	if err != nil {
		return fmt.Errorf("bench: assertion: %w", err)
	}
	var c jwt.Claims
	if err := tok.Claims(&m.instanceKey.PublicKey, &c); err != nil {
		return fmt.Errorf("bench: assertion: %w", err)
	}
	return nil
}

func (m *cryptoMaterial) signAccessToken() error {
	now := time.Now()
	jti, err := reliability.RandomString()
	if err != nil {
		return err
	}
	_, err = jwt.Signed(m.atSigner).Claims(map[string]any{
		"iss": "http://127.0.0.1:8080", "sub": clientAttest, "client_id": clientAttest, "jti": jti,
		"iat": now.Unix(), "exp": now.Add(15 * time.Minute).Unix(), "scope": "read",
		"client_attestation": map[string]string{
			"attester": attesterID, "instance_jkt": "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG", "pop_method": "attestation_pop_jwt",
		},
	}).Serialize()
	if err != nil {
		return fmt.Errorf("bench: sign access token: %w", err)
	}
	return nil
}

// MeasureCrypto measures the crypto bound with iterations calls of each step. Run it while the
// process does nothing else: the CPU clock is the whole process's.
func MeasureCrypto(iterations int) (CryptoBound, error) {
	iterations = max(iterations, 10)
	m, err := newCryptoMaterial()
	if err != nil {
		return CryptoBound{}, err
	}
	cnf, err := m.verifyAttestation()
	if err != nil {
		return CryptoBound{}, err
	}
	c := CryptoBound{Iterations: iterations}
	steps := []struct {
		dst *time.Duration
		op  func() error
	}{
		{&c.VerifyAttestation, func() error { _, err := m.verifyAttestation(); return err }},
		{&c.VerifyPoP, func() error { return m.verifyPoP(cnf) }},
		{&c.VerifyDPoP, m.verifyDPoP},
		{&c.VerifyAssertion, m.verifyAssertion},
		{&c.SignAccessToken, m.signAccessToken},
		{&c.RawVerify, func() error {
			if !ecdsa.VerifyASN1(&m.asKey.PublicKey, m.digest[:], m.rawSig) {
				return errors.New("bench: raw verify failed")
			}
			return nil
		}},
		{&c.RawSign, func() error {
			_, err := ecdsa.SignASN1(rand.Reader, m.asKey, m.digest[:])
			return err
		}},
	}
	for _, s := range steps {
		if *s.dst, err = cpuPerOp(iterations, s.op); err != nil {
			return CryptoBound{}, err
		}
	}
	return c, nil
}
