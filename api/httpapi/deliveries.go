package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/apiobject"
	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

type deliveryView struct {
	ID            uuid.UUID            `json:"id"`
	JobID         uuid.UUID            `json:"job_id"`
	URL           string               `json:"url"`
	EventType     string               `json:"event_type"`
	Status        store.DeliveryStatus `json:"status"`
	Attempts      []attemptView        `json:"attempts"`
	NextAttemptAt *time.Time           `json:"next_attempt_at"`
	CreatedAt     time.Time            `json:"created_at"`
	DeliveredAt   *time.Time           `json:"delivered_at"`
}

// attemptView is one try of a webhook delivery (the SDK reads it with the
// same type).
type attemptView = apiobject.Attempt

func viewAttempt(a store.Attempt) attemptView {
	return attemptView{Attempt: a.Attempt, StatusCode: a.StatusCode, DurationMS: int64(a.DurationMS), Error: a.Error,
		ResponseExcerpt: a.ResponseExcerpt, CreatedAt: a.CreatedAt}
}

func (s *Server) deliveryView(c echo.Context, d store.Delivery) (deliveryView, error) {
	attempts, err := s.store.Attempts(c.Request().Context(), d.ID)
	if err != nil {
		return deliveryView{}, err
	}
	v := deliveryView{ID: d.ID, JobID: d.JobID, URL: d.URL, EventType: d.EventType, Status: d.Status,
		Attempts: viewAll(attempts, viewAttempt), CreatedAt: d.CreatedAt, DeliveredAt: d.DeliveredAt}
	if d.Status == store.DeliveryPending {
		next := d.NextAttemptAt
		v.NextAttemptAt = &next
	}
	return v, nil
}

// jobDeliveries is GET /v1/jobs/{id}/deliveries: the job's webhook delivery
// and every attempt (an empty list while the job runs or without a URL).
func (s *Server) jobDeliveries(c echo.Context) error {
	id, err := s.ownJobID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	p := principal(c)
	out := []deliveryView{}
	d, err := s.store.DeliveryForJob(ctx, p.AccountID, id)
	if err == nil {
		v, err := s.deliveryView(c, d)
		if err != nil {
			return err
		}
		out = append(out, v)
	} else if apperr.CodeOf(err) != apperr.NotFound {
		return err
	}
	return c.JSON(http.StatusOK, dataView[deliveryView]{Data: out})
}

// retriesPerMinute limits POST /v1/jobs/{id}/deliveries/retry per account.
const retriesPerMinute = 10

// retryDelivery is POST /v1/jobs/{id}/deliveries/retry: send the job's
// webhook again now, whatever became of it before. A retry asked for while
// the delivery is pending and due (one is waiting to go out) changes
// nothing: the waiting send is the retry.
func (s *Server) retryDelivery(c echo.Context) error {
	id, err := s.ownJobID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	p := principal(c)
	if s.limiter != nil {
		dec, err := s.limiter.DeliveryRetries(ctx, p.AccountID, retriesPerMinute)
		if err := admit(c.Response().Header(), dec, err, "rate limits cannot be checked right now"); err != nil {
			return err
		}
	}
	d, _, err := s.store.RetryDelivery(ctx, p.AccountID, id)
	if err != nil {
		return err
	}
	// The task of the delivery's next attempt: queued, or moved to now if
	// it was scheduled later; one that waits already is left alone.
	if _, err := s.deliveries.Ensure(ctx, d, time.Time{}, true); err != nil {
		// The delivery is pending and due: the reconciler's sweep sends it.
		return apperr.Wrap(err, apperr.Unavailable, "the queue is unavailable; the delivery will be sent later")
	}
	v, err := s.deliveryView(c, d)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, v)
}

// sendWebhook queues the delivery of a job the API itself made terminal (a
// cancel), so it leaves at once rather than at the reconciler's next sweep.
func (s *Server) sendWebhook(ctx context.Context, job store.Job) {
	if s.webhookQueue == "" {
		return
	}
	if err := s.deliveries.EnsureForJob(ctx, s.store, job); err != nil {
		s.log.Info("webhook delivery left to the reconciler's sweep", zap.String("job_id", job.ID.String()), zap.Error(err))
	}
}
