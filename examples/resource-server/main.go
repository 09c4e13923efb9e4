// Command resource-server is an example API protected by authz's access tokens through the
// resource package: GET /whoami answers who called — the client, the user, and, for attested
// clients, which attester vouched for which instance key. DPoP-bound tokens must come with a
// proof by their key, so a copied token is useless to anyone else.
//
//	go run ./examples/resource-server -issuer http://127.0.0.1:8080 -listen 127.0.0.1:8090
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/authz/authz/resource"
)

func main() {
	issuer := flag.String("issuer", "http://127.0.0.1:8080", "authz issuer")
	listen := flag.String("listen", "127.0.0.1:8090", "address to listen on")
	audience := flag.String("audience", "", "this API's identifier, required in the token's aud (RFC 9068 §4); "+
		"default: the issuer, the aud authz gives tokens requested without a resource indicator when tokens.default_audience is unset")
	flag.Parse()
	if *audience == "" {
		*audience = *issuer
	}

	v, err := resource.New(resource.Config{Issuer: *issuer, Audience: *audience, BaseURL: "http://" + *listen})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: *listen, Handler: Handler(v), ReadHeaderTimeout: 5 * time.Second}
	log.Printf("resource server on http://%s/whoami (tokens from %s)", *listen, *issuer)
	log.Fatal(srv.ListenAndServe())
}

// Handler is the example API.
func Handler(v *resource.Verifier) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /whoami", v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := resource.FromContext(r.Context())
		if !tok.HasScope("read") {
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="read"`)
			http.Error(w, `{"error":"insufficient_scope"}`, http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"client_id":   tok.ClientID,
			"sub":         tok.Subject,
			"scopes":      tok.Scopes,
			"dpop_bound":  tok.JKT != "",
			"attestation": tok.Attestation,
		})
	})))
	return mux
}
