package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestCheckObject: exactly one JSON object, no duplicate member names at any depth
// (compared after unescaping), bounded nesting (RFC 7515 §4, RFC 7519 §4).
func TestCheckObject(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	many := func(n int, dupAt int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			name := i
			if i == dupAt {
				name = 0
			}
			b.WriteString(`"m` + strings.Repeat("x", name%7) + string(rune('a'+name%26)) + string(rune('a'+name/26%26)) + string(rune('a'+name/676)) + `":1`)
		}
		b.WriteString("}")
		return b.String()
	}
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"object", `{"a":1,"b":"x","c":{"a":2}}`, nil},
		{"empty_object", `{}`, nil},
		{"surrounding_space", " \t{\"a\":1}\n", nil},
		{"same_name_in_nested_objects", `{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}`, nil},
		{"string_values_equal_to_names", `{"a":"a","b":"a"}`, nil},
		{"number_beyond_float64", `{"exp":1E1000}`, nil}, // syntax only; decoding it is the caller's check
		{"escaped_quote_in_name", `{"a\"b":1,"a":2}`, nil},
		{"duplicate", `{"a":1,"a":2}`, ErrDuplicateMember},
		{"duplicate_nested", `{"x":{"a":1,"b":2,"a":3}}`, ErrDuplicateMember},
		{"duplicate_in_array_element", `{"x":[{"k":1,"k":1}]}`, ErrDuplicateMember},
		{"duplicate_after_nested_object", `{"a":{"b":1},"a":2}`, ErrDuplicateMember},
		{"duplicate_by_escape", `{"a":1,"\u0061":2}`, ErrDuplicateMember},
		{"duplicate_by_escaped_slash", `{"a/b":1,"a\/b":2}`, ErrDuplicateMember},
		{"large_object_no_duplicate", many(500, -1), nil},
		{"large_object_duplicate_late", many(500, 499), ErrDuplicateMember},
		{"array", `[1,2]`, ErrNotObject},
		{"string", `"x"`, ErrNotObject},
		{"empty", ``, ErrInvalid},
		{"whitespace_only", " \n", ErrInvalid},
		{"trailing_data", `{"a":1} {"b":2}`, ErrInvalid},
		{"trailing_garbage", `{"a":1}x`, ErrInvalid},
		{"unterminated", `{"a":1`, ErrInvalid},
		{"bad_escape", `{"a\x":1}`, ErrInvalid},
		{"nested_32", `{"a":` + deep(31) + `}`, nil},
		{"nested_33", `{"a":` + deep(32) + `}`, ErrTooDeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckObject([]byte(tt.in)); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("CheckObject(%.60q) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

// referenceCheck is the straightforward decoder-based definition Check must agree with:
// valid JSON, one value, no duplicate member names.
func referenceCheck(data []byte) bool {
	if !json.Valid(data) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	// Numbers stay text: a syntactically valid number outside float64's range (1E1000) is valid
	// JSON (RFC 8259 §6 lets a receiver limit the range it decodes; Check decodes nothing).
	dec.UseNumber()
	var walk func(depth int) bool
	walk = func(depth int) bool {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		d, ok := tok.(json.Delim)
		if !ok {
			return true
		}
		if depth >= MaxDepth {
			return false
		}
		seen := map[string]bool{}
		for dec.More() {
			if d == '{' {
				k, err := dec.Token()
				if err != nil {
					return false
				}
				name := k.(string)
				if seen[name] {
					return false
				}
				seen[name] = true
			}
			if !walk(depth + 1) {
				return false
			}
		}
		_, err = dec.Token()
		return err == nil
	}
	if !walk(0) {
		return false
	}
	_, err := dec.Token()
	return err == io.EOF
}

// FuzzCheck: the single-pass checker accepts exactly what the decoder-based reference
// accepts, and never panics.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":1,"a":2}`, `{"a":{"b":[1,{"c":"\u0063"}]}}`, `{"\u0061":1,"a":2}`,
		`[[[[]]]]`, `"x\"y"`, `{"a":"b\\","c":1}`, `{} `, `{"a":1}x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := Check(data) == nil
		if want := referenceCheck(data); got != want {
			t.Fatalf("Check(%q) accepted=%v, reference accepted=%v", data, got, want)
		}
	})
}
