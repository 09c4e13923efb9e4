package devattester

import (
	"crypto/ecdh"
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
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/internal/testkit"
)

func pemBlock(t *testing.T, typ string, der []byte) string {
	t.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func pkcs8(t *testing.T, key any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("PKCS#8: %v", err)
	}
	return pemBlock(t, "PRIVATE KEY", der)
}

func sec1(t *testing.T, key *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("SEC 1: %v", err)
	}
	return pemBlock(t, "EC PRIVATE KEY", der)
}

func jwkJSON(t *testing.T, k jose.JSONWebKey) string {
	t.Helper()
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatalf("marshal JWK: %v", err)
	}
	return string(b)
}

func TestLoadKey(t *testing.T) {
	p256, p384, p521 := testkit.ECKey(t), testkit.ECKeyOn(t, elliptic.P384()), testkit.ECKeyOn(t, elliptic.P521())
	rsa2048 := testkit.RSAKey(t, 2048)
	ed := testkit.Ed25519Key(t)
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(p256.Public())
	if err != nil {
		t.Fatal(err)
	}
	p224 := testkit.ECKeyOn(t, elliptic.P224())
	rsa1024 := testkit.RSAKey(t, 1024)

	tests := []struct {
		name     string
		content  string
		wantAlg  jose.SignatureAlgorithm
		wantKid  string // "" = the RFC 7638 thumbprint
		wantType string
		wantErr  error
	}{
		{name: "jwk_es256_kid_kept", content: jwkJSON(t, jose.JSONWebKey{Key: p256, KeyID: "att-2026"}), wantAlg: jose.ES256, wantKid: "att-2026", wantType: "*ecdsa.PrivateKey"},
		{name: "jwk_without_kid_gets_thumbprint", content: jwkJSON(t, jose.JSONWebKey{Key: p384}), wantAlg: jose.ES384, wantType: "*ecdsa.PrivateKey"},
		{name: "jwk_rsa_alg_kept", content: jwkJSON(t, jose.JSONWebKey{Key: rsa2048, KeyID: "r", Algorithm: "PS256"}), wantAlg: jose.PS256, wantKid: "r", wantType: "*rsa.PrivateKey"},
		{name: "jwk_ed25519", content: "\n  " + jwkJSON(t, jose.JSONWebKey{Key: ed, KeyID: "e", Use: "sig"}) + "\n", wantAlg: jose.EdDSA, wantKid: "e", wantType: "ed25519.PrivateKey"},
		{name: "pem_pkcs8_ec_p256", content: pkcs8(t, p256), wantAlg: jose.ES256, wantType: "*ecdsa.PrivateKey"},
		{name: "pem_sec1_ec_p521", content: sec1(t, p521), wantAlg: jose.ES512, wantType: "*ecdsa.PrivateKey"},
		{name: "pem_sec1_after_ec_parameters", content: pemBlock(t, "EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}) + sec1(t, p256), wantAlg: jose.ES256, wantType: "*ecdsa.PrivateKey"},
		{name: "pem_pkcs1_rsa", content: pemBlock(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa2048)), wantAlg: jose.RS256, wantType: "*rsa.PrivateKey"},
		{name: "pem_pkcs8_rsa", content: pkcs8(t, rsa2048), wantAlg: jose.RS256, wantType: "*rsa.PrivateKey"},
		{name: "pem_pkcs8_ed25519", content: pkcs8(t, ed), wantAlg: jose.EdDSA, wantType: "ed25519.PrivateKey"},

		{name: "jwk_public_only", content: jwkJSON(t, jose.JSONWebKey{Key: p256.Public(), KeyID: "p"}), wantErr: ErrUnsupportedKey},
		{name: "jwk_symmetric", content: `{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA","kid":"h"}`, wantErr: ErrUnsupportedKey},
		{name: "jwk_alg_contradicts_curve", content: jwkJSON(t, jose.JSONWebKey{Key: p256, Algorithm: "ES384"}), wantErr: ErrUnsupportedKey},
		{name: "jwk_alg_hmac_on_ec", content: jwkJSON(t, jose.JSONWebKey{Key: p256, Algorithm: "HS256"}), wantErr: ErrUnsupportedKey},
		{name: "jwk_use_enc", content: jwkJSON(t, jose.JSONWebKey{Key: p256, Use: "enc"}), wantErr: ErrUnsupportedKey},
		{name: "jwk_broken_json", content: `{"kty":"EC",`, wantErr: ErrKeyFile},
		{name: "jwk_unknown_kty", content: `{"kty":"XYZ","d":"AA"}`, wantErr: ErrKeyFile},
		{name: "pem_public_key", content: pemBlock(t, "PUBLIC KEY", pubDER), wantErr: ErrKeyFile},
		{name: "pem_encrypted_pkcs8", content: pemBlock(t, "ENCRYPTED PRIVATE KEY", []byte{1, 2, 3}), wantErr: ErrKeyFile},
		{name: "pem_encrypted_legacy", content: string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte{1}})), wantErr: ErrKeyFile},
		{name: "pem_corrupt_der", content: pemBlock(t, "EC PRIVATE KEY", []byte{0x30, 0x01, 0x00}), wantErr: ErrKeyFile},
		{name: "pem_only_parameters", content: pemBlock(t, "EC PARAMETERS", []byte{0x06, 0x00}), wantErr: ErrKeyFile},
		{name: "pem_x25519_not_a_signing_key", content: pkcs8(t, x25519), wantErr: ErrUnsupportedKey},
		{name: "pem_p224_unsupported_curve", content: sec1(t, p224), wantErr: ErrUnsupportedKey},
		{name: "pem_rsa_1024_too_short", content: pemBlock(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa1024)), wantErr: ErrUnsupportedKey},
		{name: "empty_file", content: "", wantErr: ErrKeyFile},
		{name: "garbage", content: "not a key", wantErr: ErrKeyFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := LoadKey(writeFile(t, "key", tt.content))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadKey: %v", err)
			}
			if got := fmt.Sprintf("%T", k.Key); got != tt.wantType {
				t.Errorf("key type = %s, want %s", got, tt.wantType)
			}
			if k.Algorithm != string(tt.wantAlg) {
				t.Errorf("alg = %q, want %q", k.Algorithm, tt.wantAlg)
			}
			if k.Use != "sig" {
				t.Errorf("use = %q, want sig", k.Use)
			}
			wantKid := tt.wantKid
			if wantKid == "" {
				pub := k.Public()
				wantKid = jkt(t, &pub)
			}
			if k.KeyID != wantKid {
				t.Errorf("kid = %q, want %q", k.KeyID, wantKid)
			}
			// The loaded key signs attestations that verify with the published set.
			a, err := New(k, Options{Now: fixedClock})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			inst, _ := instanceKey(t)
			token, err := a.Attest("agent", inst)
			if err != nil {
				t.Fatalf("Attest: %v", err)
			}
			v := verifyAttestation(t, token, a.PublicJWKS())
			if v.header["alg"] != string(tt.wantAlg) || v.header["kid"] != wantKid {
				t.Errorf("header = %v", v.header)
			}
		})
	}
}

func TestLoadKeyMissingFile(t *testing.T) {
	_, err := LoadKey(filepath.Join(t.TempDir(), "absent.json"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want os.ErrNotExist", err)
	}
}

func TestGenerateKeyFile(t *testing.T) {
	tests := []struct {
		name    string
		kid     string
		wantKid *regexp.Regexp
	}{
		{name: "kid_prefix_with_random_suffix", kid: "dev-attester-key", wantKid: regexp.MustCompile(`^dev-attester-key-[0-9a-f]{8}$`)},
		{name: "random_kid_when_empty", kid: "", wantKid: regexp.MustCompile(`^[0-9a-f]{16}$`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "attester.json")
			if err := GenerateKeyFile(path, tt.kid); err != nil {
				t.Fatalf("GenerateKeyFile: %v", err)
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := info.Mode().Perm(); perm != 0o600 {
				t.Errorf("mode = %v, want 0600", perm)
			}
			k, err := LoadKey(path)
			if err != nil {
				t.Fatalf("LoadKey: %v", err)
			}
			if priv, ok := k.Key.(*ecdsa.PrivateKey); !ok || priv.Curve != elliptic.P256() {
				t.Errorf("key = %T, want a P-256 private key", k.Key)
			}
			if k.Algorithm != string(jose.ES256) || k.Use != "sig" {
				t.Errorf("alg %q use %q", k.Algorithm, k.Use)
			}
			if !tt.wantKid.MatchString(k.KeyID) {
				t.Errorf("kid = %q, want match %s", k.KeyID, tt.wantKid)
			}
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := GenerateKeyFile(path, tt.kid); err != nil {
				t.Fatalf("second GenerateKeyFile: %v", err)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(before) != string(after) {
				t.Error("an existing key file was overwritten")
			}
		})
	}
}

func TestGenerateKeyFileKidsDiffer(t *testing.T) {
	dir := t.TempDir()
	kids := map[string]bool{}
	for i := range 3 {
		path := filepath.Join(dir, fmt.Sprintf("k%d.json", i))
		if err := GenerateKeyFile(path, "dev"); err != nil {
			t.Fatal(err)
		}
		k, err := LoadKey(path)
		if err != nil {
			t.Fatal(err)
		}
		kids[k.KeyID] = true
	}
	if len(kids) != 3 {
		t.Fatalf("kids repeat: %v", kids)
	}
}

func TestGenerateKeyFileErrors(t *testing.T) {
	tests := []struct {
		name string
		path func(t *testing.T) string
	}{
		{name: "missing_directory", path: func(t *testing.T) string { return filepath.Join(t.TempDir(), "no", "such", "dir", "k.json") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := GenerateKeyFile(tt.path(t), "k")
			if !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("err = %v, want os.ErrNotExist", err)
			}
		})
	}
}

func TestGenerateKeyFileKeepsForeignFile(t *testing.T) {
	path := writeFile(t, "key.pem", "operator's own key")
	if err := GenerateKeyFile(path, "k"); err != nil {
		t.Fatalf("GenerateKeyFile: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "operator's own key" {
		t.Fatal("existing file was replaced")
	}
	if _, err := LoadKey(path); !errors.Is(err, ErrKeyFile) {
		t.Fatalf("LoadKey err = %v, want ErrKeyFile", err)
	}
}

func TestSignatureAlgsRejectsOffCurvePoint(t *testing.T) {
	// An off-curve point can only be built from raw coordinates, which is the point of the test.
	//lint:ignore SA1019 deliberately constructing an invalid key
	bad := &ecdsa.PublicKey{Curve: elliptic.P256(), X: big.NewInt(1), Y: big.NewInt(1)}
	_, err := signatureAlgs(bad)
	if err == nil || !strings.Contains(err.Error(), "invalid EC point") {
		t.Fatalf("err = %v, want invalid EC point", err)
	}
	if _, err := signatureAlgs(&rsa.PublicKey{}); err == nil {
		t.Fatal("empty RSA key accepted")
	}
	if _, err := signatureAlgs(ed25519.PublicKey{1, 2}); err == nil {
		t.Fatal("short Ed25519 key accepted")
	}
}
