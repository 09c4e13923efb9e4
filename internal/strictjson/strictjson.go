// Package strictjson checks JSON texts the way JOSE recipients may require (RFC 7515 §5.2 step 4,
// RFC 7519 §7.2 step 9): exactly one JSON value, no duplicate member names in any object
// (compared after unescaping; encoding/json and go-jose would silently keep the last one), and
// bounded nesting. It decodes nothing: callers unmarshal what passed.
package strictjson

import (
	"encoding/json"
	"errors"
)

// MaxDepth bounds how many objects and arrays may be nested (the outermost counts).
const MaxDepth = 32

var (
	// ErrInvalid: not exactly one JSON value (syntax error, trailing data, empty input).
	ErrInvalid = errors.New("invalid JSON")
	// ErrNotObject: valid JSON, but not an object.
	ErrNotObject = errors.New("not a JSON object")
	// ErrDuplicateMember: an object names a member twice.
	ErrDuplicateMember = errors.New("duplicate JSON member name")
	// ErrTooDeep: more than MaxDepth nested objects and arrays.
	ErrTooDeep = errors.New("JSON nested too deeply")
)

// CheckObject is Check for a text that must be one JSON object.
func CheckObject(data []byte) error {
	if err := Check(data); err != nil {
		return err
	}
	for _, c := range data {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return nil
		}
		return ErrNotObject
	}
	return ErrNotObject
}

// Check verifies that data is exactly one JSON value with no duplicate member names and at most
// MaxDepth levels of nesting. encoding/json's validator checks the syntax without allocating;
// one pass over the bytes then tracks structure, which valid input makes simple.
func Check(data []byte) error {
	if !json.Valid(data) {
		return ErrInvalid
	}
	var stack []frame
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '{', '[':
			if len(stack) == MaxDepth {
				return ErrTooDeep
			}
			stack = append(stack, frame{object: c == '{', expectName: c == '{'})
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
						return ErrInvalid
					}
				}
				if err := stack[top].add(name); err != nil {
					return err
				}
				stack[top].expectName = false
			}
			i = j
		}
	}
	return nil
}

// smallObject is how many member names an object collects in a slice before a set.
const smallObject = 16

// frame is one open object or array.
type frame struct {
	object     bool
	expectName bool                // the next string in this object is a member name
	names      []string            // member names so far: a linear scan while the object is small
	set        map[string]struct{} // ... and a set beyond smallObject names (no quadratic work)
}

// add records a member name of this object; a name seen before is ErrDuplicateMember.
func (f *frame) add(name string) error {
	if f.set != nil {
		if _, dup := f.set[name]; dup {
			return ErrDuplicateMember
		}
		f.set[name] = struct{}{}
		return nil
	}
	for _, seen := range f.names {
		if seen == name {
			return ErrDuplicateMember
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
