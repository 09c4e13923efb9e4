package attestclient

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DevAttester asks a development attester (`authz dev-attester`): POST {base}/attest with
// {"client_id", "jwk"} answers {"client_attestation"}. In production an agent asks its vendor's
// attester, which first checks the instance (docs/agents.md).
func DevAttester(base string, hc *http.Client) AttestationSource {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second} // as for the authorization server
	}
	return func(ctx context.Context, clientID string, key jose.JSONWebKey) (string, error) {
		body, err := json.Marshal(map[string]any{"client_id": clientID, "jwk": key})
		if err != nil {
			return "", err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/attest", bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var out struct {
			Attestation string `json:"client_attestation"`
			Error       string `json:"error"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
			return "", fmt.Errorf("attester answered %d: %w", resp.StatusCode, err)
		}
		if resp.StatusCode != http.StatusOK || out.Attestation == "" {
			return "", fmt.Errorf("attester answered %d: %s", resp.StatusCode, out.Error)
		}
		return out.Attestation, nil
	}
}

// AttestationFile reads a Client Attestation JWT from a file (for attestations provisioned out
// of band). The file's attestation must bind the instance key the Client holds.
func AttestationFile(path string) AttestationSource {
	return func(context.Context, string, jose.JSONWebKey) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
}

// LoadOrCreateKey is LoadKey, except that a file that does not exist is created with a new
// P-256 key (PKCS #8 PEM, mode 0600, never overwriting a file that appears meanwhile); created
// reports that. An agent keeps its instance key this way across runs (a DPoP-bound token is
// usable only with it).
func LoadOrCreateKey(path string) (key crypto.Signer, created bool, err error) {
	key, err = LoadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("attestclient: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, false, fmt.Errorf("attestclient: encode key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("attestclient: create %s: %w", path, err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("attestclient: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("attestclient: write %s: %w", path, err)
	}
	return k, true, nil
}

// LoadKey reads a private Client Instance Key: a private JWK (JSON) or a PEM key (PKCS#8, SEC 1
// EC, PKCS#1 RSA).
func LoadKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if block, _ := pem.Decode(b); block != nil {
		var k any
		switch block.Type {
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		}
		if err != nil {
			return nil, fmt.Errorf("attestclient: %s: %w", path, err)
		}
		return asSigner(k)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(b); err != nil {
		return nil, fmt.Errorf("attestclient: %s is neither PEM nor a JWK: %w", path, err)
	}
	if jwk.IsPublic() {
		return nil, errors.New("attestclient: " + path + " holds a public key; the instance key must be private")
	}
	return asSigner(jwk.Key)
}

func asSigner(k any) (crypto.Signer, error) {
	switch t := k.(type) {
	case *ecdsa.PrivateKey:
		return t, nil
	case *rsa.PrivateKey:
		return t, nil
	case ed25519.PrivateKey:
		return t, nil
	}
	return nil, fmt.Errorf("attestclient: unsupported private key type %T", k)
}
