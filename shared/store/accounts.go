package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/wasmwizard/wasmwizard/shared/apikey"
	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

// Tier is a row of tiers: the limits an account's tier grants.
type Tier struct {
	Name               string    `db:"name" json:"name"`
	RunsPerMinute      int       `db:"runs_per_minute" json:"runs_per_minute"`
	RunsPerDay         int       `db:"runs_per_day" json:"runs_per_day"`
	MaxConcurrentRuns  int       `db:"max_concurrent_runs" json:"max_concurrent_runs"`
	DefaultTimeoutMS   int       `db:"default_timeout_ms" json:"default_timeout_ms"`
	MaxTimeoutMS       int       `db:"max_timeout_ms" json:"max_timeout_ms"`
	DefaultMemoryMB    int       `db:"default_memory_mb" json:"default_memory_mb"`
	MaxMemoryMB        int       `db:"max_memory_mb" json:"max_memory_mb"`
	DefaultOutputBytes int       `db:"default_output_bytes" json:"default_output_bytes"`
	MaxOutputBytes     int       `db:"max_output_bytes" json:"max_output_bytes"`
	MaxModuleBytes     int64     `db:"max_module_bytes" json:"max_module_bytes"`
	QueueWeight        int       `db:"queue_weight" json:"queue_weight"`
	ReadsPerMinute     int       `db:"reads_per_minute" json:"reads_per_minute"`
	CreatedAt          time.Time `db:"created_at" json:"created_at"`
	UpdatedAt          time.Time `db:"updated_at" json:"updated_at"`

	// Upload limits (0: unlimited): module uploads per minute, live modules
	// held, and the bytes of those modules.
	UploadsPerMinute      int   `db:"uploads_per_minute" json:"uploads_per_minute"`
	MaxModules            int   `db:"max_modules" json:"max_modules"`
	MaxModuleStorageBytes int64 `db:"max_module_storage_bytes" json:"max_module_storage_bytes"`

	// File limits (bytes; migrations/00009_files.sql): the files of a job
	// request, what a job may write to its filesystem, what is kept of its
	// artifacts, and a module's asset trees (all mounts together).
	MaxInputBytes    int64 `db:"max_input_bytes" json:"max_input_bytes"`
	MaxFSBytes       int64 `db:"max_fs_bytes" json:"max_fs_bytes"`
	MaxArtifactBytes int64 `db:"max_artifact_bytes" json:"max_artifact_bytes"`
	MaxAssetBytes    int64 `db:"max_asset_bytes" json:"max_asset_bytes"`
}

// Account owns keys, modules and jobs.
type Account struct {
	ID            uuid.UUID `db:"id"`
	Name          string    `db:"name"`
	Tier          string    `db:"tier"`
	WebhookSecret string    `db:"webhook_secret"`
	// PreviousWebhookSecret still signs deliveries, as a second signature,
	// until PreviousSecretExpiresAt (a rotation's overlap).
	PreviousWebhookSecret   *string    `db:"previous_webhook_secret"`
	PreviousSecretExpiresAt *time.Time `db:"previous_secret_expires_at"`
	CreatedAt               time.Time  `db:"created_at"`
	UpdatedAt               time.Time  `db:"updated_at"`
	DisabledAt              *time.Time `db:"disabled_at"`
}

// APIKey is a stored key: never its plaintext.
type APIKey struct {
	ID         uuid.UUID  `db:"id"`
	AccountID  uuid.UUID  `db:"account_id"`
	Name       string     `db:"name"`
	Prefix     string     `db:"prefix"`
	Hash       []byte     `db:"hash"`
	CreatedAt  time.Time  `db:"created_at"`
	LastUsedAt *time.Time `db:"last_used_at"`
	RevokedAt  *time.Time `db:"revoked_at"`
}

// Principal is who a request acts as, resolved from an API key.
type Principal struct {
	KeyID     uuid.UUID
	AccountID uuid.UUID
	Tier      Tier
	// LastUsedAt is when the key's use was last recorded (see TouchKey).
	LastUsedAt *time.Time
}

// GetTier returns a tier by name.
func (s *Store) GetTier(ctx context.Context, name string) (Tier, error) {
	var t Tier
	err := s.db.GetContext(ctx, &t, `SELECT * FROM tiers WHERE name = $1`, name)
	if errors.Is(err, sql.ErrNoRows) {
		return Tier{}, apperr.New(apperr.NotFound, "tier %q does not exist", name)
	}
	return t, wrapDB(err, "get tier")
}

// MaxTimeoutMS is the largest max_timeout_ms a tier may have (an hour).
const MaxTimeoutMS = 3_600_000

// ListTiers returns all tiers by name.
func (s *Store) ListTiers(ctx context.Context) ([]Tier, error) {
	var ts []Tier
	err := s.db.SelectContext(ctx, &ts, `SELECT * FROM tiers ORDER BY name`)
	return ts, wrapDB(err, "list tiers")
}

// Actor says who did something, for audit rows.
type Actor struct {
	Name      string // "admin", "cli", "key:<id>", "worker", "reconciler", "anonymous"
	RequestID string
}

// CreateAccount creates an account on an existing tier with a fresh webhook
// signing secret.
func (s *Store) CreateAccount(ctx context.Context, actor Actor, name, tier string) (Account, error) {
	secret, err := webhookSecret()
	if err != nil {
		return Account{}, err
	}
	a := Account{ID: newID(), Name: name, Tier: tier, WebhookSecret: secret}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return Account{}, wrapDB(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	var exists bool
	if err := tx.GetContext(ctx, &exists, `SELECT EXISTS (SELECT 1 FROM tiers WHERE name = $1)`, tier); err != nil {
		return Account{}, wrapDB(err, "check tier")
	}
	if !exists {
		return Account{}, apperr.Validation(apperr.FieldError{Field: "tier", Message: fmt.Sprintf("tier %q does not exist", tier)})
	}
	err = tx.GetContext(ctx, &a, `
		INSERT INTO accounts (id, name, tier, webhook_secret) VALUES ($1, $2, $3, $4)
		RETURNING *`, a.ID, a.Name, a.Tier, a.WebhookSecret)
	if err != nil {
		return Account{}, wrapDB(err, "insert account")
	}
	if err := audit(ctx, tx, Event{AccountID: &a.ID, Actor: actor, Action: "account.created",
		SubjectType: "account", SubjectID: a.ID.String(), Data: map[string]any{"name": name, "tier": tier}}); err != nil {
		return Account{}, err
	}
	return a, wrapDB(tx.Commit(), "commit account")
}

// GetAccount returns an account by ID.
func (s *Store) GetAccount(ctx context.Context, id uuid.UUID) (Account, error) {
	var a Account
	err := s.db.GetContext(ctx, &a, `SELECT * FROM accounts WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, apperr.New(apperr.NotFound, "account %s does not exist", id)
	}
	return a, wrapDB(err, "get account")
}

// ListAccounts returns every account, oldest first.
func (s *Store) ListAccounts(ctx context.Context) ([]Account, error) {
	var as []Account
	err := s.db.SelectContext(ctx, &as, `SELECT * FROM accounts ORDER BY id`)
	return as, wrapDB(err, "list accounts")
}

// CreateKey mints a key for an account and returns the stored row with the
// plaintext, which is not kept anywhere.
func (s *Store) CreateKey(ctx context.Context, actor Actor, accountID uuid.UUID, name string) (APIKey, string, error) {
	k, err := apikey.Generate()
	if err != nil {
		return APIKey{}, "", err
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return APIKey{}, "", wrapDB(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	var row APIKey
	err = tx.GetContext(ctx, &row, `
		INSERT INTO api_keys (id, account_id, name, prefix, hash)
		SELECT $1, id, $3, $4, $5 FROM accounts WHERE id = $2
		RETURNING *`, newID(), accountID, name, k.Prefix, k.Hash[:])
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, "", apperr.New(apperr.NotFound, "account %s does not exist", accountID)
	}
	if err != nil {
		return APIKey{}, "", wrapDB(err, "insert key")
	}
	if err := audit(ctx, tx, Event{AccountID: &accountID, Actor: actor, Action: "key.created",
		SubjectType: "api_key", SubjectID: row.ID.String(), Data: map[string]any{"name": name, "prefix": k.Prefix}}); err != nil {
		return APIKey{}, "", err
	}
	if err := tx.Commit(); err != nil {
		return APIKey{}, "", wrapDB(err, "commit key")
	}
	return row, k.Plaintext, nil
}

// LookupKey resolves a presented key to its principal. A revoked key, a key
// of a disabled account and an unknown key all answer unauthorized alike.
func (s *Store) LookupKey(ctx context.Context, presented string) (Principal, error) {
	unauthorized := apperr.New(apperr.Unauthorized, "the API key is not valid")
	if !apikey.WellFormed(presented) {
		return Principal{}, unauthorized
	}
	hash := apikey.Hash(presented)
	var row struct {
		KeyID      uuid.UUID  `db:"key_id"`
		AccountID  uuid.UUID  `db:"account_id"`
		Hash       []byte     `db:"hash"`
		LastUsedAt *time.Time `db:"last_used_at"`
		Tier
	}
	err := s.getPrepared(ctx, nil, &row, `
		SELECT k.id AS key_id, k.account_id, k.hash, k.last_used_at, t.name, `+tierColumns+`, t.created_at, t.updated_at
		FROM api_keys k
		JOIN accounts a ON a.id = k.account_id
		JOIN tiers t ON t.name = a.tier
		WHERE k.hash = $1 AND k.revoked_at IS NULL AND a.disabled_at IS NULL`, hash[:])
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, unauthorized
	}
	if err != nil {
		return Principal{}, wrapDB(err, "look up key")
	}
	if !apikey.Equal(row.Hash, hash[:]) {
		return Principal{}, unauthorized
	}
	return Principal{KeyID: row.KeyID, AccountID: row.AccountID, Tier: row.Tier, LastUsedAt: row.LastUsedAt}, nil
}

// KeyUseResolution is how precisely last_used_at follows a key's use: it is
// written at most once per key in that time, so that recording use costs
// no write per request.
const KeyUseResolution = time.Minute

// TouchKey records that a key was used now, unless that was recorded less
// than KeyUseResolution ago.
func (s *Store) TouchKey(ctx context.Context, keyID uuid.UUID) error {
	_, err := s.db.ExecContext(ctx, `UPDATE api_keys SET last_used_at = now()
		WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))`,
		keyID, KeyUseResolution.Seconds())
	return wrapDB(err, "record key use")
}

// webhookSecret returns a Standard Webhooks secret: "whsec_" + base64 of 32
// random bytes.
func webhookSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b), nil
}
