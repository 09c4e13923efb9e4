package server_test

import (
	"net/http"
	"testing"
)

// TestPprofBehindAdminToken: the profiling endpoints answer only with the admin token.
func TestPprofBehindAdminToken(t *testing.T) {
	env := newAdminServer(t)
	get := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, env.URL+"/debug/pprof/cmdline", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get(""); s != http.StatusUnauthorized {
		t.Fatalf("without token: %d, want 401", s)
	}
	if s := get("wrong-token-wrong-token-123"); s != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d, want 401", s)
	}
	if s := get(adminToken); s != http.StatusOK {
		t.Fatalf("admin token: %d, want 200", s)
	}
	// Without an admin token configured the endpoints do not exist.
	plain := newTestServer(t, nil)
	resp, err := http.Get(plain.URL + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("pprof without admin.token: %d, want 404", resp.StatusCode)
	}
}
