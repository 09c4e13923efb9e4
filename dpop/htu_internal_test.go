package dpop

import (
	"errors"
	"testing"
)

// TestNormalizeHTU pins the RFC 9449 §4.3 step 9 comparison (RFC 3986 §6.2.2, §6.2.3).
func TestNormalizeHTU(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{name: "plain", in: "https://as.example.com/oauth2/token", want: "https://as.example.com/oauth2/token"},
		{name: "query_and_fragment_dropped", in: "https://as.example.com/p?q=1#f", want: "https://as.example.com/p"},
		{name: "scheme_and_host_lowercased", in: "HTTPS://AS.EXAMPLE.com/P", want: "https://as.example.com/P"},
		{name: "https_default_port_removed", in: "https://as.example.com:443/p", want: "https://as.example.com/p"},
		{name: "http_default_port_removed", in: "http://as.example.com:80/p", want: "http://as.example.com/p"},
		{name: "http_port_443_kept", in: "http://as.example.com:443/p", want: "http://as.example.com:443/p"},
		{name: "port_leading_zeros", in: "http://127.0.0.1:08080/p", want: "http://127.0.0.1:8080/p"},
		{name: "empty_port", in: "https://as.example.com:/p", want: "https://as.example.com/p"},
		{name: "empty_path_is_slash", in: "https://as.example.com", want: "https://as.example.com/"},
		{name: "trailing_slash_kept", in: "https://as.example.com/p/", want: "https://as.example.com/p/"},
		{name: "ipv6_host", in: "https://[::1]:8443/p", want: "https://[::1]:8443/p"},
		{name: "ipv6_host_case", in: "https://[FE80::1]/p", want: "https://[fe80::1]/p"},
		{name: "percent_hex_uppercased", in: "https://h/a%2fb", want: "https://h/a%2Fb"},
		{name: "percent_unreserved_decoded", in: "https://h/%7Euser/%41", want: "https://h/~user/A"},
		{name: "dot_segments_removed", in: "https://h/a/./b/../c", want: "https://h/a/c"},
		{name: "dot_segments_above_root", in: "https://h/../../c", want: "https://h/c"},
		{name: "encoded_dot_segment", in: "https://h/a/%2E%2E/c", want: "https://h/c"},
		{name: "double_slash_kept", in: "https://h//a", want: "https://h//a"},
		{name: "relative", in: "/oauth2/token", wantErr: true},
		{name: "other_scheme", in: "ftp://h/p", wantErr: true},
		{name: "opaque", in: "https:h/p", wantErr: true},
		{name: "userinfo", in: "https://u:p@h/p", wantErr: true},
		{name: "port_out_of_range", in: "https://h:65536/p", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "control_character", in: "https://h/\x7f", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := normalizeHTU(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("normalizeHTU(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("normalizeHTU(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestRemoveDotSegments uses the RFC 3986 §5.2.4 examples.
func TestRemoveDotSegments(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "rfc3986_example_1", in: "/a/b/c/./../../g", want: "/a/g"},
		{name: "rfc3986_example_2", in: "mid/content=5/../6", want: "mid/6"},
		{name: "trailing_dot", in: "/a/b/.", want: "/a/b/"},
		{name: "trailing_dot_dot", in: "/a/b/..", want: "/a/"},
		{name: "dots_in_names_kept", in: "/a.b/..c/d..", want: "/a.b/..c/d.."},
		{name: "no_dots", in: "/a/b", want: "/a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := removeDotSegments(tt.in); got != tt.want {
				t.Errorf("removeDotSegments(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestDecodeObject covers the strict JSON reading behind RFC 9449 §4.3 step 2.
func TestDecodeObject(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr error
	}{
		{name: "object", in: `{"a":1,"b":{"c":[1,{"d":2}]}}`},
		{name: "same_name_in_sibling_objects", in: `{"a":{"x":1},"b":{"x":2}}`},
		{name: "duplicate_top_level", in: `{"a":1,"a":2}`, wantErr: ErrDuplicateMember},
		{name: "duplicate_nested_in_array", in: `{"a":[{"x":1,"x":1}]}`, wantErr: ErrDuplicateMember},
		{name: "duplicate_after_unescape", in: `{"a":1,"\u0061":2}`, wantErr: ErrDuplicateMember},
		{name: "names_differing_in_case", in: `{"a":1,"A":2}`},
		{name: "array", in: `[]`, wantErr: ErrMalformed},
		{name: "null", in: `null`, wantErr: ErrMalformed},
		{name: "trailing_object", in: `{}{}`, wantErr: ErrMalformed},
		{name: "trailing_garbage", in: `{} x`, wantErr: ErrMalformed},
		{name: "unterminated", in: `{"a":1`, wantErr: ErrMalformed},
		{name: "too_deep", in: `{"a":` + repeat("[", 40) + repeat("]", 40) + `}`, wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeObject([]byte(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("decodeObject(%s) error = %v, want %v", tt.in, err, tt.wantErr)
			}
		})
	}
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}
