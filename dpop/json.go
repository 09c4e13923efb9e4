package dpop

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/authz/authz/internal/strictjson"
)

var errNotString = errors.New("not a string")

// decodeObject parses data as exactly one JSON object and returns its members by exact name.
// Duplicate member names at any depth (compared after unescaping) fail with ErrDuplicateMember
// (RFC 7515 §5.2 step 4, RFC 7519 §7.2 step 9 allow a recipient to reject them); anything else that
// is not one JSON object fails with ErrMalformed (internal/strictjson).
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	switch err := strictjson.CheckObject(data); {
	case errors.Is(err, strictjson.ErrDuplicateMember):
		return nil, ErrDuplicateMember
	case errors.Is(err, strictjson.ErrTooDeep):
		return nil, fmt.Errorf("%w: nested too deeply", ErrMalformed)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return m, nil
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
