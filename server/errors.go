package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/ory/fosite"

	"github.com/authz/authz/clientauth"
	"github.com/authz/authz/dpop"
	"github.com/authz/authz/storage"
)

// errorBody is the RFC 6749 §5.2 error response.
type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// toRFC6749 picks the error a client sees. A client-authentication failure recorded in the outcome
// wins over whatever fosite made of it (fosite re-wraps strategy errors at PAR and hides them at
// revocation, fosite.md §1.4); everything else goes through fosite's own conversion.
func toRFC6749(out *outcome, err error) *fosite.RFC6749Error {
	if out != nil && out.authErr != nil {
		var rfc *fosite.RFC6749Error
		if errors.As(out.authErr, &rfc) {
			return rfc
		}
		return clientauth.ToRFC6749(out.authErr, out.asSignal)
	}
	return fosite.ErrorToRFC6749Error(err)
}

// writeOAuthError is the single place that writes RFC 6749 §5.2 error responses for the token,
// PAR, introspection, revocation and challenge endpoints: JSON body, Cache-Control: no-store,
// WWW-Authenticate on 401 (RFC 6749 §5.2), and a fresh attestation challenge (ABCA-09 §6.2, §7.4;
// profile §2, §5), also as DPoP-Nonce when the error is use_dpop_nonce (RFC 9449 §8).
func (s *Server) writeOAuthError(rw http.ResponseWriter, r *http.Request, out *outcome, err error) {
	rfc := toRFC6749(out, err)
	status := rfc.CodeField
	if status == 0 {
		status = http.StatusBadRequest
	}
	if status >= 500 && (errors.Is(err, fosite.ErrSerializationFailure) || errors.Is(err, fosite.ErrInvalidatedAuthorizeCode)) {
		// A lost race on a one-time grant (two redemptions of one code): the grant is gone,
		// which is invalid_grant, not a server fault.
		rfc = fosite.ErrInvalidGrant.WithHint("The grant was used by a concurrent request.").WithWrap(err)
		status = rfc.CodeField
	} else if status >= 500 && (errors.Is(err, storage.ErrUnavailable) || s.databaseDown(r.Context())) {
		// Fail fast and say why: nothing was issued (the replay, token and audit rows commit
		// together or not at all), and the client may retry.
		rfc = fosite.ErrTemporarilyUnavailable.WithHint("The database is unavailable; retry later.").WithWrap(err)
		status = http.StatusServiceUnavailable
		rw.Header().Set("Retry-After", "5")
	}
	h := rw.Header()
	if status == http.StatusUnauthorized {
		// RFC 6749 §5.2: the scheme the client used; the method name where it used no HTTP
		// authentication scheme (attestation, as profile §2 says, and RFC 7523 assertions).
		scheme := "Basic"
		switch {
		case out != nil && out.client != nil && isAttestationMethod(out.client.TokenEndpointAuthMethod):
			scheme = out.client.TokenEndpointAuthMethod
		case out != nil && out.client == nil && clientauth.HasAttestation(r.Header):
			scheme = clientauth.AuthMethodAttestJWT
		case r.Header.Get("Authorization") == "" && r.PostForm.Get("client_assertion") != "":
			scheme = "private_key_jwt"
		}
		h.Set("WWW-Authenticate", scheme+` realm="authz", error="`+rfc.ErrorField+`"`)
	}
	if s.verifier.ChallengesEnabled() || rfc.ErrorField == "use_attestation_challenge" || rfc.ErrorField == "use_dpop_nonce" {
		s.setChallengeHeaders(rw, rfc.ErrorField == "use_dpop_nonce" || s.dpopNonceDue(r, out))
	}
	if status >= 500 {
		cause := ""
		if err != nil {
			cause = err.Error()
		}
		s.log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "error", rfc.ErrorField, "debug", rfc.DebugField, "cause", cause)
	} else {
		s.log.InfoContext(r.Context(), "request refused", "path", r.URL.Path, "error", rfc.ErrorField, "reason", reasonOf(out, err),
			"client_id", claimedClientOf(out), "remote", connAddr(r))
	}
	writeJSON(rw, status, errorBody{Error: rfc.ErrorField, Description: rfc.GetDescription()})
}

// databaseDown pings the database with a short deadline.
func (s *Server) databaseDown(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	return s.store.Ping(ctx) != nil
}

// setChallengeHeaders puts a fresh challenge in OAuth-Client-Attestation-Challenge (ABCA-09 §6.2)
// and, for combined mode, the same value in DPoP-Nonce (profile §2).
func (s *Server) setChallengeHeaders(rw http.ResponseWriter, withDPoPNonce bool) {
	if !s.verifier.ChallengesEnabled() {
		return
	}
	c, err := s.verifier.IssueChallenge()
	if err != nil {
		s.log.Error("issuing a challenge failed", "error", err)
		return
	}
	rw.Header()[clientauth.HeaderClientAttestationChallenge] = []string{c}
	if withDPoPNonce {
		rw.Header()[dpop.HeaderNonce] = []string{c}
	}
}

func combinedMode(out *outcome) bool {
	if out == nil {
		return false
	}
	if out.attestation != nil && out.attestation.PoPMethod == clientauth.PoPMethodDPoP {
		return true
	}
	return out.client != nil && out.client.TokenEndpointAuthMethod == clientauth.AuthMethodAttestJWTDPoP
}

// claimedClientOf is the client a refused request named (client_id, or the attestation's sub),
// for the log line; the client is not authenticated.
func claimedClientOf(out *outcome) string {
	if out == nil {
		return ""
	}
	if out.client != nil {
		return out.client.ID
	}
	return truncateRunes(out.claimedClientID, 128) // the request's words: bounded in the log
}

func reasonOf(out *outcome, err error) string {
	if out != nil && out.authErr != nil {
		return clientauth.Reason(out.authErr)
	}
	if err == nil {
		return "ok"
	}
	return fosite.ErrorToRFC6749Error(err).ErrorField
}

// writeJSON writes v with the headers every OAuth JSON response carries (RFC 6749 §5.1).
func writeJSON(rw http.ResponseWriter, status int, v any) {
	h := rw.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	rw.WriteHeader(status)
	if err := json.NewEncoder(rw).Encode(v); err != nil {
		slog.Debug("writing a JSON response failed", "error", err)
	}
}
