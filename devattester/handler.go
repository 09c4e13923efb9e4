package devattester

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// HTTP interface of `authz dev-attester` (interface.md).
const (
	// PathAttest answers POST {"client_id", "jwk"} with {"client_attestation"}.
	PathAttest = "/attest"
	// PathJWKS answers GET with the attester's public JWK set.
	PathJWKS = "/jwks.json"
	// MaxBodyBytes caps the body of an attest request.
	MaxBodyBytes = 64 << 10
)

// attestRequest is the body of POST /attest.
type attestRequest struct {
	ClientID *string         `json:"client_id"`
	JWK      json.RawMessage `json:"jwk"`
}

// attestResponse is the 200 body of POST /attest.
type attestResponse struct {
	ClientAttestation string `json:"client_attestation"`
}

type errorResponse struct {
	Error string `json:"error"`
}

// Handler: POST /attest with JSON {"client_id": "...", "jwk": {...}} -> 200 {"client_attestation": "<JWT>"};
// GET /jwks.json -> the public JWK set; bad input -> 400 JSON {"error": "..."}; body capped at 64 KiB; other methods 405.
//
// A body over 64 KiB is answered 413, an unknown path 404, and a wrong method 405 with Allow;
// every error body is JSON {"error": "..."}, and every response carries Cache-Control: no-store.
func (a *Attester) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case PathAttest:
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", http.MethodPost)
				writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use POST")
				return
			}
			a.handleAttest(w, r)
		case PathJWKS:
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD")
				writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use GET")
				return
			}
			writeJSON(w, "application/jwk-set+json", http.StatusOK, a.PublicJWKS())
		default:
			writeError(w, http.StatusNotFound, "not found; the attester serves POST "+PathAttest+" and GET "+PathJWKS)
		}
	})
}

// handleAttest reads {"client_id", "jwk"}, refuses a jwk with private members before parsing it
// (ABCA-09 §7.1 step 5), and answers the signed attestation.
func (a *Attester) handleAttest(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", MaxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "could not read the request body")
		return
	}
	clientID, key, err := decodeAttestRequest(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	token, err := a.Attest(clientID, key)
	switch {
	case errors.Is(err, ErrClientID), errors.Is(err, ErrInstanceKey),
		errors.Is(err, ErrInstanceKeyPrivate), errors.Is(err, ErrInstanceKeySymmetric):
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "devattester: "))
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, "signing failed")
		return
	}
	writeJSON(w, "application/json", http.StatusOK, attestResponse{ClientAttestation: token})
}

// decodeAttestRequest parses one JSON object {"client_id": string, "jwk": object} with nothing
// after it. The messages are safe to return to the caller.
func decodeAttestRequest(body []byte) (string, *jose.JSONWebKey, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var req attestRequest
	if err := dec.Decode(&req); err != nil {
		return "", nil, errors.New(`body must be a JSON object {"client_id": string, "jwk": object}`)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "", nil, errors.New("body has data after the JSON object")
	}
	if req.ClientID == nil {
		return "", nil, errors.New("client_id is missing")
	}
	raw := bytes.TrimSpace(req.JWK)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil, errors.New("jwk is missing")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return "", nil, errors.New("jwk must be a JSON object")
	}
	for _, name := range privateJWKMembers {
		if _, ok := members[name]; ok {
			return "", nil, fmt.Errorf("jwk has the private member %q; send the public key only", name)
		}
	}
	var key jose.JSONWebKey
	if err := key.UnmarshalJSON(raw); err != nil {
		return "", nil, errors.New("jwk is not a valid JWK (RFC 7517)")
	}
	return *req.ClientID, &key, nil
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, "application/json", status, errorResponse{Error: msg})
}

func writeJSON(w http.ResponseWriter, contentType string, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"encoding failed"}`)
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
