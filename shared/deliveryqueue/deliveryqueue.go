// Package deliveryqueue queues the tasks of webhook deliveries, never two of
// one attempt.
//
// A job with a webhook URL gets its delivery row from Postgres itself: the
// trigger jobs_webhook_delivery (migrations/00003_webhooks.sql) inserts it
// in the statement that makes the job terminal, whoever does so (a worker, a
// cancel, the reconciler, a module's deletion). Each attempt of the
// delivery is then an asynq task on the webhooks queue (tasks.NewDeliverWebhook),
// queued by whoever must make it go out: the worker that ended the job, the
// API for a cancel and a manual retry, the attempt before it, and the
// reconciler's sweep for one that is overdue. They all queue it here.
package deliveryqueue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/telemetry"
)

// Queue is a deployment's webhooks queue, with what adds tasks to it and
// looks into it.
type Queue struct {
	Client tasks.TaskEnqueuer
	// Inspector may be nil: a task already queued is then always left
	// alone.
	Inspector tasks.TaskInspector
	// Name is the queue's name (tasks.WebhookQueue).
	Name string
}

// Ensure makes sure the task of d's next attempt (number d.Attempts+1, in
// the trace of ctx) is queued, to run at `at` (at once when at is past),
// without ever making a second copy: an existing task of that attempt
// (waiting, scheduled, put back, or being sent) is left as it is, except
// that runNow moves a scheduled one to now; one that asynq archived or
// completed is replaced. queued reports whether a task was added or moved.
func (q Queue) Ensure(ctx context.Context, d store.Delivery, at time.Time, runNow bool) (queued bool, err error) {
	var opts []asynq.Option
	if time.Until(at) > 0 {
		opts = append(opts, asynq.ProcessAt(at))
	}
	task, err := tasks.NewDeliverWebhook(d.ID, d.AccountID, d.Attempts, telemetry.Traceparent(ctx), q.Name, opts...)
	if err != nil {
		return false, err
	}
	_, err = q.Client.EnqueueContext(ctx, task)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, asynq.ErrTaskIDConflict) {
		return false, fmt.Errorf("enqueue delivery: %w", err)
	}
	if q.Inspector == nil {
		return false, nil
	}
	tid := tasks.DeliverWebhookID(d.ID, d.Attempts)
	info, err := q.Inspector.GetTaskInfo(q.Name, tid)
	if err != nil {
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			return false, nil // gone meanwhile: whoever ran it recorded the attempt
		}
		return false, fmt.Errorf("inspect delivery task: %w", err)
	}
	switch info.State {
	case asynq.TaskStateScheduled, asynq.TaskStateRetry:
		if !runNow {
			return false, nil
		}
		if err := q.Inspector.RunTask(q.Name, tid); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return false, fmt.Errorf("run delivery task: %w", err)
		}
		return true, nil
	case asynq.TaskStateArchived, asynq.TaskStateCompleted:
		if err := q.Inspector.DeleteTask(q.Name, tid); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return false, fmt.Errorf("delete stale delivery task: %w", err)
		}
		if _, err := q.Client.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return false, fmt.Errorf("enqueue delivery: %w", err)
		}
		return true, nil
	default: // pending, active, aggregating: it goes out as it is
		return false, nil
	}
}

// Deliveries finds a job's delivery (store.Store.DeliveryForJob).
type Deliveries interface {
	DeliveryForJob(ctx context.Context, accountID, jobID uuid.UUID) (store.Delivery, error)
}

// EnsureForJob queues the delivery of job, which has just become terminal:
// its row was made by the trigger jobs_webhook_delivery
// (migrations/00003_webhooks.sql) in the statement that ended the job. A
// job without a webhook URL has none, and nothing is queued.
func (q Queue) EnsureForJob(ctx context.Context, deliveries Deliveries, job store.Job) error {
	if job.WebhookURL == nil {
		return nil
	}
	d, err := deliveries.DeliveryForJob(ctx, job.AccountID, job.ID)
	if err != nil {
		return err
	}
	_, err = q.Ensure(ctx, d, time.Time{}, false)
	return err
}
