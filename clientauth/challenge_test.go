package clientauth

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestIssueChallenge(t *testing.T) {
	e := newEnv(t, nil)
	c1, err := e.v.IssueChallenge()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := e.v.IssueChallenge()
	if err != nil {
		t.Fatal(err)
	}
	if c1 == c2 {
		t.Error("two challenges are equal")
	}
	if len(c1) < 16 || len(c1) > 512 || strings.ContainsAny(c1, "=+/") {
		t.Errorf("challenge %q is not 16..512 base64url characters without padding", c1)
	}
	if !e.v.ChallengesEnabled() {
		t.Error("ChallengesEnabled = false with a secret")
	}
	disabled := newEnv(t, func(e *testEnv, cfg *Config) { cfg.ChallengeSecret = nil })
	if disabled.v.ChallengesEnabled() {
		t.Error("ChallengesEnabled = true without a secret")
	}
	if _, err := disabled.v.IssueChallenge(); err == nil {
		t.Error("IssueChallenge without a secret succeeded")
	}
	checkErr(t, disabled.v.CheckChallenge(c1), ErrChallengeInvalid)
}

// TestCheckChallenge covers the self-contained challenges of profile §5.
func TestCheckChallenge(t *testing.T) {
	e := newEnv(t, nil)
	otherSecret := newEnv(t, func(e *testEnv, cfg *Config) { cfg.ChallengeSecret = []byte(strings.Repeat("z", 32)) })
	fresh, err := e.v.IssueChallenge()
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := otherSecret.v.IssueChallenge()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(fresh)
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), raw...)
	flipped[challengeTimeLen] ^= 1
	future := newEnv(t, nil)
	future.clock.Advance(time.Minute)
	fromFuture, err := future.v.IssueChallenge()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		value   string
		advance time.Duration
		wantErr error
	}{
		{"fresh", fresh, 0, nil},
		{"at_ttl", fresh, 5 * time.Minute, nil},
		{"expired", fresh, 5*time.Minute + time.Second, ErrChallengeExpired},
		{"other_secret", foreign, 0, ErrChallengeInvalid},
		{"tampered_random", base64.RawURLEncoding.EncodeToString(flipped), 0, ErrChallengeInvalid},
		{"truncated", fresh[:len(fresh)-1], 0, ErrChallengeInvalid},
		{"padded", fresh + "=", 0, ErrChallengeInvalid},
		{"empty", "", 0, ErrChallengeInvalid},
		{"uuid", "5c1a9e10-29ff-4c2b-ae73-57c0957c09c4", 0, ErrChallengeInvalid},
		{"issued_in_the_future", fromFuture, 0, ErrChallengeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newEnv(t, nil)
			v.clock.Advance(tt.advance)
			checkErr(t, v.v.CheckChallenge(tt.value), tt.wantErr)
		})
	}
}

// TestPoPChallenge covers ABCA-09 §7.2 steps 5/8 with profile §5 and the status recorded for the
// audit.
func TestPoPChallenge(t *testing.T) {
	required := newEnv(t, func(e *testEnv, cfg *Config) { cfg.ChallengeRequired = true })
	optional := newEnv(t, nil)
	valid, err := required.v.IssueChallenge()
	if err != nil {
		t.Fatal(err)
	}
	old, err := required.v.IssueChallenge()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		env        *testEnv
		challenge  any
		claim      string // default "challenge"
		advance    time.Duration
		wantErr    error
		wantStatus string
	}{
		{"required_valid", required, valid, "", 0, nil, ChallengeValid},
		{"required_missing", required, nil, "", 0, ErrChallengeMissing, ChallengeMissing},
		{"required_invalid", required, "not-a-challenge-value", "", 0, ErrChallengeInvalid, ChallengeInvalid},
		{"required_expired", required, old, "", 6 * time.Minute, ErrChallengeExpired, ChallengeInvalid},
		{"required_not_a_string", required, 12345, "", 0, ErrChallengeInvalid, ChallengeInvalid},
		{"optional_absent", optional, nil, "", 0, nil, ChallengeNone},
		{"optional_presented_valid", optional, valid, "", 0, nil, ChallengeValid},
		{"optional_presented_invalid", optional, "bogus-challenge-value", "", 0, ErrChallengeInvalid, ChallengeInvalid},
		// Profile §2: a server challenge in the wrong claim is refused; another nonce is ignored.
		{"optional_challenge_in_nonce", optional, valid, "nonce", 0, ErrChallengeInvalid, ChallengeInvalid},
		{"optional_expired_challenge_in_nonce", optional, old, "nonce", 6 * time.Minute, ErrChallengeInvalid, ChallengeInvalid},
		{"optional_other_nonce_ignored", optional, "n-0S6_WzA2Mj", "nonce", 0, nil, ChallengeNone},
		{"required_challenge_in_nonce", required, valid, "nonce", 0, ErrChallengeInvalid, ChallengeInvalid},
		{"required_other_nonce_is_missing", required, "n-0S6_WzA2Mj", "nonce", 0, ErrChallengeMissing, ChallengeMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.env.clock.Advance(tt.advance)
			defer tt.env.clock.Advance(-tt.advance)
			pop := tt.env.pop(func(h, c map[string]any) {
				if tt.challenge != nil {
					claim := tt.claim
					if claim == "" {
						claim = "challenge"
					}
					c[claim] = tt.challenge
				}
			})
			res, err := tt.env.authenticate(tt.env.attestation(nil), pop)
			checkErr(t, err, tt.wantErr)
			if res.Challenge != tt.wantStatus {
				t.Errorf("Challenge = %q, want %q", res.Challenge, tt.wantStatus)
			}
			if tt.wantErr != nil && !NeedsChallengeHeader(err) {
				t.Errorf("NeedsChallengeHeader(%v) = false", err)
			}
		})
	}
}
