package clientauth

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"

	"github.com/authz/authz/dpop"
)

// verifyCombined runs ABCA-09 §7.3 (DPoP combined mode) on the proof parseHeaders extracted.
// Step 1 (no PoP header) holds by mode selection (profile §1), step 2 (one DPoP header) by
// parseHeaders. jti replay of the proof is the caller's, through Result.Replay.
func (v *Verifier) verifyCombined(req Request, proofJWT string, att *attestation, res *Result) (*dpop.Proof, error) {
	proof, err := v.verifyDPoPProof(proofJWT, req)
	if err != nil {
		return nil, err
	}
	if err := checkDPoPKeyMatchesCnf(proof, att); err != nil {
		return proof, err
	}
	status, err := v.checkDPoPNonce(proof)
	res.Challenge = status
	if err != nil {
		return proof, err
	}
	return proof, nil
}

// extractDPoPHeader implements ABCA-09 §7.3 step 2: exactly one DPoP header (RFC 9449 §4.3 steps
// 1–2). Duplicate, comma-joined and oversized headers are request errors (profile §2); a
// malformed value is an invalid proof.
func extractDPoPHeader(h http.Header, maxBytes int) (string, error) {
	s, err := dpop.ExtractHeader(h, maxBytes)
	switch {
	case err == nil:
		return s, nil
	case errors.Is(err, dpop.ErrMultiple):
		return "", fmt.Errorf("%w: %w", ErrHeaderDuplicate, err)
	case errors.Is(err, dpop.ErrTooLarge):
		return "", fmt.Errorf("%w: %w", ErrHeaderTooLarge, err)
	case errors.Is(err, dpop.ErrMissing):
		return "", fmt.Errorf("%w: %w", ErrHeaderMissing, err)
	default:
		return "", fmt.Errorf("%w: %w", ErrDPoPProof, err)
	}
}

// verifyDPoPProof implements ABCA-09 §7.3 step 3: the proof is valid per RFC 9449 §4.3 for this
// request (htm = method, htu = issuer + path, never the Host header), with the combined-mode
// algorithm allow-list and the PoP iat window.
func (v *Verifier) verifyDPoPProof(proofJWT string, req Request) (*dpop.Proof, error) {
	proof, err := dpop.Verify(proofJWT, dpop.Expect{Method: req.Method, URL: req.URL}, dpop.Config{
		Algorithms: v.dpopAlgs,
		MaxAge:     v.cfg.PoPMaxAge,
		ClockSkew:  dpop.Skew(v.cfg.ClockSkew),
		MaxBytes:   v.cfg.MaxTokenBytes,
		Now:        v.now,
	})
	if err != nil {
		if errors.Is(err, dpop.ErrTooLarge) {
			return nil, fmt.Errorf("%w: %w", ErrHeaderTooLarge, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrDPoPProof, err)
	}
	return proof, nil
}

// checkDPoPKeyMatchesCnf implements ABCA-09 §7.3 step 4 with profile §3: the DPoP jwk is the
// attested instance key, compared by RFC 7638 SHA-256 thumbprint in constant time.
func checkDPoPKeyMatchesCnf(proof *dpop.Proof, att *attestation) error {
	if subtle.ConstantTimeCompare([]byte(proof.JKT), []byte(att.jkt)) != 1 {
		return fmt.Errorf("%w: the DPoP proof is signed by another key", ErrDPoPKeyMismatch)
	}
	return nil
}

// checkDPoPNonce implements ABCA-09 §7.3 step 5 with profile §2, §5: the challenge travels in the
// DPoP nonce claim; with challenge_required it must be present; a presented nonce must be a valid
// challenge. Either failure is ErrDPoPNonce (use_dpop_nonce).
func (v *Verifier) checkDPoPNonce(proof *dpop.Proof) (string, error) {
	if proof.Nonce == "" {
		if v.cfg.ChallengeRequired {
			return ChallengeMissing, fmt.Errorf("%w: the DPoP proof has no nonce", ErrDPoPNonce)
		}
		return ChallengeNone, nil
	}
	if err := v.CheckChallenge(proof.Nonce); err != nil {
		return ChallengeInvalid, fmt.Errorf("%w: the DPoP nonce is not a current challenge", ErrDPoPNonce)
	}
	return ChallengeValid, nil
}
