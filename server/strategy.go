package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/ory/fosite"

	"github.com/authz/authz/clientauth"
	"github.com/authz/authz/storage"
)

func isAttestationMethod(m string) bool {
	return m == clientauth.AuthMethodAttestJWT || m == clientauth.AuthMethodAttestJWTDPoP
}

// claimedClientID is the client a request claims to be, before anything is verified: the
// client_id parameter, else the HTTP Basic user, else the attestation's unverified sub.
func claimedClientID(r *http.Request, form url.Values) string {
	if id := form.Get("client_id"); id != "" {
		return id
	}
	if user, _, ok := r.BasicAuth(); ok {
		if u, err := url.QueryUnescape(user); err == nil && u != "" {
			return u
		}
	}
	if assertion := form.Get("client_assertion"); assertion != "" {
		return "" // fosite's private_key_jwt path resolves the client from the assertion itself
	}
	return clientauth.ClaimedClientID(r.Header)
}

// otherCredentials reports whether the request carries a client credential besides attestation
// (RFC 6749 §2.3: a client must not use more than one authentication method per request).
func otherCredentials(r *http.Request, form url.Values) bool {
	return r.Header.Get("Authorization") != "" || form.Has("client_secret") ||
		form.Has("client_assertion") || form.Has("client_assertion_type")
}

// authenticateClient is authz's fosite.ClientAuthenticationStrategy. It routes by the client's
// registered token_endpoint_auth_method (profile §1): attestation methods are verified by
// clientauth (ABCA-09 §7.1–§7.3, §7.5); every other method goes to fosite's default strategy, and
// attestation headers sent alongside are verified as an additional signal (ABCA-09 §7.6).
// The findings go into the request's outcome for the audit record and the response headers.
func (s *Server) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	out := outcomeFrom(ctx)
	if out == nil { // a fosite path we do not route through our handlers: be strict
		ctx, out = withOutcome(ctx, r.URL.Path)
	}
	out.authRan = true
	hasAttestation := clientauth.HasAttestation(r.Header)
	id := claimedClientID(r, form)
	out.claimedClientID = id

	var client *storage.Client
	if id != "" {
		c, err := s.clients.get(ctx, s.store, id, s.defaultAudience())
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return nil, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
		default:
			client = c
		}
	}
	out.client = client
	if client == nil {
		if hasAttestation {
			out.auditDue = true
			out.attestation = clientauth.Unverified(r.Header) // for the audit record only
			if err := clientauth.CheckHeaderShape(r.Header); err != nil {
				out.authErr = err
			} else if id == "" {
				out.authErr = fmt.Errorf("%w: its sub could not be read", clientauth.ErrAttestationMalformed)
			} else {
				out.authErr = fmt.Errorf("%w: client %q is not registered", clientauth.ErrUnknownClient, id)
			}
			return nil, clientauth.ToRFC6749(out.authErr, false)
		}
		if id == "" && !form.Has("client_assertion") {
			// RFC 6749 §5.2: "no client authentication included" is invalid_client at every
			// endpoint (fosite says invalid_request at the token and revocation endpoints).
			return nil, fosite.ErrInvalidClient.WithHint("The request carries no client authentication or client_id (RFC 6749 §2.3).")
		}
		c, err := s.defaultAuth(ctx, r, form)
		if err != nil {
			return nil, err
		}
		if id != "" {
			return nil, s.refuseOtherClient(out, id, c.GetID())
		}
		// private_key_jwt without client_id: fosite found the client through the assertion,
		// so its policy is known only now (require_attestation, profile §1).
		rec, err := s.clients.get(ctx, s.store, c.GetID(), s.defaultAudience())
		switch {
		case errors.Is(err, storage.ErrNotFound): // removed meanwhile
			return nil, fosite.ErrInvalidClient.WithHint("The client is not registered.").WithWrap(err)
		case err != nil:
			return nil, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
		}
		out.claimedClientID, out.client = rec.ID, rec
		if rec.RequireAttestation {
			out.auditDue, out.asSignal = true, true
			out.authErr = fmt.Errorf("%w: client %q must send attestation headers", clientauth.ErrAttestationRequired, rec.ID)
			return nil, clientauth.ToRFC6749(out.authErr, true)
		}
		return c, nil
	}

	method := client.TokenEndpointAuthMethod
	if isAttestationMethod(method) {
		out.auditDue = true
		if otherCredentials(r, form) {
			out.attestation = clientauth.Unverified(r.Header) // for the audit record only
			out.authErr = fmt.Errorf("%w: attestation and another client credential in one request", clientauth.ErrTwoMethods)
			return nil, clientauth.ToRFC6749(out.authErr, false)
		}
		if err := s.verifyAttestation(ctx, r, form, client, method, out); err != nil {
			return nil, clientauth.ToRFC6749(err, false)
		}
		return client, nil
	}

	// Another method authenticates; attestation, if sent or required, is an additional signal.
	if hasAttestation || client.RequireAttestation {
		out.auditDue = true
		out.asSignal = true
	}
	c, err := s.defaultAuth(ctx, r, form)
	if err != nil {
		return nil, err
	}
	if c.GetID() != client.ID {
		return nil, s.refuseOtherClient(out, client.ID, c.GetID())
	}
	if !out.asSignal {
		return c, nil
	}
	if !hasAttestation {
		out.authErr = fmt.Errorf("%w: client %q must send attestation headers", clientauth.ErrAttestationRequired, client.ID)
		return nil, clientauth.ToRFC6749(out.authErr, true)
	}
	if err := s.verifyAttestation(ctx, r, form, client, clientauth.AuthMethodAttestJWT, out); err != nil {
		return nil, clientauth.ToRFC6749(err, true)
	}
	return c, nil
}

// refuseOtherClient answers a request whose credentials (HTTP Basic, a client assertion)
// authenticate another client than the one it names with client_id. fosite would issue the
// token to the authenticated client, but the policy (require_attestation, the audit record) was
// chosen for the named one, so honouring either would let a client step around its own policy.
// RFC 6749 §2.3 leaves the case open; authz refuses it (decision S21).
func (s *Server) refuseOtherClient(out *outcome, named, authenticated string) error {
	err := fmt.Errorf("%w: client_id %q but the credentials authenticate client %q", clientauth.ErrClientIDMismatch, named, authenticated)
	if out.auditDue {
		out.authErr = err
	}
	return fosite.ErrInvalidRequest.WithHint("The client_id parameter names another client than the one the credentials authenticate.").WithWrap(err)
}

// jwtBearerAssertionType is the RFC 7523 §2.2 client_assertion_type.
const jwtBearerAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// defaultAuth runs fosite's own strategy (never AuthenticateClient: that would recurse).
// A replayed private_key_jwt assertion is a failed client authentication (RFC 7523 §3, RFC 6749
// §5.2 invalid_client), not fosite's own "jti_known" code.
func (s *Server) defaultAuth(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	c, err := s.provider.DefaultClientAuthenticationStrategy(ctx, r, form)
	if errors.Is(err, fosite.ErrJTIKnown) {
		return nil, fosite.ErrInvalidClient.WithHint("The client assertion was already used.").WithWrap(err)
	}
	// fosite passes an invalid assertion's JWT validation error through as a bare error such
	// as "Token is expired" (client_authentication.go), which would become a 500.
	var rfc *fosite.RFC6749Error
	if err != nil && !errors.As(err, &rfc) {
		return nil, fosite.ErrInvalidClient.WithHint("The client assertion is invalid (expired, not yet valid, or badly signed).").WithWrap(err)
	}
	// RFC 7523 §3.2: a client assertion that is not valid is invalid_client; fosite says
	// invalid_request when it cannot find the assertion's key (an unknown kid, say).
	if err != nil && errors.Is(err, fosite.ErrInvalidRequest) && form.Get("client_assertion") != "" &&
		form.Get("client_assertion_type") == jwtBearerAssertionType {
		return nil, fosite.ErrInvalidClient.WithHint(rfc.HintField).WithWrap(err)
	}
	return c, err
}

// verifyAttestation runs the verifier for client with the given (registered or signal) method.
func (s *Server) verifyAttestation(ctx context.Context, r *http.Request, form url.Values, client *storage.Client, method string, out *outcome) error {
	res, err := s.verifier.Authenticate(ctx, clientauth.Request{
		Header:   r.Header,
		Method:   r.Method,
		URL:      s.endpointURL(r.URL.Path),
		ClientID: form.Get("client_id"),
	}, clientauth.ClientPolicy{
		ClientID:         client.ID,
		AuthMethod:       method,
		AllowedAttesters: client.Attesters,
		Revoked:          s.trust.isRevoked,
	})
	out.attestation = res
	if err != nil {
		out.authErr = err
		return err
	}
	if out.replayNow {
		for _, e := range res.Replay {
			if err := s.store.MarkReplay(ctx, e.Key, e.ExpiresAt); err != nil {
				if errors.Is(err, storage.ErrReplayed) {
					out.authErr = errors.Join(clientauth.ErrReplay, err)
					return out.authErr
				}
				return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
			}
		}
	}
	return nil
}

// endpointURL is the absolute URL of path under the issuer: DPoP htu is compared with it, never
// with the Host a request arrived on (profile §8 "Replicas").
func (s *Server) endpointURL(path string) string {
	return strings.TrimSuffix(s.cfg.Issuer, "/") + path
}
