package dpop

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// maxJSONDepth bounds nesting in a header or payload; a proof never needs more than a few levels.
const maxJSONDepth = 32

var errNotString = errors.New("not a string")

// decodeObject parses data as exactly one JSON object and returns its members by exact name.
// Duplicate member names at any depth (compared after unescaping) fail with ErrDuplicateMember
// (RFC 7515 §5.2 step 4, RFC 7519 §7.2 step 9 allow a recipient to reject them); anything else that
// is not one JSON object fails with ErrMalformed.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	if err := walkObject(dec, 1); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return m, nil
}

// walkObject consumes the members of an object whose '{' was just read, then its '}'.
func walkObject(dec *json.Decoder, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("%w: nested too deeply", ErrMalformed)
	}
	seen := map[string]struct{}{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		name, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%w: member name is not a string", ErrMalformed)
		}
		if _, dup := seen[name]; dup {
			return fmt.Errorf("%w: %q", ErrDuplicateMember, name)
		}
		seen[name] = struct{}{}
		if err := walkValue(dec, depth); err != nil {
			return err
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return fmt.Errorf("%w: unterminated object", ErrMalformed)
	}
	return nil
}

// walkValue consumes one JSON value.
func walkValue(dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	switch tok {
	case json.Delim('{'):
		return walkObject(dec, depth+1)
	case json.Delim('['):
		if depth+1 > maxJSONDepth {
			return fmt.Errorf("%w: nested too deeply", ErrMalformed)
		}
		for dec.More() {
			if err := walkValue(dec, depth+1); err != nil {
				return err
			}
		}
		if tok, err := dec.Token(); err != nil || tok != json.Delim(']') {
			return fmt.Errorf("%w: unterminated array", ErrMalformed)
		}
	}
	return nil
}

// stringMember reads member name of m as a JSON string. present is false when the member is
// absent; err is set when it is present but not a string (null included).
func stringMember(m map[string]json.RawMessage, name string) (value string, present bool, err error) {
	raw, ok := m[name]
	if !ok {
		return "", false, nil
	}
	if len(raw) == 0 || raw[0] != '"' {
		return "", true, errNotString
	}
	if err := json.Unmarshal(raw, &value); err != nil {
		return "", true, errNotString
	}
	return value, true, nil
}
