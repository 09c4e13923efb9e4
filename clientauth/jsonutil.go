package clientauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"time"
)

// maxJSONDepth bounds nesting in every JSON text this package reads.
const maxJSONDepth = 32

var (
	errDuplicateMember = errors.New("duplicate JSON member name")
	errNotObject       = errors.New("not a JSON object")
	errTooDeep         = errors.New("JSON nested too deeply")
	errTrailingData    = errors.New("data after the JSON value")
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

// checkJSONValue verifies that data is exactly one JSON value with no duplicate member names.
func checkJSONValue(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := walkJSON(dec, 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errTrailingData
	}
	return nil
}

func walkJSON(dec *json.Decoder, depth int) error {
	if depth > maxJSONDepth {
		return errTooDeep
	}
	tok, err := dec.Token()
	if err != nil {
		return errInvalidJSON
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return errInvalidJSON
			}
			name, ok := k.(string)
			if !ok {
				return errInvalidJSON
			}
			if seen[name] {
				return errDuplicateMember
			}
			seen[name] = true
			if err := walkJSON(dec, depth+1); err != nil {
				return err
			}
		}
	case '[':
		for dec.More() {
			if err := walkJSON(dec, depth+1); err != nil {
				return err
			}
		}
	default:
		return errInvalidJSON
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return errInvalidJSON
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
