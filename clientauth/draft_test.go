package clientauth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readTestdata(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	return strings.TrimSpace(string(b)), err
}

// TestDraftExamples runs the examples of ABCA-09 §4 and §5.1 (testdata/README.md). The
// attester key of the §4 example is not published, so the attestation can only be rejected as
// unknown; the §5.1 PoP verifies with the example cnf key but uses nonce and lacks the iat that
// -09 requires, so it must be rejected for the missing iat.
func TestDraftExamples(t *testing.T) {
	att, err := readTestdata("draft09-example-attestation.jwt")
	if err != nil {
		t.Fatal(err)
	}
	pop, err := readTestdata("draft09-example-pop.jwt")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil) // an attester whose key cannot be the example's
	client := ClientPolicy{ClientID: "https://client.example.com", AuthMethod: AuthMethodAttestJWT}

	t.Run("attestation_unknown_attester", func(t *testing.T) {
		res, err := e.v.Authenticate(t.Context(), e.request(headerWith(HeaderClientAttestation, att, HeaderClientAttestationPoP, pop)), client)
		checkErr(t, err, ErrAttestationUnknownKey)
		if res.ClientID != "https://client.example.com" || res.InstanceJKT == "" || res.Resolution != ResolutionKID || res.Attester != "" {
			t.Errorf("audit fields = %+v", res)
		}
	})

	claims, err := unverifiedClaims(att)
	if err != nil {
		t.Fatal(err)
	}
	cnf, _, err := checkCnfKey(claims["cnf"])
	if err != nil {
		t.Fatalf("example cnf key: %v", err)
	}
	t.Run("pop_rejected_for_missing_iat", func(t *testing.T) {
		res := &Result{}
		_, err := e.v.verifyPoP(pop, cnf, res)
		checkErr(t, err, ErrPoPClaims)
		if !strings.Contains(err.Error(), "iat") {
			t.Errorf("error does not name iat: %v", err)
		}
	})
	t.Run("pop_signature_verifies_with_example_cnf", func(t *testing.T) {
		p, err := e.v.parsePoPJWS(pop)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkPoPAlg(p.alg, cnf); err != nil {
			t.Fatal(err)
		}
		if _, err := verifyPoPSignature(p, cnf); err != nil {
			t.Fatalf("example PoP does not verify with the example cnf key: %v", err)
		}
	})
	t.Run("pop_rejected_with_another_key", func(t *testing.T) {
		other := publicJWK(t, e.instKey, "")
		_, err := e.v.verifyPoP(pop, &other, &Result{})
		checkErr(t, err, ErrPoPSignature)
	})
}
