package store

import (
	"context"
	"database/sql/driver"
	"time"

	"github.com/google/uuid"
)

// QueuedRef names a job that must be on the queue.
type QueuedRef struct {
	ID        uuid.UUID `db:"id"`
	Queue     string    `db:"queue"`
	TimeoutMS int       `db:"timeout_ms"`
	// Attempts is the number of attempts so far (set by RecoverAbandoned).
	Attempts int `db:"attempts"`
}

// TouchStaleQueued returns up to limit jobs that have been queued, untouched,
// for longer than after, and marks them checked (updated_at) so that the next
// pass skips them for another period. Their tasks may have been lost by
// Redis; the caller enqueues them again (the task ID makes that idempotent).
// Parked jobs (refused a start at their account's limit, their delivery
// dropped) are returned whatever their age once their account may start
// more: a slot that no job's end gave back with a wake (a lost worker's job
// ended by the reconciler, a raised limit, a wake that could not be
// enqueued) is used at the next pass.
//
// Of an account with a concurrency limit, only as many jobs are returned as
// it may start more (its limit less its running jobs), oldest first: the
// others cannot start now, their deliveries were dropped on purpose
// (store.ErrAccountAtLimit: they are parked), and the end of each running
// job queues a delivery for one of them (FinishRun). They are found once
// the account runs fewer. The jobs returned are no longer parked: they
// have a delivery again. (Every stale queued job is ranked within its
// account, so a pass reads the whole stale backlog: one index range of
// jobs_unfinished_idx.)
func (s *Store) TouchStaleQueued(ctx context.Context, after time.Duration, limit int) ([]QueuedRef, error) {
	var refs []QueuedRef
	err := s.db.SelectContext(ctx, &refs, `
		WITH running AS MATERIALIZED (
			SELECT account_id, count(*) AS n FROM jobs WHERE status = 'running' GROUP BY account_id
		), stale AS (
			SELECT j.id, j.updated_at,
				row_number() OVER (PARTITION BY j.account_id ORDER BY j.updated_at) AS k,
				CASE WHEN t.max_concurrent_runs > 0 THEN t.max_concurrent_runs - coalesce(r.n, 0) END AS room
			FROM jobs j JOIN accounts a ON a.id = j.account_id JOIN tiers t ON t.name = a.tier
			LEFT JOIN running r ON r.account_id = j.account_id
			WHERE j.status = 'queued' AND (j.updated_at < now() - make_interval(secs => $1) OR j.parked)
		)
		UPDATE jobs SET updated_at = now(), parked = false
		WHERE id IN (
			SELECT id FROM jobs WHERE id IN (
				SELECT id FROM stale WHERE room IS NULL OR k <= room ORDER BY updated_at LIMIT $2)
			AND status = 'queued'
			FOR UPDATE SKIP LOCKED)
		RETURNING id, queue, timeout_ms, attempts`, after.Seconds(), limit)
	return refs, wrapDB(err, "find stale queued jobs")
}

// Recovered is the outcome of RecoverAbandoned.
type Recovered struct {
	Requeued []QueuedRef
	Failed   int
}

// RecoverAbandoned finds running jobs whose worker is gone: jobs whose
// worker's row in the workers table has a heartbeat older than lease or says
// it stopped, and, as the fallback for jobs whose worker has no row (claimed
// by a worker without heartbeats, before the workers table existed) or is
// stuck outside the guest, jobs whose attempt started longer ago than their
// timeout plus grace. A job with attempts left goes back to queued (audit
// "job.requeued", reason worker_lost); a job that has used maxAttempts ends
// failed with worker_lost. Every row is changed by one conditional statement
// under row locks, so concurrent passes recover each attempt once. A job
// whose worker's heartbeat is fresh is never taken before its timeout plus
// grace, however long it runs.
func (s *Store) RecoverAbandoned(ctx context.Context, grace, lease time.Duration, maxAttempts, limit int) (Recovered, error) {
	var rows []struct {
		QueuedRef
		Outcome string `db:"outcome"`
	}
	err := s.db.SelectContext(ctx, &rows, `
		WITH stuck AS (
			SELECT id FROM jobs
			WHERE status = 'running' AND (
				started_at < now() - make_interval(secs => timeout_ms / 1000.0 + $1)
				OR EXISTS (SELECT 1 FROM workers w WHERE w.id = jobs.worker_id AND
					(w.stopped_at IS NOT NULL OR w.heartbeat_at < now() - make_interval(secs => $4))))
			ORDER BY started_at LIMIT $3
			FOR UPDATE SKIP LOCKED
		), back AS (
			UPDATE jobs j SET status = 'queued', worker_id = NULL, updated_at = now()
			FROM stuck WHERE j.id = stuck.id AND j.attempts < $2
			RETURNING j.id, j.queue, j.timeout_ms, j.account_id, j.attempts
		), dead AS (
			UPDATE jobs j SET status = 'failed', error_code = 'worker_lost',
				error_message = 'the job was started as often as WIZARD_MAX_ATTEMPTS allows without finishing; its last worker was lost',
				finished_at = now(), updated_at = now()
			FROM stuck WHERE j.id = stuck.id AND j.attempts >= $2
			RETURNING j.id, j.account_id, j.attempts
		), ev_back AS (
			INSERT INTO audit_events (account_id, actor, action, subject_type, subject_id, job_id, data)
			SELECT account_id, 'reconciler', 'job.requeued', 'job', id::text, id,
				jsonb_build_object('attempt', attempts, 'reason', 'worker_lost') FROM back
		), ev_dead AS (
			INSERT INTO audit_events (account_id, actor, action, subject_type, subject_id, job_id, data)
			SELECT account_id, 'reconciler', 'job.finished', 'job', id::text, id,
				jsonb_build_object('attempt', attempts, 'status', 'failed', 'error_code', 'worker_lost') FROM dead
		)
		SELECT id, queue, timeout_ms, attempts, 'requeued' AS outcome FROM back
		UNION ALL
		SELECT id, '', 0, attempts, 'failed' FROM dead`, grace.Seconds(), maxAttempts, limit, lease.Seconds())
	if err != nil {
		return Recovered{}, wrapDB(err, "recover abandoned jobs")
	}
	var out Recovered
	for _, r := range rows {
		if r.Outcome == "failed" {
			out.Failed++
		} else {
			out.Requeued = append(out.Requeued, r.QueuedRef)
		}
	}
	return out, nil
}

// Purged counts what Purge removed.
type Purged struct {
	Jobs, Events, IdempotencyKeys, Modules, Blobs int64
	// FileBlobs counts file blobs (inputs, artifacts, asset trees) that
	// nothing referred to any more, and pending ones never finished.
	FileBlobs int64
}

// Purge removes, in batches of at most batch rows each: finished jobs older
// than retention with their audit rows, other audit rows older than
// retention, idempotency keys older than 24 h, deleted modules no job refers
// to any more, module contents no module refers to, and file blobs nothing
// refers to.
func (s *Store) Purge(ctx context.Context, retention time.Duration, batch int) (Purged, error) {
	var p Purged
	secs := retention.Seconds()
	steps := []struct {
		n   *int64
		sql string
		arg []any
	}{
		{&p.Jobs, `
			WITH old AS (
				SELECT id FROM jobs WHERE finished_at < now() - make_interval(secs => $1) LIMIT $2
			), ev AS (
				DELETE FROM audit_events WHERE job_id IN (SELECT id FROM old)
			)
			DELETE FROM jobs WHERE id IN (SELECT id FROM old)`, []any{secs, batch}},
		// Audit rows are read oldest first by id (ids grow with time; there
		// is no index on created_at, which every row would have to update):
		// of the batch oldest rows those past the retention go. A row whose
		// created_at is older than a lower id's (its transaction began
		// earlier) goes once the rows before it do.
		{&p.Events, `
			DELETE FROM audit_events WHERE id IN (
				SELECT id FROM (SELECT id, created_at FROM audit_events ORDER BY id LIMIT $2) o
				WHERE created_at < now() - make_interval(secs => $1))`, []any{secs, batch}},
		{&p.IdempotencyKeys, `
			DELETE FROM idempotency_keys WHERE (account_id, key) IN (
				SELECT account_id, key FROM idempotency_keys WHERE created_at < now() - interval '24 hours' LIMIT $1)`, []any{batch}},
		{&p.Modules, `
			DELETE FROM modules m WHERE m.id IN (
				SELECT id FROM modules WHERE deleted_at IS NOT NULL LIMIT $1)
			AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.account_id = m.account_id AND j.module_id = m.id)`, []any{batch}},
		// The hour's margin keeps content whose module row is being written.
		{&p.Blobs, `
			DELETE FROM module_blobs b WHERE (b.account_id, b.sha256) IN (
				SELECT account_id, sha256 FROM module_blobs WHERE created_at < now() - interval '1 hour' LIMIT $1)
			AND NOT EXISTS (SELECT 1 FROM modules m WHERE m.account_id = b.account_id AND m.sha256 = b.sha256)
			AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.account_id = b.account_id AND j.module_sha256 = b.sha256
				AND j.finished_at IS NULL)`, []any{batch}},
		// File blobs: inputs and artifacts go with their jobs, asset rows
		// with their modules (ON DELETE CASCADE), so blobs that no row refers
		// to are left; and pending blobs (sha256 NULL) whose writer never
		// finished. The hour's margin (created_at is reset when a blob is
		// reused) keeps blobs whose referring row is being written; the
		// outer conditions are checked again on the row the delete locks.
		{&p.FileBlobs, `
			DELETE FROM file_blobs b WHERE b.id IN (
				SELECT id FROM file_blobs f WHERE f.created_at < now() - interval '1 hour' AND (f.sha256 IS NULL OR (
					NOT EXISTS (SELECT 1 FROM job_inputs r WHERE r.account_id = f.account_id AND r.sha256 = f.sha256)
					AND NOT EXISTS (SELECT 1 FROM job_artifacts r WHERE r.account_id = f.account_id AND r.sha256 = f.sha256)
					AND NOT EXISTS (SELECT 1 FROM module_assets r WHERE r.account_id = f.account_id AND r.sha256 = f.sha256)))
				LIMIT $1)
			AND b.created_at < now() - interval '1 hour'
			AND NOT EXISTS (SELECT 1 FROM job_inputs r WHERE r.account_id = b.account_id AND r.sha256 = b.sha256)
			AND NOT EXISTS (SELECT 1 FROM job_artifacts r WHERE r.account_id = b.account_id AND r.sha256 = b.sha256)
			AND NOT EXISTS (SELECT 1 FROM module_assets r WHERE r.account_id = b.account_id AND r.sha256 = b.sha256)`,
			[]any{batch}},
	}
	for _, st := range steps {
		res, err := s.db.ExecContext(ctx, st.sql, st.arg...)
		if err != nil {
			return p, wrapDB(err, "purge")
		}
		*st.n, _ = res.RowsAffected()
	}
	return p, nil
}

// TryLock runs fn while holding a session-level advisory lock, if no one
// else holds it; it reports whether fn ran. Several workers share one
// reconciler this way.
func (s *Store) TryLock(ctx context.Context, key int64, fn func(context.Context) error) (bool, error) {
	conn, err := s.db.Connx(ctx)
	if err != nil {
		return false, wrapDB(err, "lock connection")
	}
	defer func() { _ = conn.Close() }()
	var got bool
	if err := conn.GetContext(ctx, &got, `SELECT pg_try_advisory_lock($1)`, key); err != nil {
		return false, wrapDB(err, "try lock")
	}
	if !got {
		return false, nil
	}
	defer func() {
		// A failed unlock ends with the connection: the lock is session-level.
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return true, fn(ctx)
}
