package server

import (
	"encoding/json"
	"fmt"
	"net/http"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/labstack/echo/v4"

	"github.com/authz/authz/clientauth"
	"github.com/authz/authz/config"
	"github.com/authz/authz/metadata"
)

// privateKeyJWTAlgorithms are the algorithms fosite accepts for private_key_jwt (RFC 7523);
// fosite verifies RS* and ES* (and rejects HS*, which needs client_secret_jwt).
var privateKeyJWTAlgorithms = []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}

// buildMetadata renders the RFC 8414 document once: it is a pure function of the configuration
// and of the verifier's allow-lists (profile §3: metadata publishes exactly what is accepted).
func (s *Server) buildMetadata() ([]byte, error) {
	doc := metadata.Build(metadata.Input{
		Issuer:                     s.cfg.Issuer,
		AuthMethods:                config.AuthMethods,
		AttestationAlgorithms:      s.verifier.AttestationAlgorithms(),
		PoPAlgorithms:              s.verifier.PoPAlgorithms(),
		DPoPAlgorithms:             s.verifier.DPoPAlgorithms(),
		TokenAuthSigningAlgorithms: privateKeyJWTAlgorithms,
		GrantTypes:                 config.GrantTypes,
		Scopes:                     s.allScopes(),
		ChallengeEndpoint:          true,
		PAR:                        true,
	})
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("server: metadata: %w", err)
	}
	return b, nil
}

func (s *Server) allScopes() []string {
	seen := map[string]bool{}
	var scopes []string
	for _, c := range s.cfg.Clients {
		for _, sc := range c.Scopes {
			if !seen[sc] {
				seen[sc] = true
				scopes = append(scopes, sc)
			}
		}
	}
	return scopes
}

// handleMetadata serves RFC 8414 §3.
func (s *Server) handleMetadata(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Access-Control-Allow-Origin", "*")
	// Rebuilt per request: the attestation algorithm list follows the attesters (HS* only while
	// an attester with a long enough hmac_secret is trusted, profile §8), which change at run time.
	doc, err := s.buildMetadata()
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, "application/json", doc)
}

// handleJWKS serves the public keys that verify authz's access tokens (RFC 9068 §4).
func (s *Server) handleJWKS(c echo.Context) error {
	set := jose.JSONWebKeySet{}
	for _, k := range s.keys.published() {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Private.Public(), KeyID: k.KID, Algorithm: k.Alg, Use: "sig"})
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Access-Control-Allow-Origin", "*")
	return c.JSON(http.StatusOK, set)
}

// handleChallenge is the challenge endpoint (ABCA-09 §6.1, profile §5): unauthenticated POST,
// {"attestation_challenge": ...}, Cache-Control: no-store, and the same value in the header.
func (s *Server) handleChallenge(c echo.Context) error {
	v, err := s.verifier.IssueChallenge()
	if err != nil {
		s.log.ErrorContext(c.Request().Context(), "issuing a challenge failed", "error", err)
		writeJSON(c.Response(), http.StatusInternalServerError, errorBody{Error: "server_error"})
		return nil
	}
	c.Response().Header()[clientauth.HeaderClientAttestationChallenge] = []string{v}
	writeJSON(c.Response(), http.StatusOK, map[string]string{"attestation_challenge": v})
	return nil
}

// handleHealth is liveness: the process serves HTTP.
func (s *Server) handleHealth(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// handleReady is readiness: the database answers.
func (s *Server) handleReady(c echo.Context) error {
	if err := s.store.Ping(c.Request().Context()); err != nil {
		s.log.WarnContext(c.Request().Context(), "readiness: database unreachable", "error", err)
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "database": "unreachable"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok", "database": "ok"})
}
