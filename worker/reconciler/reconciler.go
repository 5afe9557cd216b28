// Package reconciler keeps Redis in step with Postgres, the source of truth.
// One worker at a time (a Postgres advisory lock) periodically
//
//   - re-enqueues jobs Postgres holds as queued whose task Redis lost (a
//     flushed or failed-over Redis, an API that died between commit and
//     enqueue);
//   - returns jobs stuck running on a worker that is gone to the queue, or
//     ends them failed with worker_lost once they have used their attempts;
//   - forgets workers that have been dead for long.
//
// Finding jobs whose worker is gone runs more often than the rest, in a pass
// of its own (RecoverLost, every LeaseCheck) under a lock of its own: a
// worker proves it is alive with a heartbeat in the workers table, and once
// its heartbeat is older than Lease its running jobs are queued again at
// once, whatever their timeout. Jobs whose worker has no row (claimed by a
// worker without heartbeats) are recovered after their timeout plus
// RunningGrace.
//   - purges finished jobs, audit rows and unreferenced module contents past
//     the retention period.
package reconciler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
)

// lockKey is the advisory lock that makes one reconciler active at a time.
const lockKey = 0x5757524543 // "WWREC"

// lostLockKey makes one RecoverLost pass active at a time, apart from the
// full pass so that a long purge does not delay it.
const lostLockKey = 0x5757524c53 // "WWRLS"

// deadWorkerAfter is how long a worker's row is kept after its last
// heartbeat (or its stop) once no job runs under its name.
const deadWorkerAfter = time.Hour

// Config sets the reconciler's pace and thresholds.
type Config struct {
	// Interval between passes.
	Interval time.Duration
	// QueuedAfter is how long a job may sit queued before its task is
	// checked (and enqueued again if missing).
	QueuedAfter time.Duration
	// RunningGrace is added to a running job's timeout before its worker is
	// presumed gone. It must cover compilation and result writing.
	RunningGrace time.Duration
	// Lease is how old a worker's last heartbeat may be before its running
	// jobs are recovered (0: only the timeout-plus-RunningGrace rule).
	Lease time.Duration
	// LeaseCheck is the interval between RecoverLost passes (default: a
	// fifth of Lease).
	LeaseCheck time.Duration
	// MaxAttempts is how many attempts a job gets before it ends failed with
	// worker_lost.
	MaxAttempts int
	// Retention is how long finished jobs and audit rows are kept (0 keeps
	// them forever).
	Retention time.Duration
	// Batch bounds the rows each step touches per pass.
	Batch int
	// EnqueueDelivery makes sure the task of a pending webhook delivery's
	// next attempt is queued, and reports whether it had to queue it (nil:
	// deliveries are not swept). It must not duplicate a task that is
	// waiting (deliveryqueue.Queue.Ensure does not).
	EnqueueDelivery func(ctx context.Context, d store.Delivery) (bool, error)
	// DeliveryLate is how overdue a pending webhook delivery must be before
	// the sweep looks at its task.
	DeliveryLate time.Duration
	// Observe, when set, is told what every pass that ran did, and err
	// when it failed (metrics). pass is "full" or "lost_workers".
	Observe func(pass string, st Stats, err error)
}

// Stats is what one pass did.
type Stats struct {
	Ran         bool // false when another instance holds the lock
	Reenqueued  int
	Requeued    int
	FailedLost  int
	Purged      store.Purged
	Deliveries  int
	EnqueueErrs int
	// DeadWorkers is how many long-dead workers' rows were removed.
	DeadWorkers int64
}

// Reconciler runs passes.
type Reconciler struct {
	cfg       Config
	store     *store.Store
	client    *asynq.Client
	inspector *asynq.Inspector
	log       *zap.Logger
}

// New returns a Reconciler.
func New(cfg Config, st *store.Store, client *asynq.Client, inspector *asynq.Inspector, log *zap.Logger) *Reconciler {
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.DeliveryLate <= 0 {
		cfg.DeliveryLate = 2 * time.Minute
	}
	if cfg.LeaseCheck <= 0 && cfg.Lease > 0 {
		cfg.LeaseCheck = max(cfg.Lease/5, 100*time.Millisecond)
	}
	return &Reconciler{cfg: cfg, store: st, client: client, inspector: inspector, log: log}
}

// Run passes every Interval, and looks for jobs of lost workers every
// LeaseCheck, until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	done := make(chan struct{})
	if r.cfg.Lease > 0 {
		go func() {
			defer close(done)
			r.every(ctx, r.cfg.LeaseCheck, r.RecoverLost, "lost-worker pass", "lost_workers")
		}()
	} else {
		close(done)
	}
	r.every(ctx, r.cfg.Interval, r.Pass, "reconciler pass", "full")
	<-done
}

func (r *Reconciler) every(ctx context.Context, d time.Duration, pass func(context.Context) (Stats, error), name, kind string) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		st, err := pass(ctx)
		if r.cfg.Observe != nil && ctx.Err() == nil && (st.Ran || err != nil) {
			r.cfg.Observe(kind, st, err)
		}
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn(name+" failed", zap.Error(err))
		case st.Reenqueued+st.Requeued+st.FailedLost > 0 || st.Purged.Jobs > 0 || st.Purged.FileBlobs > 0 || st.DeadWorkers > 0:
			r.log.Info(name, zap.Int("reenqueued", st.Reenqueued), zap.Int("requeued", st.Requeued),
				zap.Int("failed_worker_lost", st.FailedLost), zap.Int64("purged_jobs", st.Purged.Jobs),
				zap.Int64("purged_blobs", st.Purged.Blobs), zap.Int64("purged_file_blobs", st.Purged.FileBlobs),
				zap.Int64("dead_workers", st.DeadWorkers))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RecoverLost recovers the running jobs of workers that are gone (see
// store.RecoverAbandoned), if no other instance is doing it.
func (r *Reconciler) RecoverLost(ctx context.Context) (Stats, error) {
	var st Stats
	ran, err := r.store.TryLock(ctx, lostLockKey, func(ctx context.Context) error {
		return r.recover(ctx, &st)
	})
	st.Ran = ran
	return st, err
}

func (r *Reconciler) recover(ctx context.Context, st *Stats) error {
	rec, err := r.store.RecoverAbandoned(ctx, r.cfg.RunningGrace, r.cfg.Lease, r.cfg.MaxAttempts, r.cfg.Batch)
	if err != nil {
		return err
	}
	st.Requeued, st.FailedLost = len(rec.Requeued), rec.Failed
	for _, ref := range rec.Requeued {
		if err := r.enqueueRecovery(ctx, ref); err != nil {
			st.EnqueueErrs++
			r.log.Warn("recovery enqueue failed; the job is queued and is enqueued again once it is stale",
				zap.String("job_id", ref.ID.String()), zap.Error(err))
		}
	}
	return nil
}

// Pass does one round of work if no other instance is doing it.
func (r *Reconciler) Pass(ctx context.Context) (Stats, error) {
	var st Stats
	ran, err := r.store.TryLock(ctx, lockKey, func(ctx context.Context) error {
		if err := r.recover(ctx, &st); err != nil {
			return err
		}
		stale, err := r.store.TouchStaleQueued(ctx, r.cfg.QueuedAfter, r.cfg.Batch)
		if err != nil {
			return err
		}
		for _, ref := range stale {
			added, err := r.ensureQueuedAdded(ctx, ref)
			if err != nil {
				st.EnqueueErrs++
				r.log.Warn("re-enqueue failed; the next pass retries", zap.String("job_id", ref.ID.String()), zap.Error(err))
				continue
			}
			if added {
				st.Reenqueued++
			}
		}
		if r.cfg.EnqueueDelivery != nil {
			due, err := r.store.DueDeliveries(ctx, r.cfg.DeliveryLate, r.cfg.Batch)
			if err != nil {
				return err
			}
			for _, d := range due {
				queued, err := r.cfg.EnqueueDelivery(ctx, d)
				if err != nil {
					st.EnqueueErrs++
					r.log.Warn("delivery enqueue failed", zap.String("delivery_id", d.ID.String()), zap.Error(err))
					continue
				}
				if queued {
					st.Deliveries++
				}
			}
		}
		if st.DeadWorkers, err = r.store.DeleteDeadWorkers(ctx, deadWorkerAfter, r.cfg.Batch); err != nil {
			return err
		}
		if r.cfg.Retention > 0 {
			if st.Purged, err = r.store.Purge(ctx, r.cfg.Retention, r.cfg.Batch); err != nil {
				return err
			}
		}
		return nil
	})
	st.Ran = ran
	return st, err
}

// enqueueRecovery queues a new attempt of a job whose worker was lost, under
// a task ID of its own (the lost task may still sit in asynq's active set).
func (r *Reconciler) enqueueRecovery(ctx context.Context, ref store.QueuedRef) error {
	task, err := tasks.NewRecoveryRun(ref.ID, ref.Attempts, ref.Queue, time.Duration(ref.TimeoutMS)*time.Millisecond)
	if err != nil {
		return err
	}
	if _, err := r.client.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue: %w", err)
	}
	return nil
}

// ensureQueuedAdded makes sure the job's task is in Redis; it reports
// whether it had to add it.
func (r *Reconciler) ensureQueuedAdded(ctx context.Context, ref store.QueuedRef) (bool, error) {
	task, err := tasks.NewRunJob(ref.ID, ref.Queue, time.Duration(ref.TimeoutMS)*time.Millisecond, "")
	if err != nil {
		return false, err
	}
	_, err = r.client.EnqueueContext(ctx, task)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, asynq.ErrTaskIDConflict) {
		return false, fmt.Errorf("enqueue: %w", err)
	}
	// A task with this ID exists. If asynq gave up on it (archived) or
	// finished it while Postgres still says queued, replace it.
	info, err := r.inspector.GetTaskInfo(ref.Queue, ref.ID.String())
	if err != nil {
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			return false, nil // gone meanwhile: the next pass sees it again
		}
		return false, fmt.Errorf("inspect task: %w", err)
	}
	if info.State == asynq.TaskStateActive {
		// Postgres says queued, asynq says a worker holds the task: a worker
		// that died while it waited for a free slot, whose lease asynq will
		// only reclaim a minute or more from now. Queue the attempt under a
		// task of its own; should the holder be alive after all, the claim
		// in Postgres lets only one of the two run the job.
		if err := r.enqueueRecovery(ctx, ref); err != nil {
			return false, err
		}
		return true, nil
	}
	if info.State != asynq.TaskStateArchived && info.State != asynq.TaskStateCompleted {
		return false, nil
	}
	if err := r.inspector.DeleteTask(ref.Queue, ref.ID.String()); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		return false, fmt.Errorf("delete stale task: %w", err)
	}
	if _, err := r.client.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return false, fmt.Errorf("enqueue: %w", err)
	}
	return true, nil
}
