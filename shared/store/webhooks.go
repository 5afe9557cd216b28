package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

// DeliveryStatus is a webhook delivery's status (the webhook_deliveries
// table's CHECK constraint): pending until it is delivered, or failed when
// no more attempts follow.
type DeliveryStatus string

// The delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryFailed    DeliveryStatus = "failed"
)

// Delivery is a webhook delivery: one per terminal job with a webhook_url.
type Delivery struct {
	ID        uuid.UUID      `db:"id"`
	JobID     uuid.UUID      `db:"job_id"`
	AccountID uuid.UUID      `db:"account_id"`
	URL       string         `db:"url"`
	EventType string         `db:"event_type"`
	Status    DeliveryStatus `db:"status"`
	Attempts  int            `db:"attempts"`
	// Payload is the stored body: read by GetDelivery only when it is at
	// most MaxPayloadBytes (nil otherwise, and never by the other reads).
	Payload []byte `db:"payload"`
	// PayloadBytes is the stored body's size (nil until it is built).
	PayloadBytes  *int64     `db:"payload_bytes"`
	NextAttemptAt time.Time  `db:"next_attempt_at"`
	LastError     *string    `db:"last_error"`
	CreatedAt     time.Time  `db:"created_at"`
	UpdatedAt     time.Time  `db:"updated_at"`
	DeliveredAt   *time.Time `db:"delivered_at"`
}

// Attempt is one try of a delivery.
type Attempt struct {
	ID              int64     `db:"id"`
	DeliveryID      uuid.UUID `db:"delivery_id"`
	Attempt         int       `db:"attempt"`
	StatusCode      *int      `db:"status_code"`
	DurationMS      int       `db:"duration_ms"`
	Error           *string   `db:"error"`
	ResponseExcerpt *string   `db:"response_excerpt"`
	CreatedAt       time.Time `db:"created_at"`
}

// MaxPayloadBytes bounds the stored body of a delivery that is read back
// and sent. Bodies are built far below it (bounded output excerpts); a larger
// one, stored before bodies were bounded, is not read but rebuilt.
const MaxPayloadBytes = 4 << 20

// deliveryColumns are a delivery's columns without its body, which only the
// sender reads (GetDelivery), and only when it is bounded.
const deliveryColumns = `id, job_id, account_id, url, event_type, status, attempts, octet_length(payload)::bigint AS payload_bytes,
	next_attempt_at, last_error, created_at, updated_at, delivered_at`

// DeliveryForJob returns the delivery of one of the account's jobs, without
// its body.
func (s *Store) DeliveryForJob(ctx context.Context, accountID, jobID uuid.UUID) (Delivery, error) {
	var d Delivery
	err := s.db.GetContext(ctx, &d, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE job_id = $1 AND account_id = $2`, jobID, accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return Delivery{}, apperr.New(apperr.NotFound, "job %s has no webhook delivery", jobID)
	}
	return d, wrapDB(err, "get delivery")
}

// GetDelivery returns a delivery by ID with its body when that is at most
// MaxPayloadBytes (Payload is nil otherwise; PayloadBytes tells which).
func (s *Store) GetDelivery(ctx context.Context, id uuid.UUID) (Delivery, error) {
	var d Delivery
	err := s.db.GetContext(ctx, &d, `SELECT `+deliveryColumns+`,
		CASE WHEN octet_length(payload) <= $2 THEN payload END AS payload
		FROM webhook_deliveries WHERE id = $1`, id, MaxPayloadBytes)
	if errors.Is(err, sql.ErrNoRows) {
		return Delivery{}, apperr.New(apperr.NotFound, "delivery %s not found", id)
	}
	return d, wrapDB(err, "get delivery")
}

// MaxListedAttempts bounds the attempts listed with a delivery: manual
// retries can add attempts past the schedule's eight.
const MaxListedAttempts = 100

// Attempts returns a delivery's most recent attempts (at most
// MaxListedAttempts), oldest first.
func (s *Store) Attempts(ctx context.Context, deliveryID uuid.UUID) ([]Attempt, error) {
	var as []Attempt
	err := s.db.SelectContext(ctx, &as, `
		SELECT * FROM (
			SELECT id, delivery_id, attempt, status_code, duration_ms, error, left(response_excerpt, 1024) AS response_excerpt, created_at
			FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id DESC LIMIT $2
		) recent ORDER BY id`, deliveryID, MaxListedAttempts)
	if as == nil {
		as = []Attempt{}
	}
	return as, wrapDB(err, "list attempts")
}

// FixPayload stores the body of a delivery the first time and returns the
// stored body ever after, so every retry sends the same bytes. A stored body
// larger than MaxPayloadBytes (written before bodies were bounded) is
// replaced: it is never read back.
func (s *Store) FixPayload(ctx context.Context, id uuid.UUID, body []byte) ([]byte, error) {
	var out []byte
	err := s.db.GetContext(ctx, &out, `
		UPDATE webhook_deliveries
		SET payload = CASE WHEN payload IS NULL OR octet_length(payload) > $3 THEN $2 ELSE payload END, updated_at = now()
		WHERE id = $1 RETURNING payload`, id, body, MaxPayloadBytes)
	return out, wrapDB(err, "fix payload")
}

// WebhookJob is a job as a webhook payload shows it: its output cut to an
// excerpt in the database, with the whole output's sizes.
type WebhookJob struct {
	Job
	StdoutBytes int64 `db:"stdout_bytes"`
	StderrBytes int64 `db:"stderr_bytes"`
}

// GetWebhookJob returns one of the account's jobs with at most excerpt bytes
// of each output stream: whatever the job wrote, reading it costs the
// excerpt, not the output.
func (s *Store) GetWebhookJob(ctx context.Context, accountID, id uuid.UUID, excerpt int) (WebhookJob, error) {
	var j WebhookJob
	err := s.db.GetContext(ctx, &j, `
		SELECT id, account_id, module_id, function, timeout_ms, memory_limit_mb, max_output_bytes, webhook_url,
			metadata, status, attempts, exit_code, stdout_truncated, stderr_truncated, return_values, error_code,
			error_message, memory_peak_bytes, run_ms, created_at, started_at, finished_at, updated_at,
			substring(stdout FROM 1 FOR $3) AS stdout, substring(stderr FROM 1 FOR $3) AS stderr,
			COALESCE(octet_length(stdout), 0)::bigint AS stdout_bytes, COALESCE(octet_length(stderr), 0)::bigint AS stderr_bytes,
			`+fileColumns+`
		FROM jobs WHERE id = $1 AND account_id = $2`, id, accountID, excerpt)
	if errors.Is(err, sql.ErrNoRows) {
		return WebhookJob{}, apperr.New(apperr.NotFound, "job %s not found", id)
	}
	if err != nil {
		return WebhookJob{}, wrapDB(err, "get webhook job")
	}
	return j, s.LoadArtifacts(ctx, &j.Job)
}

// RecordAttempt stores an attempt and moves the delivery on: delivered,
// failed (no more retries), or pending until next.
func (s *Store) RecordAttempt(ctx context.Context, id uuid.UUID, a Attempt, outcome DeliveryStatus, next time.Time) error {
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
// A delivery that is pending and due already is left as it is (a retry
// asked for while one waits): retried reports whether it was changed.
func (s *Store) RetryDelivery(ctx context.Context, accountID, jobID uuid.UUID) (d Delivery, retried bool, err error) {
	err = s.db.GetContext(ctx, &d, `
		UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(), updated_at = now()
		WHERE job_id = $1 AND account_id = $2 AND NOT (status = 'pending' AND next_attempt_at <= now())
		RETURNING `+deliveryColumns, jobID, accountID)
	if errors.Is(err, sql.ErrNoRows) {
		d, err = s.DeliveryForJob(ctx, accountID, jobID)
		return d, false, err
	}
	return d, err == nil, wrapDB(err, "retry delivery")
}

// DueDeliveries returns pending deliveries due for more than `late` (their
// task may have been lost, or may only be waiting) so that the sweep can
// make sure their task is queued. They are marked due now, so the next pass
// looks at others first.
func (s *Store) DueDeliveries(ctx context.Context, late time.Duration, limit int) ([]Delivery, error) {
	var ds []Delivery
	err := s.db.SelectContext(ctx, &ds, `
		UPDATE webhook_deliveries SET next_attempt_at = now(), updated_at = now()
		WHERE id IN (
			SELECT id FROM webhook_deliveries
			WHERE status = 'pending' AND next_attempt_at < now() - make_interval(secs => $1)
			ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING `+deliveryColumns, late.Seconds(), limit)
	return ds, wrapDB(err, "due deliveries")
}
