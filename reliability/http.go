package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxResponseBytes bounds what the harness reads of any answer.
const maxResponseBytes = 1 << 20

// Response is a decoded token, introspection, challenge or error answer (RFC 6749 §5.1, §5.2;
// RFC 7662 §2.2).
type Response struct {
	Status      int         `json:"-"`
	Header      http.Header `json:"-"`
	Body        []byte      `json:"-"`
	AccessToken string      `json:"access_token"`
	TokenType   string      `json:"token_type"`
	Error       string      `json:"error"`
	Description string      `json:"error_description"`
	Active      bool        `json:"active"`
	ClientID    string      `json:"client_id"`
	Challenge   string      `json:"attestation_challenge"`
}

// PostForm posts form to rawURL with the given headers (and HTTP Basic credentials when user is
// set) and decodes the JSON answer. A non-JSON answer leaves the decoded members empty.
func PostForm(ctx context.Context, c *http.Client, rawURL string, form url.Values, headers map[string]string, user, pass string) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("reliability: request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	return Do(c, req)
}

// Do sends req and decodes the answer like PostForm.
func Do(c *http.Client, req *http.Request) (*Response, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reliability: %s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("reliability: read %s answer: %w", req.URL.Path, err)
	}
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
	if len(body) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, r); err != nil {
			return nil, fmt.Errorf("reliability: decode %s answer %q: %w", req.URL.Path, body, err)
		}
	}
	return r, nil
}
