// Package delivery sends webhook deliveries: the asynq handler of
// tasks.TypeDeliverWebhook.
//
// It runs on the webhooks queue, served by an asynq server of its own in the
// worker so that slow receivers never hold up jobs.
//
// A delivery is tried immediately, then after 5 s, 5 min, 30 min, 2 h, 5 h,
// 10 h and 10 h (each ±10 %), or after the receiver's Retry-After when that is
// later; 2xx is delivered, 410 stops, anything else (or no answer) retries.
// Every attempt is a row; the body and the webhook-id are the same each time.
//
// Each attempt is a task of its own (tasks.DeliverWebhookID: the delivery and
// the number of attempts before it), queued by the attempt before it for its
// time, so that no one can queue a second copy while it waits. At most
// AccountSlots deliveries of one account are sent at once; a task over the
// limit is put back (ErrAccountBusy) and its worker slot serves another
// account. The body carries a bounded excerpt of the job's output (payload.go).
package delivery

import (
	"bytes"
	"context"
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
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/deliveryqueue"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/telemetry"
	"github.com/wasmwizard/wasmwizard/shared/webhook"
)

// Schedule is the delay before each retry: attempt 2 … tasks.WebhookAttempts.
var Schedule = [...]time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// Schedule has one delay per retry: for any other length the index below is
// out of range, and the build fails.
var _ = [1]struct{}{}[len(Schedule)-(tasks.WebhookAttempts-1)]

// maxRetryAfter caps a receiver's Retry-After.
const maxRetryAfter = 10 * time.Hour

// excerpt bounds the stored response body.
const excerpt = 1024

// Observer records deliveries (metrics).
type Observer interface {
	Delivered(outcome store.DeliveryStatus, d time.Duration)
}

// Config is what a Sender is built from.
type Config struct {
	Store  *store.Store
	Policy webhook.Policy
	Log    *zap.Logger
	Obs    Observer // nil: no metrics
	// Tasks queues the task of each retry on the webhooks queue. Without
	// it, a retry is asked of asynq instead (the task is retried after
	// RetryDelay).
	Tasks *deliveryqueue.Queue
	// Slots limits deliveries in flight per account (nil: no limit).
	Slots *AccountSlots
	// Tracer makes a span of each attempt, in the trace of the job run that
	// queued the delivery (nil: no spans).
	Tracer trace.TracerProvider
}

// Sender delivers webhooks.
type Sender struct {
	cfg    Config
	store  *store.Store
	client *http.Client
	log    *zap.Logger
	obs    Observer
	now    func() time.Time
	tracer trace.Tracer
}

// New returns a Sender.
func New(cfg Config) *Sender {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &Sender{cfg: cfg, store: cfg.Store, client: cfg.Policy.Client(), log: cfg.Log, obs: cfg.Obs, now: time.Now,
		tracer: telemetry.Tracer(cfg.Tracer)}
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
	if errors.Is(err, ErrAccountBusy) {
		return time.Second + time.Duration(rand.Int64N(int64(time.Second))) //nolint:gosec // jitter, not a secret
	}
	return min(time.Duration(n+1)*5*time.Second, time.Minute)
}

// IsFailure is asynq's IsFailure for the webhooks server: a delivery put
// back because its account is at its limit has not failed (and does not use
// up the task's retries).
func IsFailure(err error) bool { return !errors.Is(err, ErrAccountBusy) }

// ProcessTask implements asynq.Handler.
func (s *Sender) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParseDeliverWebhook(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	// The attempt joins the trace of the run that queued the delivery, and
	// so does the next attempt it queues.
	ctx = telemetry.WithTraceparent(ctx, p.Traceparent)
	if p.AccountID != uuid.Nil {
		release, err := s.slot(ctx, p.AccountID)
		if err != nil {
			return err
		}
		defer release()
	}
	d, err := s.store.GetDelivery(ctx, p.DeliveryID)
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil // purged with its job
	}
	if err != nil {
		return err // retried: the database may be back soon
	}
	if d.Status != store.DeliveryPending {
		return nil
	}
	if p.Attempt != nil && *p.Attempt != d.Attempts {
		// This attempt was made (by this task, whose retry is queuing the
		// next one, or by another copy): make sure the next one is queued.
		return s.queueNext(ctx, d)
	}
	if p.AccountID == uuid.Nil { // a task queued by an earlier version
		release, err := s.slot(ctx, d.AccountID)
		if err != nil {
			return err
		}
		defer release()
	}
	ctx, span := s.tracer.Start(ctx, "webhook.deliver", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("delivery_id", d.ID.String()), attribute.String("job_id", d.JobID.String()),
			attribute.Int("attempt", d.Attempts+1)))
	defer span.End()
	err = s.attempt(ctx, d)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

// slot takes one of the account's slots, or answers ErrAccountBusy.
func (s *Sender) slot(ctx context.Context, account uuid.UUID) (func(), error) {
	if s.cfg.Slots == nil {
		return func() {}, nil
	}
	release, ok, err := s.cfg.Slots.Acquire(ctx, account)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrAccountBusy
	}
	return release, nil
}

// attempt sends the delivery once and records the attempt.
func (s *Sender) attempt(ctx context.Context, d store.Delivery) error {
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
	rctx, cancel := context.WithTimeout(ctx, webhook.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return s.finish(ctx, d, store.Attempt{Error: ptr("the URL is not valid")}, store.DeliveryFailed, time.Time{})
	}
	webhook.Headers(req.Header, d.ID.String(), ts, sig)
	start := s.now()
	res, err := s.client.Do(req)
	a := store.Attempt{DurationMS: int(time.Since(start).Milliseconds())}
	span := trace.SpanFromContext(ctx)
	if err != nil {
		a.Error = ptr(webhook.DescribeError(err))
		span.SetAttributes(attribute.String("error", *a.Error))
		return s.retryOrFail(ctx, d, a, 0)
	}
	span.SetAttributes(attribute.Int("http.response.status_code", res.StatusCode))
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(io.LimitReader(res.Body, excerpt))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	code := res.StatusCode
	a.StatusCode = &code
	a.ResponseExcerpt = ptr(string(b))
	switch {
	case code >= 200 && code < 300:
		return s.finish(ctx, d, a, store.DeliveryDelivered, time.Time{})
	case code == http.StatusGone:
		a.Error = ptr("the receiver answered 410 Gone: no more attempts")
		return s.finish(ctx, d, a, store.DeliveryFailed, time.Time{})
	default:
		a.Error = ptr("HTTP " + strconv.Itoa(code))
		return s.retryOrFail(ctx, d, a, retryAfter(res.Header.Get("Retry-After"), s.now()))
	}
}

// queueNext makes sure the task of the delivery's next attempt is queued,
// for its time.
func (s *Sender) queueNext(ctx context.Context, d store.Delivery) error {
	if s.cfg.Tasks == nil {
		return nil
	}
	_, err := s.cfg.Tasks.Ensure(ctx, d, d.NextAttemptAt, false)
	return err
}

func (s *Sender) retryOrFail(ctx context.Context, d store.Delivery, a store.Attempt, after time.Duration) error {
	attempt := d.Attempts + 1 // this one
	if attempt >= tasks.WebhookAttempts {
		return s.finish(ctx, d, a, store.DeliveryFailed, time.Time{})
	}
	delay := jitter(Schedule[attempt-1])
	if after > delay {
		delay = min(after, maxRetryAfter)
	}
	next := s.now().Add(delay)
	if err := s.finish(ctx, d, a, store.DeliveryPending, next); err != nil {
		return err
	}
	if s.cfg.Tasks == nil {
		return &retryError{after: delay, cause: deref(a.Error)}
	}
	// The next attempt is a task of its own; should queuing it fail, this
	// task is retried and queues it then (the attempt is not made twice).
	d.Attempts, d.NextAttemptAt = attempt, next
	return s.queueNext(ctx, d)
}

func (s *Sender) finish(ctx context.Context, d store.Delivery, a store.Attempt, outcome store.DeliveryStatus, next time.Time) error {
	if next.IsZero() {
		next = s.now()
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.store.RecordAttempt(wctx, d.ID, a, outcome, next); err != nil {
		if apperr.CodeOf(err) == apperr.Unavailable {
			return err // the database is away: the task is retried
		}
		// The database refused the row itself: record the attempt without
		// what the receiver said, so that it counts (and the cap applies).
		s.log.Warn("webhook attempt recorded without its answer", zap.String("delivery_id", d.ID.String()), zap.Error(err))
		a.ResponseExcerpt = nil
		a.Error = ptr(deref(a.Error) + " (the receiver's answer could not be stored)")
		if err := s.store.RecordAttempt(wctx, d.ID, a, outcome, next); err != nil {
			return err
		}
	}
	if s.obs != nil {
		s.obs.Delivered(outcome, time.Duration(a.DurationMS)*time.Millisecond)
	}
	s.log.Info("webhook attempt", zap.String("delivery_id", d.ID.String()), zap.String("job_id", d.JobID.String()),
		zap.String("outcome", string(outcome)), zap.Int("attempt", d.Attempts+1), zap.Stringp("error", a.Error))
	return nil
}

// retryAfter reads a Retry-After header (seconds or an HTTP date).
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(min(n, int(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now)
	}
	return 0
}

func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d)) //nolint:gosec // jitter, not a secret
}

// ptr returns text that Postgres stores whatever bytes it came from: valid
// UTF-8 without NUL, at most excerpt bytes.
func ptr(s string) *string {
	s = clean(s)
	return &s
}

func clean(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) > excerpt {
		cut := excerpt
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
