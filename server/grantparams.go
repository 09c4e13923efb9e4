package server

import (
	"context"

	"github.com/ory/fosite"
)

// grantParams runs before fosite's grant handlers and refuses a token request that lacks a
// parameter its grant requires with invalid_request (RFC 6749 §5.2, "missing a required
// parameter"); fosite v0.49 answers such a request invalid_grant, as if the code or refresh token
// had been sent and found wanting. It never handles a grant itself (ErrUnknownRequest).
type grantParams struct{}

var _ fosite.TokenEndpointHandler = grantParams{}

// requiredGrantParams are the parameters RFC 6749 marks REQUIRED per grant type, beyond
// grant_type and client authentication: §4.1.3 (code) and §6 (refresh_token).
var requiredGrantParams = map[string][]string{
	"authorization_code": {"code"},
	"refresh_token":      {"refresh_token"},
}

func (grantParams) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return false }

func (grantParams) CanHandleTokenEndpointRequest(_ context.Context, req fosite.AccessRequester) bool {
	for grant := range requiredGrantParams {
		if req.GetGrantTypes().ExactOne(grant) {
			return true
		}
	}
	return false
}

func (grantParams) HandleTokenEndpointRequest(_ context.Context, req fosite.AccessRequester) error {
	form := req.GetRequestForm()
	for grant, params := range requiredGrantParams {
		if !req.GetGrantTypes().ExactOne(grant) {
			continue
		}
		for _, p := range params {
			if form.Get(p) == "" {
				return fosite.ErrInvalidRequest.WithHintf("The '%s' parameter is required with grant_type %s.", p, grant)
			}
		}
	}
	return fosite.ErrUnknownRequest
}

func (grantParams) PopulateTokenEndpointResponse(context.Context, fosite.AccessRequester, fosite.AccessResponder) error {
	return fosite.ErrUnknownRequest
}
