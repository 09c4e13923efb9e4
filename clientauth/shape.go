package clientauth

import (
	"errors"
	"net/http"
)

// CheckHeaderShape runs only the header checks of ABCA-09 §7.1 step 1 and §7.2 step 1 (exactly
// one value each, size, token68, no legacy concatenation). The server uses it to answer a
// malformed request with invalid_request even when the client it claims to be cannot be found.
// A missing header is not a shape error.
func CheckHeaderShape(h http.Header) error {
	_, err := parseHeaders(h, DefaultMaxTokenBytes)
	if errors.Is(err, ErrHeaderMissing) {
		return nil
	}
	return err
}
