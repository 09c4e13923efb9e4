package clientauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"
)

// Challenge layout (profile §5): 8-byte big-endian issue time in Unix seconds, 16 random bytes,
// HMAC-SHA256(secret, time || random); base64url without padding (75 characters, within the
// 16..512 characters ABCA-09 §6 clients must handle).
const (
	challengeTimeLen   = 8
	challengeRandomLen = 16
	challengeMACLen    = sha256.Size
	challengeRawLen    = challengeTimeLen + challengeRandomLen + challengeMACLen
)

// IssueChallenge returns a fresh self-contained challenge (ABCA-09 §6, §11.1 option (b); profile
// §5): any replica sharing the secret can check it, nothing is stored. It fails with
// ErrChallengesDisabled when no challenge secret is configured.
func (v *Verifier) IssueChallenge() (string, error) {
	if !v.ChallengesEnabled() {
		return "", ErrChallengesDisabled
	}
	buf := make([]byte, challengeRawLen)
	binary.BigEndian.PutUint64(buf, uint64(v.now().Unix()))
	if _, err := rand.Read(buf[challengeTimeLen : challengeTimeLen+challengeRandomLen]); err != nil {
		return "", fmt.Errorf("clientauth: challenge randomness: %w", err)
	}
	copy(buf[challengeTimeLen+challengeRandomLen:], v.challengeMAC(buf[:challengeTimeLen+challengeRandomLen]))
	return base64.RawURLEncoding.EncodeToString(buf), nil
}

// CheckChallenge verifies a challenge presented in a PoP challenge claim or a combined-mode DPoP
// nonce (ABCA-09 §7.2 steps 5/8, §7.3 step 5): it must decode to the issued layout, its MAC must
// match (constant-time), its issue time must not be in the future beyond the clock skew, and it
// must be younger than challenge_ttl. Fails with ErrChallengeInvalid or ErrChallengeExpired.
func (v *Verifier) CheckChallenge(value string) error {
	if !v.ChallengesEnabled() {
		return fmt.Errorf("%w: this server issues no challenges", ErrChallengeInvalid)
	}
	if len(value) != base64.RawURLEncoding.EncodedLen(challengeRawLen) {
		return fmt.Errorf("%w: wrong length", ErrChallengeInvalid)
	}
	buf, err := base64.RawURLEncoding.Strict().DecodeString(value)
	if err != nil || len(buf) != challengeRawLen {
		return fmt.Errorf("%w: not a challenge", ErrChallengeInvalid)
	}
	body, mac := buf[:challengeTimeLen+challengeRandomLen], buf[challengeTimeLen+challengeRandomLen:]
	if !hmac.Equal(mac, v.challengeMAC(body)) {
		return fmt.Errorf("%w: not issued by this server", ErrChallengeInvalid)
	}
	secs := binary.BigEndian.Uint64(body)
	if secs > maxNumericDate {
		return fmt.Errorf("%w: issue time out of range", ErrChallengeInvalid)
	}
	issued := time.Unix(int64(secs), 0)
	now := v.now()
	if issued.After(now.Add(v.cfg.ClockSkew)) {
		return fmt.Errorf("%w: issued in the future", ErrChallengeInvalid)
	}
	if now.Sub(issued) > v.cfg.ChallengeTTL {
		return fmt.Errorf("%w: older than challenge_ttl", ErrChallengeExpired)
	}
	return nil
}

func (v *Verifier) challengeMAC(body []byte) []byte {
	m := hmac.New(sha256.New, v.cfg.ChallengeSecret)
	m.Write(body)
	return m.Sum(nil)
}
