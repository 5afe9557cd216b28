// Package delivery sends webhook deliveries: the asynq handler for
// tasks.TypeDeliverWebhook, on the webhooks queue, served by its own asynq
// server in the worker so that slow receivers never hold up jobs.
//
// A delivery is tried immediately, then after 5 s, 5 min, 30 min, 2 h, 5 h,
// 10 h and 10 h (each ±10 %), or after the receiver's Retry-After when that is
// later; 2xx is delivered, 410 stops, anything else (or no answer) retries.
// Every attempt is a row; the body and the webhook-id are the same each time.
package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/jobview"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/webhook"
)

// Schedule is the delay before each retry (attempt 2 … 8).
var Schedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// maxRetryAfter caps a receiver's Retry-After.
const maxRetryAfter = 10 * time.Hour

// excerpt bounds the stored response body.
const excerpt = 1024

// Observer records deliveries (metrics).
type Observer interface {
	Delivered(outcome string, d time.Duration)
}

// Sender delivers webhooks.
type Sender struct {
	store  *store.Store
	client *http.Client
	log    *zap.Logger
	obs    Observer
	now    func() time.Time
}

// New returns a Sender whose connections follow policy.
func New(st *store.Store, policy webhook.Policy, log *zap.Logger, obs Observer) *Sender {
	return &Sender{store: st, client: policy.Client(), log: log, obs: obs, now: time.Now}
}

// retryError asks asynq to try again after a given delay.
type retryError struct {
	after time.Duration
	cause string
}

func (e *retryError) Error() string { return "webhook delivery will be retried: " + e.cause }

// RetryDelay is asynq's RetryDelayFunc for the webhooks server.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var re *retryError
	if errors.As(err, &re) {
		return re.after
	}
	return min(time.Duration(n+1)*5*time.Second, time.Minute)
}

// ProcessTask implements asynq.Handler.
func (s *Sender) ProcessTask(ctx context.Context, t *asynq.Task) error {
	id, err := tasks.ParseDeliverWebhook(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	d, err := s.store.GetDelivery(ctx, id)
	if err != nil {
		return err // retried: the database may be back soon
	}
	if d.Status != "pending" {
		return nil
	}
	body, err := s.body(ctx, d)
	if err != nil {
		return err
	}
	secrets, err := s.store.WebhookSecrets(ctx, d.AccountID)
	if err != nil {
		return err
	}
	ts := s.now()
	sig, err := webhook.Sign(secrets, d.ID.String(), ts, body)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, d.URL, strings.NewReader(string(body)))
	if err != nil {
		return s.finish(ctx, d, store.Attempt{Error: ptr("bad URL: " + err.Error())}, "failed", time.Time{})
	}
	webhook.Headers(req.Header, d.ID.String(), ts, sig)
	start := s.now()
	res, err := s.client.Do(req)
	a := store.Attempt{DurationMS: int(time.Since(start).Milliseconds())}
	if err != nil {
		a.Error = ptr(err.Error())
		return s.retryOrFail(ctx, d, a, 0)
	}
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(io.LimitReader(res.Body, excerpt))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	code := res.StatusCode
	a.StatusCode = &code
	a.ResponseExcerpt = ptr(strings.ToValidUTF8(string(b), "\uFFFD"))
	switch {
	case code >= 200 && code < 300:
		return s.finish(ctx, d, a, "delivered", time.Time{})
	case code == http.StatusGone:
		a.Error = ptr("the receiver answered 410 Gone: no more attempts")
		return s.finish(ctx, d, a, "failed", time.Time{})
	default:
		a.Error = ptr("HTTP " + strconv.Itoa(code))
		return s.retryOrFail(ctx, d, a, retryAfter(res.Header.Get("Retry-After"), s.now()))
	}
}

// body builds the event the first time and returns the stored bytes after.
func (s *Sender) body(ctx context.Context, d store.Delivery) ([]byte, error) {
	if d.Payload != nil {
		return d.Payload, nil
	}
	job, err := s.store.GetJob(ctx, d.AccountID, d.JobID)
	if err != nil {
		return nil, err
	}
	ts := job.UpdatedAt
	if job.FinishedAt != nil {
		ts = *job.FinishedAt
	}
	b, err := json.Marshal(map[string]any{"type": d.EventType, "timestamp": ts.UTC().Format(time.RFC3339Nano), "data": jobview.From(job)})
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return s.store.FixPayload(ctx, d.ID, b)
}

func (s *Sender) retryOrFail(ctx context.Context, d store.Delivery, a store.Attempt, after time.Duration) error {
	attempt := d.Attempts + 1 // this one
	if attempt >= tasks.WebhookAttempts {
		return s.finish(ctx, d, a, "failed", time.Time{})
	}
	delay := jitter(Schedule[attempt-1])
	if after > delay {
		delay = min(after, maxRetryAfter)
	}
	if err := s.finish(ctx, d, a, "pending", s.now().Add(delay)); err != nil {
		return err
	}
	return &retryError{after: delay, cause: deref(a.Error)}
}

func (s *Sender) finish(ctx context.Context, d store.Delivery, a store.Attempt, outcome string, next time.Time) error {
	if next.IsZero() {
		next = s.now()
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.store.RecordAttempt(wctx, d.ID, a, outcome, next); err != nil {
		return err
	}
	if s.obs != nil {
		s.obs.Delivered(outcome, time.Duration(a.DurationMS)*time.Millisecond)
	}
	s.log.Info("webhook attempt", zap.String("delivery_id", d.ID.String()), zap.String("job_id", d.JobID.String()),
		zap.String("outcome", outcome), zap.Int("attempt", d.Attempts+1), zap.Stringp("error", a.Error))
	return nil
}

// retryAfter reads a Retry-After header (seconds or an HTTP date).
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now)
	}
	return 0
}

func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d)) //nolint:gosec // jitter, not a secret
}

func ptr(s string) *string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Enqueue queues the first send of a delivery (or another send, with a
// different tag).
func Enqueue(ctx context.Context, client *asynq.Client, id uuid.UUID, tag, queue string) error {
	task, err := tasks.NewDeliverWebhook(id, tag, queue)
	if err != nil {
		return err
	}
	if _, err := client.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue delivery: %w", err)
	}
	return nil
}
