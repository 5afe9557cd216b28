package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

// Delivery is a webhook delivery: one per terminal job with a webhook_url.
type Delivery struct {
	ID            uuid.UUID  `db:"id"`
	JobID         uuid.UUID  `db:"job_id"`
	AccountID     uuid.UUID  `db:"account_id"`
	URL           string     `db:"url"`
	EventType     string     `db:"event_type"`
	Status        string     `db:"status"`
	Attempts      int        `db:"attempts"`
	Payload       []byte     `db:"payload"`
	NextAttemptAt time.Time  `db:"next_attempt_at"`
	LastError     *string    `db:"last_error"`
	CreatedAt     time.Time  `db:"created_at"`
	UpdatedAt     time.Time  `db:"updated_at"`
	DeliveredAt   *time.Time `db:"delivered_at"`
}

// Attempt is one try of a delivery.
type Attempt struct {
	ID              int64     `db:"id" json:"-"`
	DeliveryID      uuid.UUID `db:"delivery_id" json:"-"`
	Attempt         int       `db:"attempt" json:"attempt"`
	StatusCode      *int      `db:"status_code" json:"status_code"`
	DurationMS      int       `db:"duration_ms" json:"duration_ms"`
	Error           *string   `db:"error" json:"error"`
	ResponseExcerpt *string   `db:"response_excerpt" json:"response_excerpt"`
	CreatedAt       time.Time `db:"created_at" json:"created_at"`
}

// DeliveryForJob returns the delivery of one of the account's jobs.
func (s *Store) DeliveryForJob(ctx context.Context, accountID, jobID uuid.UUID) (Delivery, error) {
	var d Delivery
	err := s.db.GetContext(ctx, &d, `SELECT * FROM webhook_deliveries WHERE job_id = $1 AND account_id = $2`, jobID, accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return Delivery{}, apperr.New(apperr.NotFound, "job %s has no webhook delivery", jobID)
	}
	return d, wrapDB(err, "get delivery")
}

// GetDelivery returns a delivery by ID.
func (s *Store) GetDelivery(ctx context.Context, id uuid.UUID) (Delivery, error) {
	var d Delivery
	err := s.db.GetContext(ctx, &d, `SELECT * FROM webhook_deliveries WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Delivery{}, apperr.New(apperr.NotFound, "delivery %s not found", id)
	}
	return d, wrapDB(err, "get delivery")
}

// Attempts returns a delivery's attempts in order.
func (s *Store) Attempts(ctx context.Context, deliveryID uuid.UUID) ([]Attempt, error) {
	var as []Attempt
	err := s.db.SelectContext(ctx, &as, `SELECT * FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id`, deliveryID)
	if as == nil {
		as = []Attempt{}
	}
	return as, wrapDB(err, "list attempts")
}

// FixPayload stores the body of a delivery the first time and returns the
// stored body ever after, so every retry sends the same bytes.
func (s *Store) FixPayload(ctx context.Context, id uuid.UUID, body []byte) ([]byte, error) {
	var out []byte
	err := s.db.GetContext(ctx, &out, `
		UPDATE webhook_deliveries SET payload = COALESCE(payload, $2), updated_at = now()
		WHERE id = $1 RETURNING payload`, id, body)
	return out, wrapDB(err, "fix payload")
}

// RecordAttempt stores an attempt and moves the delivery on: delivered,
// failed (no more retries), or pending until next.
func (s *Store) RecordAttempt(ctx context.Context, id uuid.UUID, a Attempt, outcome string, next time.Time) error {
	_, err := s.db.ExecContext(ctx, `
		WITH d AS (
			UPDATE webhook_deliveries SET attempts = attempts + 1, status = $2, next_attempt_at = $3,
				last_error = $4, updated_at = now(),
				delivered_at = CASE WHEN $2 = 'delivered' THEN now() ELSE delivered_at END
			WHERE id = $1 RETURNING id, attempts
		)
		INSERT INTO webhook_attempts (delivery_id, attempt, status_code, duration_ms, error, response_excerpt)
		SELECT id, attempts, $5, $6, $4, $7 FROM d`,
		id, outcome, next, a.Error, a.StatusCode, a.DurationMS, a.ResponseExcerpt)
	return wrapDB(err, "record attempt")
}

// RetryDelivery makes a delivery pending again, due now (a manual retry).
func (s *Store) RetryDelivery(ctx context.Context, accountID, jobID uuid.UUID) (Delivery, error) {
	var d Delivery
	err := s.db.GetContext(ctx, &d, `
		UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(), updated_at = now()
		WHERE job_id = $1 AND account_id = $2 RETURNING *`, jobID, accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return Delivery{}, apperr.New(apperr.NotFound, "job %s has no webhook delivery", jobID)
	}
	return d, wrapDB(err, "retry delivery")
}

// DueDeliveries returns pending deliveries due for more than `late` (their
// task was lost) so they can be enqueued again.
func (s *Store) DueDeliveries(ctx context.Context, late time.Duration, limit int) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	err := s.db.SelectContext(ctx, &ids, `
		UPDATE webhook_deliveries SET next_attempt_at = now(), updated_at = now()
		WHERE id IN (
			SELECT id FROM webhook_deliveries
			WHERE status = 'pending' AND next_attempt_at < now() - make_interval(secs => $1)
			ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING id`, late.Seconds(), limit)
	return ids, wrapDB(err, "due deliveries")
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
