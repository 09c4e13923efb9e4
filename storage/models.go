package storage

import "time"

// The GORM models. They are unexported: callers see Client, Attester, Decision, SigningKey and
// fosite requesters. Lists and JSON documents are TEXT columns holding JSON (portable across
// SQLite and PostgreSQL); times are UTC (dbTime).

// clientModel is a registered OAuth 2.0 client (table clients).
type clientModel struct {
	ID                          string `gorm:"primaryKey;size:255"`
	Description                 string `gorm:"type:text;not null"`
	SecretHash                  []byte
	RedirectURIs                string `gorm:"type:text;not null"` // JSON array
	GrantTypes                  string `gorm:"type:text;not null"` // JSON array
	ResponseTypes               string `gorm:"type:text;not null"` // JSON array
	Scopes                      string `gorm:"type:text;not null"` // JSON array
	Audience                    string `gorm:"type:text;not null"` // JSON array
	Public                      bool   `gorm:"not null"`
	TokenEndpointAuthMethod     string `gorm:"size:64;not null"`
	TokenEndpointAuthSigningAlg string `gorm:"size:16;not null"`
	JWKS                        []byte
	JWKSURI                     string    `gorm:"column:jwks_uri;type:text;not null"`
	Attesters                   string    `gorm:"type:text;not null"` // JSON array
	RequireAttestation          bool      `gorm:"not null"`
	Source                      string    `gorm:"size:16;not null"`
	CreatedAt                   time.Time `gorm:"not null"`
	UpdatedAt                   time.Time `gorm:"not null"`
}

func (clientModel) TableName() string { return "clients" }

// attesterModel is a trusted client attester (table attesters, ABCA-09 §9.7, profile §4).
type attesterModel struct {
	ID             string `gorm:"primaryKey;size:255"`
	Description    string `gorm:"type:text;not null"`
	JWKS           []byte
	JWKSURI        string `gorm:"column:jwks_uri;type:text;not null"`
	X5CRoots       string `gorm:"column:x5c_roots;type:text;not null"`
	JKUAllowlist   string `gorm:"column:jku_allowlist;type:text;not null"` // JSON array
	RequiredClaims []byte
	HMACSecret     string    `gorm:"column:hmac_secret;type:text;not null"`
	Enabled        bool      `gorm:"not null"`
	Source         string    `gorm:"size:16;not null"`
	CreatedAt      time.Time `gorm:"not null"`
	UpdatedAt      time.Time `gorm:"not null"`
}

func (attesterModel) TableName() string { return "attesters" }

// Kinds of oauth2_requests rows (fosite.md §3.3).
const (
	kindAccess  = "access"
	kindRefresh = "refresh"
	kindCode    = "code"
	kindPKCE    = "pkce"
)

// requestModel is one stored fosite request (table oauth2_requests): an authorization code,
// access token, refresh token or PKCE session. The key is (kind, sha256 hex of the token
// signature); request_id is the grant id shared by every token of one grant (fosite.md §3.3
// item 3), so it is indexed but not unique.
type requestModel struct {
	Kind             string     `gorm:"primaryKey;size:16"`
	Signature        string     `gorm:"primaryKey;size:64"`
	RequestID        string     `gorm:"size:255;not null;index"`
	ClientID         string     `gorm:"size:255;not null;index"`
	RequestedAt      time.Time  `gorm:"not null"`
	Scopes           string     `gorm:"type:text;not null"` // JSON array
	GrantedScopes    string     `gorm:"type:text;not null"` // JSON array
	Audiences        string     `gorm:"type:text;not null"` // JSON array
	GrantedAudiences string     `gorm:"type:text;not null"` // JSON array
	Form             string     `gorm:"type:text;not null"` // sanitised, URL-encoded
	Session          string     `gorm:"type:text;not null"` // JSON of the session
	Subject          string     `gorm:"size:255;not null"`
	Active           bool       `gorm:"not null"`
	AccessSignature  string     `gorm:"size:64;not null"` // refresh rows: sha256 hex of the access token signature
	InstanceJKT      string     `gorm:"column:instance_jkt;size:128;not null;index"`
	DPoPJKT          string     `gorm:"column:dpop_jkt;size:128;not null;index"`
	ExpiresAt        *time.Time `gorm:"index"` // NULL: never expires
}

func (requestModel) TableName() string { return "oauth2_requests" }

// parModel is a pushed authorization request (table par_requests, RFC 9126), keyed by the
// sha256 hex of its request_uri.
type parModel struct {
	Signature string    `gorm:"primaryKey;size:64"`
	ClientID  string    `gorm:"size:255;not null;index"`
	Request   string    `gorm:"type:text;not null"` // JSON parPayload
	ExpiresAt time.Time `gorm:"not null;index"`
}

func (parModel) TableName() string { return "par_requests" }

// replayModel is one used one-time value (table replay, ABCA-09 §11.1, profile §5), keyed by the
// sha256 hex of the caller's key so arbitrarily long jti values fit the index.
type replayModel struct {
	KeyHash   string    `gorm:"primaryKey;size:64"`
	ExpiresAt time.Time `gorm:"not null;index"`
}

func (replayModel) TableName() string { return "replay" }

// sharedSecretModel is a random secret shared by all replicas (table shared_secrets).
type sharedSecretModel struct {
	Name      string    `gorm:"primaryKey;size:64"`
	Value     []byte    `gorm:"not null"`
	CreatedAt time.Time `gorm:"not null"`
}

func (sharedSecretModel) TableName() string { return "shared_secrets" }

// signingKeyModel is an RFC 9068 access-token signing key (table signing_keys). ActiveSlot is 1
// for the one active key and NULL otherwise; its unique index makes "create the active key if
// none" a race-free INSERT ... ON CONFLICT DO NOTHING.
type signingKeyModel struct {
	KID        string    `gorm:"column:kid;primaryKey;size:128"`
	Alg        string    `gorm:"size:16;not null"`
	PrivateDER []byte    `gorm:"column:private_der;not null"` // PKCS #8
	ActiveSlot *int      `gorm:"uniqueIndex"`
	CreatedAt  time.Time `gorm:"not null"`
}

func (signingKeyModel) TableName() string { return "signing_keys" }

// decisionModel is one audit decision (table audit_decisions, profile §7).
type decisionModel struct {
	ID               int64     `gorm:"primaryKey;autoIncrement"`
	Time             time.Time `gorm:"not null;index"`
	Endpoint         string    `gorm:"size:255;not null"`
	ClientID         string    `gorm:"size:255;not null;index"`
	VerifiedClientID string    `gorm:"size:255;not null"`
	Attester         string    `gorm:"size:255;not null"`
	Resolution       string    `gorm:"size:32;not null"`
	InstanceJKT      string    `gorm:"column:instance_jkt;size:128;not null;index"`
	PoPMethod        string    `gorm:"column:pop_method;size:64;not null"`
	PoPAud           string    `gorm:"column:pop_aud;type:text;not null"`
	Challenge        string    `gorm:"size:16;not null"`
	Decision         string    `gorm:"size:16;not null"`
	Reason           string    `gorm:"size:128;not null"`
	TokenRequestID   string    `gorm:"size:255;not null"`
}

func (decisionModel) TableName() string { return "audit_decisions" }

// revokedInstanceModel is a revoked Client Instance Key (table revoked_instances).
type revokedInstanceModel struct {
	JKT       string    `gorm:"column:jkt;primaryKey;size:128"`
	Reason    string    `gorm:"type:text;not null"`
	RevokedAt time.Time `gorm:"not null"`
}

func (revokedInstanceModel) TableName() string { return "revoked_instances" }

// generationModel is the single-row trust-set generation counter (table generation, id 1).
type generationModel struct {
	ID    int   `gorm:"primaryKey;autoIncrement:false"`
	Value int64 `gorm:"not null"`
}

func (generationModel) TableName() string { return "generation" }

// allModels is the schema AutoMigrate creates, in dependency order.
var allModels = []any{
	&clientModel{},
	&attesterModel{},
	&requestModel{},
	&parModel{},
	&replayModel{},
	&sharedSecretModel{},
	&signingKeyModel{},
	&decisionModel{},
	&revokedInstanceModel{},
	&generationModel{},
}
