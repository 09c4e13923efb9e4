package clientauth

import "testing"

// BenchmarkAuthenticate measures the hot path: a reused attestation (verified-attestation cache)
// and a fresh one (key resolution and two signature checks).
func BenchmarkAuthenticate(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []Option
	}{{"cached_attestation", nil}, {"uncached", []Option{withoutCache()}}} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, nil, bc.opts...)
			req := e.request(headerWith(HeaderClientAttestation, e.attestation(nil), HeaderClientAttestationPoP, e.pop(nil)))
			client := e.client()
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.v.Authenticate(ctx, req, client); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
