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
	"github.com/lib/pq"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

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

// ListAccountsPage returns a page of accounts, newest first.
func (s *Store) ListAccountsPage(ctx context.Context, cursor string, limit int) (Page[Account], error) {
	after, err := cursorOrMax(cursor)
	if err != nil {
		return Page[Account]{}, err
	}
	var as []Account
	err = s.db.SelectContext(ctx, &as, `SELECT * FROM accounts WHERE id < $1 ORDER BY id DESC LIMIT $2`, after, limit+1)
	if err != nil {
		return Page[Account]{}, wrapDB(err, "list accounts")
	}
	return paginate(as, limit, func(a Account) uuid.UUID { return a.ID }), nil
}

// UpdateAccountTier moves an account to another existing tier.
func (s *Store) UpdateAccountTier(ctx context.Context, actor Actor, id uuid.UUID, tier string) (Account, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return Account{}, wrapDB(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	var prev string
	if err := tx.GetContext(ctx, &prev, `SELECT tier FROM accounts WHERE id = $1 FOR UPDATE`, id); errors.Is(err, sql.ErrNoRows) {
		return Account{}, apperr.New(apperr.NotFound, "account %s does not exist", id)
	} else if err != nil {
		return Account{}, wrapDB(err, "read account")
	}
	var a Account
	err = tx.GetContext(ctx, &a, `UPDATE accounts SET tier = $2, updated_at = now() WHERE id = $1 RETURNING *`, id, tier)
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "23503" {
		return Account{}, apperr.Validation(apperr.FieldError{Field: "tier", Message: fmt.Sprintf("tier %q does not exist", tier)})
	}
	if err != nil {
		return Account{}, wrapDB(err, "update account")
	}
	if err := audit(ctx, tx, Event{AccountID: &id, Actor: actor, Action: "account.tier_changed", SubjectType: "account",
		SubjectID: id.String(), Data: map[string]any{"from": prev, "to": tier}}); err != nil {
		return Account{}, err
	}
	return a, wrapDB(tx.Commit(), "commit account")
}

// WebhookSecrets returns the account's signing secrets: the current one and,
// during a rotation's overlap, the previous one.
func (s *Store) WebhookSecrets(ctx context.Context, accountID uuid.UUID) ([]string, error) {
	var row struct {
		Current  string     `db:"webhook_secret"`
		Previous *string    `db:"previous_webhook_secret"`
		Expires  *time.Time `db:"previous_secret_expires_at"`
	}
	err := s.db.GetContext(ctx, &row, `
		SELECT webhook_secret, previous_webhook_secret, previous_secret_expires_at FROM accounts WHERE id = $1`, accountID)
	if err != nil {
		return nil, wrapDB(err, "webhook secrets")
	}
	out := []string{row.Current}
	if row.Previous != nil && row.Expires != nil && time.Now().Before(*row.Expires) {
		out = append(out, *row.Previous)
	}
	return out, nil
}

// RotateWebhookSecret gives the account a new secret; the old one keeps
// signing (as a second signature) until overlap has passed.
func (s *Store) RotateWebhookSecret(ctx context.Context, actor Actor, accountID uuid.UUID, overlap time.Duration) (string, error) {
	secret, err := webhookSecret()
	if err != nil {
		return "", err
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return "", wrapDB(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `
		UPDATE accounts SET previous_webhook_secret = webhook_secret, webhook_secret = $2,
			previous_secret_expires_at = now() + make_interval(secs => $3), updated_at = now()
		WHERE id = $1`, accountID, secret, overlap.Seconds())
	if err != nil {
		return "", wrapDB(err, "rotate secret")
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return "", apperr.New(apperr.NotFound, "account %s does not exist", accountID)
	}
	if err := audit(ctx, tx, Event{AccountID: &accountID, Actor: actor, Action: "account.webhook_secret_rotated",
		SubjectType: "account", SubjectID: accountID.String(), Data: map[string]any{"overlap_seconds": int(overlap.Seconds())}}); err != nil {
		return "", err
	}
	return secret, wrapDB(tx.Commit(), "commit rotation")
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
