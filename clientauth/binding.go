package clientauth

import (
	"fmt"
	"sort"
)

// checkClientBinding runs the client binding of ABCA-09 §7.1 step 7 and §7.5 with profile §1, §4,
// §8, after the attestation and its proof verified.
func checkClientBinding(req Request, client ClientPolicy, att *attestation) error {
	if err := checkClientIDParam(req, att); err != nil {
		return err
	}
	if err := checkClientRecord(client, att); err != nil {
		return err
	}
	if err := checkAttesterAllowed(client, att); err != nil {
		return err
	}
	if err := checkRequiredClaims(att); err != nil {
		return err
	}
	return checkInstanceRevoked(client, att)
}

// checkModeAllowed implements profile §1 mode rules (ABCA-09 §7.3, §13.4, §13.5): normal mode
// only for attest_jwt_client_auth clients, combined mode only for attest_jwt_client_auth_dpop
// clients. A PoP header from an attest_jwt_client_auth_dpop client is refused (the stricter
// reading; docs/decisions.md), as is a DPoP proof without PoP from an attest_jwt_client_auth
// client (post -10 MUST).
func checkModeAllowed(mode string, client ClientPolicy) error {
	want := AuthMethodAttestJWT
	if mode == PoPMethodDPoP {
		want = AuthMethodAttestJWTDPoP
	}
	if client.AuthMethod != want {
		return fmt.Errorf("%w: %s requires token_endpoint_auth_method %s", ErrMethodNotAllowed, mode, want)
	}
	return nil
}

// checkClientIDParam implements ABCA-09 §7.1 step 7 and §7.5: a client_id parameter, when
// present, equals the attestation sub.
func checkClientIDParam(req Request, att *attestation) error {
	if req.ClientID != "" && req.ClientID != att.sub {
		return fmt.Errorf("%w: the client_id parameter differs from sub", ErrClientIDMismatch)
	}
	return nil
}

// checkClientRecord implements ABCA-09 §7.5: sub is the client the registry record describes.
func checkClientRecord(client ClientPolicy, att *attestation) error {
	if client.ClientID != att.sub {
		return fmt.Errorf("%w: sub is not the registered client", ErrClientIDMismatch)
	}
	return nil
}

// checkAttesterAllowed implements profile §4 (Appendix A item 13): the attester is on the
// client's attester list, or the list is empty.
func checkAttesterAllowed(client ClientPolicy, att *attestation) error {
	if !att.attester.allowedFor(client.AllowedAttesters) {
		return fmt.Errorf("%w: attester %s", ErrAttesterNotAllowed, att.attester.id)
	}
	return nil
}

// checkRequiredClaims implements profile §4, §8 required_claims: each required claim is present
// in the attestation with exactly the configured JSON value (canonical JSON equality; strings
// are case-sensitive).
func checkRequiredClaims(att *attestation) error {
	names := make([]string, 0, len(att.attester.requiredClaims))
	for name := range att.attester.requiredClaims {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		raw, ok := att.claims[name]
		if !ok {
			return fmt.Errorf("%w: claim %q is missing", ErrRequiredClaim, name)
		}
		got, err := canonicalJSON(raw)
		if err != nil || got != att.attester.requiredClaims[name] {
			return fmt.Errorf("%w: claim %q has another value", ErrRequiredClaim, name)
		}
	}
	return nil
}

// checkInstanceRevoked implements the admin revocation of instance keys (ClientPolicy.Revoked).
func checkInstanceRevoked(client ClientPolicy, att *attestation) error {
	if client.Revoked != nil && client.Revoked(att.jkt) {
		return fmt.Errorf("%w: instance key revoked by an administrator", ErrInstanceRevoked)
	}
	return nil
}
