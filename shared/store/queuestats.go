package store

import (
	"context"
)

// QueueAge is how long the oldest queued job of a queue has waited.
type QueueAge struct {
	Queue   string  `db:"queue"`
	Seconds float64 `db:"age"`
}

// OldestQueued returns, for each queue that holds queued jobs waiting for
// a worker, the age of its oldest one: the time since that job was
// submitted (a job handed back after a lost attempt keeps its age). Parked
// jobs (refused a start at their account's concurrency limit: they wait
// for the account's own running jobs, and more workers would not start
// them) are left out. It reads the queued jobs through the index of
// unfinished jobs, so it costs a walk of the queued jobs: callers cache it
// (the API's gauge reads it at most once a few seconds).
func (s *Store) OldestQueued(ctx context.Context) ([]QueueAge, error) {
	var out []QueueAge
	err := s.db.SelectContext(ctx, &out, `
		SELECT queue, greatest(extract(epoch FROM now() - min(created_at)), 0)::float8 AS age
		FROM jobs WHERE status = 'queued' AND NOT parked GROUP BY queue ORDER BY queue`)
	if err != nil {
		return nil, wrapDB(err, "oldest queued jobs")
	}
	return out, nil
}
