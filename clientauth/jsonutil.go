package clientauth

import (
	"encoding/json"
	"math"
	"time"

	"github.com/authz/authz/internal/strictjson"
)

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

// decodeMembers decodes a JSON object (already checked by strictjson.CheckObject) into its members.
func decodeMembers(data []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, strictjson.ErrNotObject
	}
	return m, nil
}
