package clientauth

import (
	"net/http"
	"strings"
	"testing"
)

func TestParseHeaders(t *testing.T) {
	const att = "aaa.bbb.ccc"
	const pop = "ddd.eee.fff"
	tests := []struct {
		name     string
		header   http.Header
		wantErr  error
		wantMode string
	}{
		{"normal_mode", headerWith(HeaderClientAttestation, att, HeaderClientAttestationPoP, pop), nil, PoPMethodJWT},
		{"normal_mode_with_plain_dpop", headerWith(HeaderClientAttestation, att, HeaderClientAttestationPoP, pop, "DPoP", "x.y.z"), nil, PoPMethodJWT},
		{"combined_mode", headerWith(HeaderClientAttestation, att, "DPoP", "x.y.z"), nil, PoPMethodDPoP},
		{"non_canonical_names", http.Header{"oauth-client-attestation": {att}, "OAUTH-CLIENT-ATTESTATION-POP": {pop}}, nil, PoPMethodJWT},
		{"attestation_missing", headerWith(HeaderClientAttestationPoP, pop), ErrHeaderMissing, PoPMethodJWT},
		{"neither_pop_nor_dpop", headerWith(HeaderClientAttestation, att), ErrHeaderMissing, ""},
		{"attestation_twice", headerWith(HeaderClientAttestation, att, HeaderClientAttestation, att, HeaderClientAttestationPoP, pop), ErrHeaderDuplicate, PoPMethodJWT},
		{"attestation_twice_under_two_spellings", http.Header{"Oauth-Client-Attestation": {att}, "OAuth-Client-Attestation": {att}, "Oauth-Client-Attestation-Pop": {pop}}, ErrHeaderDuplicate, PoPMethodJWT},
		{"pop_twice", headerWith(HeaderClientAttestation, att, HeaderClientAttestationPoP, pop, HeaderClientAttestationPoP, pop), ErrHeaderDuplicate, PoPMethodJWT},
		{"attestation_comma_joined", headerWith(HeaderClientAttestation, att+","+att, HeaderClientAttestationPoP, pop), ErrHeaderDuplicate, PoPMethodJWT},
		{"attestation_comma_space_joined", headerWith(HeaderClientAttestation, att+", "+att, HeaderClientAttestationPoP, pop), ErrHeaderDuplicate, PoPMethodJWT},
		{"pop_comma_joined", headerWith(HeaderClientAttestation, att, HeaderClientAttestationPoP, pop+","+pop), ErrHeaderDuplicate, PoPMethodJWT},
		{"legacy_tilde_concatenation", headerWith(HeaderClientAttestation, att+"~"+pop, HeaderClientAttestationPoP, pop), ErrHeaderMalformed, PoPMethodJWT},
		{"inner_whitespace", headerWith(HeaderClientAttestation, "aaa.bbb .ccc", HeaderClientAttestationPoP, pop), ErrHeaderMalformed, PoPMethodJWT},
		{"bearer_prefix", headerWith(HeaderClientAttestation, "Bearer "+att, HeaderClientAttestationPoP, pop), ErrHeaderMalformed, PoPMethodJWT},
		{"quoted", headerWith(HeaderClientAttestation, `"`+att+`"`, HeaderClientAttestationPoP, pop), ErrHeaderMalformed, PoPMethodJWT},
		{"empty_value", headerWith(HeaderClientAttestation, "", HeaderClientAttestationPoP, pop), ErrHeaderMalformed, PoPMethodJWT},
		{"padding_in_the_middle", headerWith(HeaderClientAttestation, "aa=a.bbb.ccc", HeaderClientAttestationPoP, pop), ErrHeaderMalformed, PoPMethodJWT},
		{"non_ascii", headerWith(HeaderClientAttestation, "aaa.bbb.cc\u00e9", HeaderClientAttestationPoP, pop), ErrHeaderMalformed, PoPMethodJWT},
		{"attestation_too_large", headerWith(HeaderClientAttestation, strings.Repeat("a", DefaultMaxTokenBytes+1), HeaderClientAttestationPoP, pop), ErrHeaderTooLarge, PoPMethodJWT},
		{"attestation_at_the_limit", headerWith(HeaderClientAttestation, strings.Repeat("a", DefaultMaxTokenBytes), HeaderClientAttestationPoP, pop), nil, PoPMethodJWT},
		{"pop_too_large", headerWith(HeaderClientAttestation, att, HeaderClientAttestationPoP, strings.Repeat("a", DefaultMaxTokenBytes+1)), ErrHeaderTooLarge, PoPMethodJWT},
		// Combined mode: the DPoP header is checked with the others, before any JWT is verified.
		{"combined_dpop_twice", headerWith(HeaderClientAttestation, att, "DPoP", "x.y.z", "DPoP", "x.y.z"), ErrHeaderDuplicate, PoPMethodDPoP},
		{"combined_dpop_comma_joined", headerWith(HeaderClientAttestation, att, "DPoP", "x.y.z,x.y.z"), ErrHeaderDuplicate, PoPMethodDPoP},
		{"combined_dpop_too_large", headerWith(HeaderClientAttestation, att, "DPoP", strings.Repeat("a", DefaultMaxTokenBytes+1)), ErrHeaderTooLarge, PoPMethodDPoP},
		{"combined_dpop_not_a_jwt", headerWith(HeaderClientAttestation, att, "DPoP", "x.y"), ErrDPoPProof, PoPMethodDPoP},
		{"combined_attestation_twice", headerWith(HeaderClientAttestation, att, HeaderClientAttestation, att, "DPoP", "x.y.z"), ErrHeaderDuplicate, PoPMethodDPoP},
		{"too_large_and_comma_joined", headerWith(HeaderClientAttestation, strings.Repeat("a,", DefaultMaxTokenBytes), HeaderClientAttestationPoP, pop), ErrHeaderTooLarge, PoPMethodJWT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rh, err := parseHeaders(tt.header, DefaultMaxTokenBytes)
			checkErr(t, err, tt.wantErr)
			if rh.mode != tt.wantMode {
				t.Errorf("mode = %q, want %q", rh.mode, tt.wantMode)
			}
		})
	}
}

func TestHasAttestation(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		want   bool
	}{
		{"none", http.Header{}, false},
		{"dpop_only", headerWith("DPoP", "x.y.z"), false},
		{"attestation", headerWith(HeaderClientAttestation, "a.b.c"), true},
		{"pop_only", headerWith(HeaderClientAttestationPoP, "a.b.c"), true},
		{"lower_case_name", http.Header{"oauth-client-attestation": {"a.b.c"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HasAttestation(tt.header); got != tt.want {
				t.Errorf("HasAttestation = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClaimedClientID(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name   string
		header http.Header
		want   string
	}{
		{"valid_attestation", headerWith(HeaderClientAttestation, e.attestation(nil)), testClientID},
		{"unverified_sub_is_returned", headerWith(HeaderClientAttestation, signJWT(t, e.instKey, e.attHeader(), map[string]any{"sub": "someone"})), "someone"},
		{"sub_not_a_string", headerWith(HeaderClientAttestation, e.attestation(func(h, c map[string]any) { c["sub"] = 7 })), ""},
		{"no_header", http.Header{}, ""},
		{"two_headers", headerWith(HeaderClientAttestation, e.attestation(nil), HeaderClientAttestation, e.attestation(nil)), ""},
		{"garbage", headerWith(HeaderClientAttestation, "a.b.c"), ""},
		{"duplicate_sub", headerWith(HeaderClientAttestation, signRaw(t, "ES256", e.attKey, []byte(`{"alg":"ES256"}`), []byte(`{"sub":"a","sub":"b"}`))), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClaimedClientID(tt.header); got != tt.want {
				t.Errorf("ClaimedClientID = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzParseHeaders(f *testing.F) {
	f.Add("aaa.bbb.ccc", "ddd.eee.fff", "")
	f.Add("aaa.bbb.ccc,aaa.bbb.ccc", "", "x.y.z")
	f.Add("aaa.bbb.ccc~ddd.eee.fff", "ddd.eee.fff", "")
	f.Add(strings.Repeat("A", DefaultMaxTokenBytes+10), "p", "")
	f.Add("Bearer x", "\x00\xff", "a,b")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, att, pop, dp string) {
		h := http.Header{}
		for _, kv := range [][2]string{{HeaderClientAttestation, att}, {HeaderClientAttestationPoP, pop}, {"DPoP", dp}} {
			if kv[1] != "" {
				for _, v := range strings.Split(kv[1], "\n") {
					h.Add(kv[0], v)
				}
			}
		}
		rh, err := parseHeaders(h, DefaultMaxTokenBytes)
		if err == nil {
			if rh.attestation == "" || len(rh.attestation) > DefaultMaxTokenBytes || strings.ContainsAny(rh.attestation, ", ~\t") {
				t.Fatalf("accepted attestation header %q", rh.attestation)
			}
			if rh.mode == PoPMethodJWT && (rh.pop == "" || strings.ContainsAny(rh.pop, ", ~\t")) {
				t.Fatalf("accepted PoP header %q", rh.pop)
			}
			if rh.mode == PoPMethodDPoP && (rh.dpop == "" || strings.ContainsAny(rh.dpop, ", \t")) {
				t.Fatalf("accepted DPoP header %q", rh.dpop)
			}
		}
		// The mode follows the headers present, whatever their values (the audit record).
		switch {
		case pop != "" && rh.mode != PoPMethodJWT, pop == "" && dp != "" && rh.mode != PoPMethodDPoP, pop == "" && dp == "" && rh.mode != "":
			t.Fatalf("mode %q for PoP %q, DPoP %q", rh.mode, pop, dp)
		}
		_ = HasAttestation(h)
		_ = ClaimedClientID(h)
		if u := Unverified(h); u == nil || u.PoPMethod != rh.mode || (rh.attestation == "" && (u.ClientID != "" || u.InstanceJKT != "")) {
			t.Fatalf("Unverified = %+v for mode %q, attestation %q", u, rh.mode, rh.attestation)
		}
	})
}
