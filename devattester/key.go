package devattester

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// Sentinel errors; every error the package returns wraps one of them (or an os error from
// reading or writing a key file, such as os.ErrNotExist).
var (
	// ErrKeyFile reports a key file that is neither a private JWK nor a PEM private key.
	ErrKeyFile = errors.New("devattester: unreadable key file")
	// ErrUnsupportedKey reports an attester key that cannot sign attestations: public only,
	// symmetric, of an unsupported type or curve, too short, or with a contradicting alg or use.
	ErrUnsupportedKey = errors.New("devattester: unsupported attester key")
	// ErrOptions reports invalid Options.
	ErrOptions = errors.New("devattester: invalid options")
	// ErrClientID reports a client_id that is empty, too long, or not RFC 6749 Appendix A.1 VSCHARs.
	ErrClientID = errors.New("devattester: invalid client_id")
	// ErrInstanceKey reports a Client Instance Key that is not a valid public asymmetric
	// signature key (ABCA-09 §3, §7.1 step 5).
	ErrInstanceKey = errors.New("devattester: invalid instance key")
	// ErrInstanceKeyPrivate reports a Client Instance Key that carries private members; only the
	// public key may be put in cnf (ABCA-09 §7.1 step 5).
	ErrInstanceKeyPrivate = errors.New("devattester: instance key has private members")
	// ErrInstanceKeySymmetric reports a symmetric (kty oct) Client Instance Key; the instance key
	// is an asymmetric key pair (ABCA-09 §3).
	ErrInstanceKeySymmetric = errors.New("devattester: instance key is symmetric")
)

// minRSABits is the shortest RSA modulus accepted, for the attester key and instance keys alike
// (the verifier in clientauth refuses shorter ones; RFC 7518 §3.3).
const minRSABits = 2048

// privateJWKMembers are the JWK members that carry private or symmetric key material (RFC 7518
// §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2; AKP "priv").
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// LoadKey reads FILE: a private JWK (JSON) or a PEM private key (PKCS#8, SEC1 EC, PKCS#1 RSA). The JWK's kid is kept;
// a PEM key gets kid = its RFC 7638 thumbprint. Alg: ES256/ES384/ES512 by curve, RS256 for RSA, EdDSA for Ed25519.
//
// A JWK without kid also gets its thumbprint; a JWK's own alg is kept when it fits the key (for
// example PS256 on an RSA key). Encrypted PEM keys are refused. Errors from reading the file wrap
// the os error (errors.Is(err, os.ErrNotExist) works).
func LoadKey(path string) (*jose.JSONWebKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("devattester: read key: %w", err)
	}
	var k *jose.JSONWebKey
	trimmed := strings.TrimSpace(string(data))
	switch {
	case strings.HasPrefix(trimmed, "{"):
		k, err = parseJWK([]byte(trimmed))
	case strings.HasPrefix(trimmed, "-----BEGIN"):
		k, err = parsePEM([]byte(trimmed))
	default:
		err = fmt.Errorf("%w: %s is neither a JWK (JSON) nor a PEM private key", ErrKeyFile, path)
	}
	if err != nil {
		return nil, err
	}
	if err := completeSigningKey(k); err != nil {
		return nil, err
	}
	return k, nil
}

// parseJWK reads a private JWK (RFC 7517 §4).
func parseJWK(data []byte) (*jose.JSONWebKey, error) {
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("%w: JWK: %w", ErrKeyFile, err)
	}
	return &k, nil
}

// parsePEM reads the first private key block of a PEM file, skipping "EC PARAMETERS" blocks
// (as written by `openssl ecparam -genkey`).
func parsePEM(data []byte) (*jose.JSONWebKey, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%w: no PEM private key block", ErrKeyFile)
		}
		if _, encrypted := block.Headers["Proc-Type"]; encrypted {
			return nil, fmt.Errorf("%w: encrypted PEM keys are not supported", ErrKeyFile)
		}
		var key any
		var err error
		switch block.Type {
		case "EC PARAMETERS":
			continue
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("%w: encrypted PEM keys are not supported", ErrKeyFile)
		default:
			return nil, fmt.Errorf("%w: PEM block %q is not a private key (want PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)", ErrKeyFile, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: PEM %s: %w", ErrKeyFile, block.Type, err)
		}
		return &jose.JSONWebKey{Key: key}, nil
	}
}

// completeSigningKey checks that k can sign attestations and fills in its alg (by key type when
// empty), use ("sig") and kid (RFC 7638 SHA-256 thumbprint when empty).
func completeSigningKey(k *jose.JSONWebKey) error {
	if k == nil || k.Key == nil {
		return fmt.Errorf("%w: no key", ErrUnsupportedKey)
	}
	var pub crypto.PublicKey
	switch key := k.Key.(type) {
	case *ecdsa.PrivateKey:
		pub = key.Public()
	case *rsa.PrivateKey:
		if err := key.Validate(); err != nil {
			return fmt.Errorf("%w: RSA key: %w", ErrUnsupportedKey, err)
		}
		pub = key.Public()
	case ed25519.PrivateKey:
		pub = key.Public()
	case *ecdsa.PublicKey, *rsa.PublicKey, ed25519.PublicKey:
		return fmt.Errorf("%w: a public key cannot sign; give the attester its private key", ErrUnsupportedKey)
	case []byte:
		return fmt.Errorf("%w: symmetric keys are not supported; attestations are signed", ErrUnsupportedKey)
	default:
		return fmt.Errorf("%w: key type %T (want EC P-256/P-384/P-521, RSA or Ed25519)", ErrUnsupportedKey, k.Key)
	}
	if !k.Valid() {
		return fmt.Errorf("%w: incomplete key", ErrUnsupportedKey)
	}
	algs, err := signatureAlgs(pub)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnsupportedKey, err)
	}
	switch {
	case k.Algorithm == "":
		k.Algorithm = string(algs[0])
	case !slices.Contains(algs, jose.SignatureAlgorithm(k.Algorithm)):
		return fmt.Errorf("%w: alg %q does not fit this key (want one of %v)", ErrUnsupportedKey, k.Algorithm, algs)
	}
	switch k.Use {
	case "":
		k.Use = "sig"
	case "sig":
	default:
		return fmt.Errorf("%w: use %q (want sig)", ErrUnsupportedKey, k.Use)
	}
	if k.KeyID == "" {
		kid, err := thumbprint(k)
		if err != nil {
			return fmt.Errorf("%w: thumbprint: %w", ErrUnsupportedKey, err)
		}
		k.KeyID = kid
	}
	return nil
}

// signatureAlgs lists the JWS algorithms (RFC 7518 §3.1, RFC 8037 §3.1) that fit a public key,
// the default first: ES256/ES384/ES512 by curve, RS256 (then PS*, RS384, RS512) for RSA, EdDSA
// for Ed25519. It refuses invalid EC points and RSA keys shorter than minRSABits.
func signatureAlgs(pub crypto.PublicKey) ([]jose.SignatureAlgorithm, error) {
	switch key := pub.(type) {
	case *ecdsa.PublicKey:
		if key.Curve == nil {
			return nil, errors.New("EC key without curve")
		}
		var alg jose.SignatureAlgorithm
		switch key.Curve {
		case elliptic.P256():
			alg = jose.ES256
		case elliptic.P384():
			alg = jose.ES384
		case elliptic.P521():
			alg = jose.ES512
		default:
			return nil, fmt.Errorf("unsupported curve %s", key.Curve.Params().Name)
		}
		if _, err := key.ECDH(); err != nil {
			return nil, fmt.Errorf("invalid EC point: %w", err)
		}
		return []jose.SignatureAlgorithm{alg}, nil
	case *rsa.PublicKey:
		if key.N == nil || key.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key shorter than %d bits", minRSABits)
		}
		return []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512}, nil
	case ed25519.PublicKey:
		if len(key) != ed25519.PublicKeySize {
			return nil, errors.New("invalid Ed25519 key size")
		}
		return []jose.SignatureAlgorithm{jose.EdDSA}, nil
	default:
		return nil, fmt.Errorf("unsupported key type %T", pub)
	}
}

// thumbprint is the RFC 7638 SHA-256 thumbprint of k, base64url without padding.
func thumbprint(k *jose.JSONWebKey) (string, error) {
	sum, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// GenerateKeyFile writes a new ES256 private JWK with a random kid to path (0600) if the file does not exist.
//
// The kid is the given kid followed by "-" and 8 random hex digits, or 16 random hex digits when
// kid is empty, so a regenerated key never reuses a kid that a server may have cached from the
// attester's JWK set. An existing file is left untouched (nil error), whatever it holds; LoadKey
// then reports on its content. The file is created exclusively, so two concurrent calls cannot
// both write it.
func GenerateKeyFile(path, kid string) error {
	if _, err := os.Lstat(path); err == nil {
		return nil
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("devattester: generate key: %w", err)
	}
	suffix := make([]byte, 4)
	if kid == "" {
		suffix = make([]byte, 8)
	}
	if _, err := rand.Read(suffix); err != nil {
		return fmt.Errorf("devattester: generate kid: %w", err)
	}
	if kid == "" {
		kid = hex.EncodeToString(suffix)
	} else {
		kid += "-" + hex.EncodeToString(suffix)
	}
	data, err := json.MarshalIndent(jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}, "", "  ")
	if err != nil {
		return fmt.Errorf("devattester: encode key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil // created meanwhile by someone else
	}
	if err != nil {
		return fmt.Errorf("devattester: create key file: %w", err)
	}
	_, werr := f.Write(append(data, '\n'))
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("devattester: write key file: %w", err)
	}
	return nil
}
