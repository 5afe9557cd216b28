package store

import (
	"context"
	"time"
)

// WorkerInfo names a worker process in the workers table.
type WorkerInfo struct {
	ID      string
	Host    string
	PID     int
	Version string
	// Concurrency is how many jobs the worker runs at once (its slots),
	// read by the autoscaling figures (Scaling).
	Concurrency int
}

// Heartbeat records that worker w is alive (heartbeat_at = now(), on
// Postgres's clock, the one the reconciler compares with). The first call
// registers the worker; a later one re-registers a worker whose row was
// garbage-collected while it could not reach Postgres. A worker that has
// stopped (StopWorker) stays stopped. It is one statement: cheap enough to
// send every few seconds from every worker.
func (s *Store) Heartbeat(ctx context.Context, w WorkerInfo) error {
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO workers (id, host, pid, version, concurrency) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET heartbeat_at = now() WHERE workers.stopped_at IS NULL`,
		w.ID, w.Host, w.PID, w.Version, w.Concurrency)
	return wrapDB(err, "heartbeat")
}

// StopWorker marks worker id as stopped after a graceful shutdown: any job
// still running under its name is recovered by the next reconciler pass,
// without waiting for the lease to run out.
func (s *Store) StopWorker(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE workers SET stopped_at = now() WHERE id = $1 AND stopped_at IS NULL`, id)
	return wrapDB(err, "stop worker")
}

// WorkerRow is one row of the workers table.
type WorkerRow struct {
	ID          string     `db:"id"`
	Host        string     `db:"host"`
	PID         int        `db:"pid"`
	Version     string     `db:"version"`
	StartedAt   time.Time  `db:"started_at"`
	HeartbeatAt time.Time  `db:"heartbeat_at"`
	StoppedAt   *time.Time `db:"stopped_at"`
}

// Workers lists the known workers, most recent heartbeat first.
func (s *Store) Workers(ctx context.Context) ([]WorkerRow, error) {
	var ws []WorkerRow
	err := s.db.SelectContext(ctx, &ws, `
		SELECT id, host, pid, version, started_at, heartbeat_at, stopped_at
		FROM workers ORDER BY heartbeat_at DESC, id`)
	return ws, wrapDB(err, "list workers")
}

// DeleteDeadWorkers removes up to limit workers that have neither sent a
// heartbeat for longer than after nor have a job still running under their
// name (those rows are what lets the reconciler recover such a job early).
func (s *Store) DeleteDeadWorkers(ctx context.Context, after time.Duration, limit int) (int64, error) {
	res, err := s.db.ExecContext(ctx, `
		DELETE FROM workers w WHERE w.id IN (
			SELECT id FROM workers WHERE heartbeat_at < now() - make_interval(secs => $1)
			ORDER BY heartbeat_at LIMIT $2)
		AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.worker_id = w.id AND j.status = 'running')`,
		after.Seconds(), limit)
	if err != nil {
		return 0, wrapDB(err, "delete dead workers")
	}
	return res.RowsAffected()
}
