package dpop_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/authz/authz/dpop"
	"github.com/authz/authz/internal/testkit"
)

// TestExtractHeader covers RFC 9449 §4.3 step 1 and the header syntax and size limits (profile §2, §3).
func TestExtractHeader(t *testing.T) {
	proof := newProofSpec(t, "ES256", testkit.ECKey(t)).sign(t)
	tests := []struct {
		name     string
		header   http.Header
		maxBytes int
		want     string
		wantErr  error
	}{
		{name: "one_header", header: http.Header{"Dpop": {proof}}, want: proof},
		{name: "surrounding_whitespace_trimmed", header: http.Header{"Dpop": {" \t" + proof + " "}}, want: proof},
		{name: "non_canonical_name", header: http.Header{"DPoP": {proof}}, want: proof},
		{name: "lowercase_name", header: http.Header{"dpop": {proof}}, want: proof},
		{name: "exactly_max_bytes", header: http.Header{"Dpop": {proof}}, maxBytes: len(proof), want: proof},
		{name: "missing", header: http.Header{"Authorization": {"DPoP x"}}, wantErr: dpop.ErrMissing},
		{name: "nil_header", header: nil, wantErr: dpop.ErrMissing},
		{name: "two_header_lines", header: http.Header{"Dpop": {proof, proof}}, wantErr: dpop.ErrMultiple},
		{name: "two_spellings_of_the_name", header: http.Header{"Dpop": {proof}, "DPoP": {proof}}, wantErr: dpop.ErrMultiple},
		{name: "comma_joined", header: http.Header{"Dpop": {proof + ", " + proof}}, wantErr: dpop.ErrMultiple},
		{name: "trailing_comma", header: http.Header{"Dpop": {proof + ","}}, wantErr: dpop.ErrMultiple},
		{name: "over_max_bytes", header: http.Header{"Dpop": {proof}}, maxBytes: len(proof) - 1, wantErr: dpop.ErrTooLarge},
		{name: "over_default_16_kib", header: http.Header{"Dpop": {strings.Repeat("a", 8<<10) + "." + strings.Repeat("b", 8<<10) + ".c"}}, wantErr: dpop.ErrTooLarge},
		{name: "empty_value", header: http.Header{"Dpop": {""}}, wantErr: dpop.ErrMalformed},
		{name: "two_segments", header: http.Header{"Dpop": {"aaa.bbb"}}, wantErr: dpop.ErrMalformed},
		{name: "empty_signature", header: http.Header{"Dpop": {"aaa.bbb."}}, wantErr: dpop.ErrMalformed},
		{name: "empty_payload", header: http.Header{"Dpop": {"aaa..ccc"}}, wantErr: dpop.ErrMalformed},
		{name: "bearer_prefix", header: http.Header{"Dpop": {"DPoP " + proof}}, wantErr: dpop.ErrMalformed},
		{name: "standard_base64_alphabet", header: http.Header{"Dpop": {"a+a.b/b.c=c"}}, wantErr: dpop.ErrMalformed},
		{name: "json_serialization", header: http.Header{"Dpop": {`{"payload":"x"}`}}, wantErr: dpop.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dpop.ExtractHeader(tt.header, tt.maxBytes)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ExtractHeader error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ExtractHeader = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestExtractHeader_error_classes pins which failures are request errors and which are
// invalid proofs (profile §2: invalid_request versus invalid_dpop_proof).
func TestExtractHeader_error_classes(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		wantInvalid bool
	}{
		{name: "missing", err: dpop.ErrMissing},
		{name: "multiple", err: dpop.ErrMultiple},
		{name: "too_large", err: dpop.ErrTooLarge},
		{name: "malformed", err: dpop.ErrMalformed, wantInvalid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, dpop.ErrInvalid); got != tt.wantInvalid {
				t.Errorf("errors.Is(%v, ErrInvalid) = %v, want %v", tt.err, got, tt.wantInvalid)
			}
		})
	}
}
