package store

import (
	"context"
	"time"
)

// QueueLoad is the unfinished work of one job queue.
type QueueLoad struct {
	Queued  int64
	Running int64
}

// ScalingLoad is what the autoscaling figures are made of, read in one
// statement.
type ScalingLoad struct {
	// Queues holds the queued and running jobs of every queue that has
	// some (keyed by jobs.queue, the tier queue a job was submitted to).
	// Queued jobs are those that can start: of an account with a
	// concurrency limit, at most as many as it may start more (the others
	// wait for its running jobs, not for a worker).
	Queues map[string]QueueLoad
	// Tiers names every tier, whether its queue has jobs or not.
	Tiers []string
	// WebhooksPending counts webhook deliveries not yet delivered or given
	// up (including those waiting for a retry).
	WebhooksPending int64
	// LiveWorkers counts workers whose heartbeat is younger than the lease
	// and that have not stopped.
	LiveWorkers int
	// MinSlots is the smallest concurrency a live worker reported (0: no
	// live worker reported one).
	MinSlots int
}

// ScalingLoad reads the queued and running jobs per queue, the tiers, the
// pending webhook deliveries and the live workers' slots in one round trip.
// Queued jobs are counted per account from jobs_queued_account_idx (an
// index-only scan), each account's bounded by its tier's limit less its
// running jobs, and running ones, at most the fleet's slots, through a partial index of
// unfinished jobs (jobs_unfinished_idx or jobs_running_worker_idx): the cost
// follows the backlog, not the table.
func (s *Store) ScalingLoad(ctx context.Context, lease time.Duration) (ScalingLoad, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT 'q', q.queue, sum(CASE WHEN t.max_concurrent_runs > 0
			THEN least(q.n, greatest(t.max_concurrent_runs - coalesce(r.n, 0), 0)) ELSE q.n END)::bigint, 0
		FROM (SELECT queue, account_id, count(*) AS n FROM jobs WHERE status = 'queued' GROUP BY queue, account_id) q
		JOIN accounts a ON a.id = q.account_id JOIN tiers t ON t.name = a.tier
		LEFT JOIN (SELECT account_id, count(*) AS n FROM jobs WHERE status = 'running' GROUP BY account_id) r
			ON r.account_id = q.account_id
		GROUP BY q.queue
		UNION ALL
		SELECT 'r', queue, count(*), 0 FROM jobs WHERE status = 'running' GROUP BY queue
		UNION ALL
		SELECT 't', name, 0, 0 FROM tiers
		UNION ALL
		SELECT 'd', '', count(*), 0 FROM webhook_deliveries WHERE status = 'pending'
		UNION ALL
		SELECT 'w', '', count(*), coalesce(min(concurrency) FILTER (WHERE concurrency > 0), 0) FROM workers
		WHERE stopped_at IS NULL AND heartbeat_at > now() - make_interval(secs => $1)`, lease.Seconds())
	if err != nil {
		return ScalingLoad{}, wrapDB(err, "read scaling load")
	}
	defer func() { _ = rows.Close() }()
	l := ScalingLoad{Queues: map[string]QueueLoad{}}
	for rows.Next() {
		var kind, name string
		var a, b int64
		if err := rows.Scan(&kind, &name, &a, &b); err != nil {
			return ScalingLoad{}, wrapDB(err, "read scaling load")
		}
		switch kind {
		case "q":
			q := l.Queues[name]
			q.Queued = a
			l.Queues[name] = q
		case "r":
			q := l.Queues[name]
			q.Running = a
			l.Queues[name] = q
		case "t":
			l.Tiers = append(l.Tiers, name)
		case "d":
			l.WebhooksPending = a
		case "w":
			l.LiveWorkers, l.MinSlots = int(a), int(b)
		}
	}
	if err := rows.Err(); err != nil {
		return ScalingLoad{}, wrapDB(err, "read scaling load")
	}
	return l, nil
}
