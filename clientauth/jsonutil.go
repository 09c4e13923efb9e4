package clientauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"time"
)

// maxJSONDepth bounds nesting in every JSON text this package reads.
const maxJSONDepth = 32

var (
	errDuplicateMember = errors.New("duplicate JSON member name")
	errNotObject       = errors.New("not a JSON object")
	errTooDeep         = errors.New("JSON nested too deeply")
	errInvalidJSON     = errors.New("invalid JSON")
)

// checkJSONObject verifies that data is exactly one JSON object with no duplicate member names
// at any depth (RFC 7515 §4, RFC 7519 §4: a JWT with duplicate names is rejected; encoding/json
// and go-jose would silently keep the last one).
func checkJSONObject(data []byte) error {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errNotObject
	}
	return checkJSONValue(data)
}

// checkJSONValue verifies that data is exactly one JSON value with no duplicate member names
// and at most maxJSONDepth nested objects and arrays. encoding/json's validator checks the
// syntax (no allocation); checkMembers then only has to track structure on valid input.
func checkJSONValue(data []byte) error {
	if !json.Valid(data) {
		return errInvalidJSON
	}
	return checkMembers(data)
}

// jsonFrame is one open object or array of checkMembers.
type jsonFrame struct {
	object     bool
	expectName bool                // the next string in this object is a member name
	names      []string            // member names so far: a linear scan while the object is small
	set        map[string]struct{} // ... and a set beyond smallObject names (no quadratic work)
}

// smallObject is how many member names an object collects in a slice before a set.
const smallObject = 16

// addName records a member name of this object; a name seen before is errDuplicateMember.
func (f *jsonFrame) addName(name string) error {
	if f.set != nil {
		if _, dup := f.set[name]; dup {
			return errDuplicateMember
		}
		f.set[name] = struct{}{}
		return nil
	}
	for _, seen := range f.names {
		if seen == name {
			return errDuplicateMember
		}
	}
	f.names = append(f.names, name)
	if len(f.names) > smallObject {
		f.set = make(map[string]struct{}, 2*len(f.names))
		for _, n := range f.names {
			f.set[n] = struct{}{}
		}
		f.names = nil
	}
	return nil
}

// checkMembers walks syntactically valid JSON and rejects duplicate member names in any object
// (compared after unescaping: "a" and "\u0061" are the same name) and nesting deeper than
// maxJSONDepth.
func checkMembers(data []byte) error {
	var stack []jsonFrame
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '{', '[':
			if len(stack) == maxJSONDepth {
				return errTooDeep
			}
			stack = append(stack, jsonFrame{object: c == '{', expectName: c == '{'})
		case '}', ']':
			stack = stack[:len(stack)-1]
		case ',':
			if top := len(stack) - 1; stack[top].object {
				stack[top].expectName = true
			}
		case '"':
			j, escaped := i+1, false
			for data[j] != '"' {
				if data[j] == '\\' {
					escaped = true
					j++
				}
				j++
			}
			if top := len(stack) - 1; top >= 0 && stack[top].expectName {
				name := string(data[i+1 : j])
				if escaped {
					if err := json.Unmarshal(data[i:j+1], &name); err != nil {
						return errInvalidJSON
					}
				}
				if err := stack[top].addName(name); err != nil {
					return err
				}
				stack[top].expectName = false
			}
			i = j
		}
	}
	return nil
}

// jsonString reads a JSON string member; ok is false for any other JSON type (including null,
// which encoding/json would silently turn into "").
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// maxNumericDate is 9999-12-31T23:59:59Z: later dates are refused rather than overflowing.
const maxNumericDate = 253402300799

// jsonNumericDate reads an RFC 7519 §2 NumericDate: a JSON number of seconds since the epoch,
// possibly fractional, between 0 and maxNumericDate.
func jsonNumericDate(raw json.RawMessage) (time.Time, bool) {
	if len(raw) == 0 || !(raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
		return time.Time{}, false
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return time.Time{}, false
	}
	if math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}

// decodeMembers decodes a JSON object (already checked by checkJSONObject) into its members.
func decodeMembers(data []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errNotObject
	}
	return m, nil
}
