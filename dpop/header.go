package dpop

import (
	"fmt"
	"net/http"
	"strings"
)

// ExtractHeader implements RFC 9449 §4.3 step 1 and the syntax half of step 2: the request
// carries exactly one DPoP header line (under any capitalisation of the name), it is not a
// comma-joined list, it is at most maxBytes long (16 KiB when maxBytes <= 0, profile §3), and
// it has the shape of a compact JWS. Optional whitespace around the value is removed.
// It fails with ErrMissing, ErrMultiple, ErrTooLarge or ErrMalformed.
func ExtractHeader(h http.Header, maxBytes int) (string, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	var values []string
	for name, v := range h {
		if strings.EqualFold(name, Header) {
			values = append(values, v...)
		}
	}
	switch {
	case len(values) == 0:
		return "", ErrMissing
	case len(values) > 1:
		return "", fmt.Errorf("%w: %d DPoP header lines", ErrMultiple, len(values))
	}
	v := strings.Trim(values[0], " \t")
	if err := checkSize(v, maxBytes); err != nil {
		return "", err
	}
	if strings.Contains(v, ",") {
		return "", fmt.Errorf("%w: comma-joined DPoP header", ErrMultiple)
	}
	if err := compactSyntax(v); err != nil {
		return "", err
	}
	return v, nil
}
