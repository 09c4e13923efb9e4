package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigIsValid(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "config.example.yaml"), nil)
	if err != nil {
		t.Fatalf("config.example.yaml: %v", err)
	}
	if cfg.Issuer != "http://127.0.0.1:8080" || cfg.Database.Driver != "sqlite" || cfg.Attestation.PoPMaxAge != 60*time.Second {
		t.Fatalf("unexpected values: %+v", cfg)
	}
	// Every default of Default() is what the example file says.
	def := Default()
	if cfg.Attestation != def.Attestation || cfg.Audit != def.Audit || cfg.Tokens != def.Tokens || cfg.Log != def.Log || cfg.Database != def.Database || cfg.RateLimit != def.RateLimit || len(cfg.HTTP.CORSAllowedOrigins) != 0 {
		t.Fatalf("example file and Default() disagree:\nfile    %+v\ndefault %+v", cfg, def)
	}
}

func TestUnknownKeyNamesKeyAndLine(t *testing.T) {
	_, err := Parse([]byte("issuer: http://127.0.0.1:8080\nlisten: 127.0.0.1:8080\nattestation:\n  challenge_requird: true\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "challenge_requird") || !strings.Contains(err.Error(), "line 4") {
		t.Fatalf("err = %v, want the unknown key and its line", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	yaml := `
issuer: http://example.com
database: {driver: mysql, dsn: x}
attestation: {pop_max_age: 0s, clock_skew: 10m}
attesters:
  - id: a
  - id: a
    hmac_secret: short
clients:
  - client_id: c
    token_endpoint_auth_method: magic
    grant_types: [implicit]
  - client_id: p
    token_endpoint_auth_method: none
    grant_types: [client_credentials]
  - client_id: s
    token_endpoint_auth_method: client_secret_basic
    grant_types: [client_credentials]
users:
  - username: bob
    password_hash: plain
`
	_, err := Parse([]byte(yaml), nil)
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{
		"issuer", "database.driver", "attestation.pop_max_age", "attestation.clock_skew",
		"attesters[0] (a): needs at least one", "attesters[1] (a): duplicate id", "hmac_secret must be at least 32",
		"token_endpoint_auth_method \"magic\"", "grant type \"implicit\"", "public client (none) cannot use client_credentials",
		"client_secret of at least 16", "password_hash must be a bcrypt hash",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	env := []string{"AUTHZ_DATABASE_DSN=/tmp/x.db", "AUTHZ_ATTESTATION_CHALLENGE_REQUIRED=true", "AUTHZ_ATTESTATION_POP_MAX_AGE=2m", "AUTHZ_ADMIN_TOKEN=0123456789abcdef0123", "OTHER=1"}
	cfg, err := Parse([]byte("issuer: http://127.0.0.1:9000\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Database.DSN != "/tmp/x.db" || !cfg.Attestation.ChallengeRequired || cfg.Attestation.PoPMaxAge != 2*time.Minute || cfg.Admin.Token != "0123456789abcdef0123" {
		t.Fatalf("overrides not applied: %+v", cfg)
	}
	if _, err := Parse(nil, []string{"AUTHZ_ATTESTATION_POP_MAX_AGE=soon"}); err == nil || !strings.Contains(err.Error(), "AUTHZ_ATTESTATION_POP_MAX_AGE") {
		t.Fatalf("bad override: %v", err)
	}
	// dpop.nonce_required from the file and from the environment.
	cfg, err = Parse([]byte("issuer: http://127.0.0.1:9000\ndpop:\n  nonce_required: true\n"), nil)
	if err != nil || !cfg.DPoP.NonceRequired {
		t.Fatalf("dpop.nonce_required from the file: %v %+v", err, cfg.DPoP)
	}
	cfg, err = Parse([]byte("issuer: http://127.0.0.1:9000\n"), []string{"AUTHZ_DPOP_NONCE_REQUIRED=true"})
	if err != nil || !cfg.DPoP.NonceRequired {
		t.Fatalf("AUTHZ_DPOP_NONCE_REQUIRED: %v %+v", err, cfg.DPoP)
	}
	// Numbers: every scalar key, the rate limits included, can come from the environment.
	cfg, err = Parse([]byte("issuer: http://127.0.0.1:9000\n"), []string{"AUTHZ_RATE_LIMIT_PER_ADDRESS=5.5", "AUTHZ_RATE_LIMIT_PER_CLIENT_BURST=7"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RateLimit.PerAddress != 5.5 || cfg.RateLimit.PerClientBurst != 7 {
		t.Fatalf("numeric overrides not applied: %+v", cfg.RateLimit)
	}
	for _, bad := range []string{"AUTHZ_RATE_LIMIT_PER_ADDRESS=NaN", "AUTHZ_RATE_LIMIT_PER_ADDRESS=Inf", "AUTHZ_RATE_LIMIT_PER_ADDRESS=fast", "AUTHZ_RATE_LIMIT_PER_CLIENT_BURST=1.5", "AUTHZ_RATE_LIMIT_PER_CLIENT_BURST=99999999999999999999"} {
		name := bad[:strings.IndexByte(bad, '=')]
		if _, err := Parse([]byte("issuer: http://127.0.0.1:9000\n"), []string{bad}); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want an error naming %s", bad, err, name)
		}
	}
}

func TestValidateIssuer(t *testing.T) {
	for _, tc := range []struct {
		issuer string
		ok     bool
	}{
		{"https://as.example.com", true},
		{"https://as.example.com/tenant", true},
		{"http://127.0.0.1:8080", true},
		{"http://localhost:8080", true},
		{"http://as.example.com", false},
		{"https://as.example.com?x=1", false},
		{"https://as.example.com#f", false},
		{"as.example.com", false},
		{"ftp://as.example.com", false},
		{"https://as.example.com/", false},
		{"https://as.example.com/tenant/", false},
		{"https://as.example.com?", false},
		{"https://as.example.com#", false},
	} {
		if err := ValidateIssuer(tc.issuer); (err == nil) != tc.ok {
			t.Errorf("ValidateIssuer(%q) = %v, want ok=%v", tc.issuer, err, tc.ok)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("err = %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestValidateRedirectURI(t *testing.T) {
	for _, tc := range []struct {
		uri            string
		public, wantOK bool
	}{
		{"https://app.example.com/cb", false, true},
		{"https://app.example.com/cb?x=1", false, true},
		{"http://127.0.0.1:8090/callback", false, true},
		{"http://localhost/cb", true, true},
		{"http://[::1]:9/cb", true, true},
		{"com.example.app:/oauth2redirect", true, true},
		{"com.example.app:/oauth2redirect", false, false}, // private-use schemes are for native (public) apps
		{"myapp:/cb", true, false},                        // RFC 8252 §7.1: a reverse domain name
		{"http://app.example.com/cb", false, false},
		{"javascript:alert(document.domain)//", false, false},
		{"javascript:alert(1)", true, false},
		{"data:text/html,<script>alert(1)</script>", true, false},
		{"vbscript:msgbox", true, false},
		{"file:///etc/passwd", true, false},
		{"https://app.example.com/cb#", false, false},
		{"https://app.example.com/cb#frag", false, false},
		{"https://user:pw@app.example.com/cb", false, false},
		{"https:///cb", false, false},
		{"/relative/cb", false, false},
		{"", false, false},
	} {
		if err := ValidateRedirectURI(tc.uri, tc.public); (err == nil) != tc.wantOK {
			t.Errorf("ValidateRedirectURI(%q, public=%v) = %v, want ok=%v", tc.uri, tc.public, err, tc.wantOK)
		}
	}
}

func TestAdminTokenRules(t *testing.T) {
	for _, tc := range []struct {
		token string
		ok    bool
	}{
		{"", true}, // the admin API is disabled
		{"0123456789abcdef0123", true},
		{"short-token", false},
		{"aaaaaaaaaaaaaaaaaaaaaaaa", false},
		{"abababababababababab", false},
		{"abcdefgabcdefgabcdefg", false}, // 7 different characters
		{"abcdefghabcdefghabcd", true},
	} {
		cfg := Default()
		cfg.Admin.Token = tc.token
		err := cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("admin.token %q: Validate() = %v, want ok=%v", tc.token, err, tc.ok)
		}
	}
}

// TestComposeConfig: docker-compose.yml's configuration loads with the environment it sets and
// ships no demo clients, users or attesters (it is published on a network).
func TestComposeConfig(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "config.compose.yaml"), []string{
		"AUTHZ_ISSUER=http://127.0.0.1:8080", "AUTHZ_DATABASE_DSN=postgres://authz:pw@postgres:5432/authz?sslmode=disable",
		"AUTHZ_ADMIN_TOKEN=0123456789abcdef0123",
	})
	if err != nil {
		t.Fatalf("config.compose.yaml: %v", err)
	}
	if len(cfg.Clients) != 0 || len(cfg.Users) != 0 || len(cfg.Attesters) != 0 || cfg.Database.Driver != "postgres" {
		t.Fatalf("config.compose.yaml: %d clients, %d users, %d attesters, driver %q", len(cfg.Clients), len(cfg.Users), len(cfg.Attesters), cfg.Database.Driver)
	}
}

func TestUnknownEnv(t *testing.T) {
	got := UnknownEnv([]string{
		"AUTHZ_DATABASE_DSN=/x.db", "AUTHZ_ATTESTATION_POP_MAX_AGE=1m", "AUTHZ_DPOP_NONCE_REQUIRED=true", // keys
		"AUTHZ_TEST_POSTGRES_DSN=x", "AUTHZ_DB_PASSWORD=x", "HOME=/root", // not configuration
		"AUTHZ_DATABASE_URL=postgres://x", "AUTHZ_LISTNE=1", "AUTHZ_CLIENTS=x", "AUTHZ_DATABASE=x",
	})
	want := []string{
		"AUTHZ_CLIENTS is ignored: lists are set in the configuration file, not the environment",
		"AUTHZ_DATABASE is ignored: no configuration key has that name",
		"AUTHZ_DATABASE_URL is ignored: no configuration key has that name",
		"AUTHZ_LISTNE is ignored: no configuration key has that name",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("UnknownEnv = %q, want %q", got, want)
	}
}

func TestListenPort(t *testing.T) {
	for _, tc := range []struct {
		listen string
		ok     bool
	}{
		{"127.0.0.1:8080", true}, {"0.0.0.0:0", true}, {"[::1]:65535", true},
		{"127.0.0.1:99999", false}, {"127.0.0.1:http", false}, {"127.0.0.1", false}, {"127.0.0.1:-1", false},
	} {
		cfg := Default()
		cfg.Listen = tc.listen
		if err := cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("listen %q: Validate() = %v, want ok=%v", tc.listen, err, tc.ok)
		}
	}
}
