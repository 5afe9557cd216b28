package store

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// MaxUsageHours bounds how far back HourlyUsage looks.
const MaxUsageHours = 168

// UsageHour is one hour of an account's runs: the jobs created in it and,
// of those, how many succeeded and how many ended with each error code.
type UsageHour struct {
	Hour      time.Time
	Runs      int
	Succeeded int
	Failures  map[string]int
}

// HourlyUsage returns the account's runs in each of the last hours hours
// (1..MaxUsageHours, the current hour included), oldest first, with an
// entry for every hour whether or not it had runs. Jobs count in the hour
// they were created; a job still queued or running counts as a run and in
// neither outcome. One round trip.
func (s *Store) HourlyUsage(ctx context.Context, accountID uuid.UUID, hours int) ([]UsageHour, error) {
	hours = min(max(hours, 1), MaxUsageHours)
	var rows []struct {
		Hour  time.Time `db:"hour"`
		Code  *string   `db:"code"`
		Count int       `db:"n"`
	}
	// The outcome per row: NULL for jobs not finished, '' for a success,
	// else the error code. The job IDs are UUIDv7, but created_at is the
	// column the rest of the API filters on, so the range is on it.
	// The outcome per row: NULL for jobs not finished, '' for a success,
	// else the error code. The first row is the current hour by the
	// database's clock, with no count, so an empty window has its bounds.
	err := s.db.SelectContext(ctx, &rows, `
		WITH w AS (SELECT date_trunc('hour', now(), 'UTC') AS top)
		SELECT top AS hour, NULL::text AS code, 0 AS n FROM w
		UNION ALL
		SELECT date_trunc('hour', created_at, 'UTC') AS hour,
			CASE WHEN status = 'succeeded' THEN ''
				WHEN status IN ('queued', 'running') THEN NULL
				ELSE coalesce(error_code, status) END AS code,
			count(*) AS n
		FROM jobs, w
		WHERE account_id = $1 AND created_at >= w.top - make_interval(hours => $2 - 1)
		GROUP BY 1, 2`, accountID, hours)
	if err != nil {
		return nil, wrapDB(err, "hourly usage")
	}
	var now time.Time
	for _, r := range rows {
		if r.Count == 0 { // only the bounds row counts nothing
			now = r.Hour
		}
	}
	out := make([]UsageHour, hours)
	index := make(map[int64]int, hours)
	for i := range out {
		h := now.Add(-time.Duration(hours-1-i) * time.Hour).UTC()
		out[i] = UsageHour{Hour: h, Failures: map[string]int{}}
		index[h.Unix()] = i
	}
	for _, r := range rows {
		i, ok := index[r.Hour.Unix()]
		if !ok || r.Count == 0 {
			continue // the bounds row, or a job stamped ahead of the window
		}
		out[i].Runs += r.Count
		switch {
		case r.Code == nil:
		case *r.Code == "":
			out[i].Succeeded += r.Count
		default:
			out[i].Failures[*r.Code] += r.Count
		}
	}
	return out, nil
}

// Usage is an account's activity today (UTC) and now.
type Usage struct {
	RunsToday int `db:"runs_today"`
	Running   int `db:"running"`
	Queued    int `db:"queued"`
	// Modules and ModuleBytes are the account's live modules and their
	// bytes: what max_modules and max_module_storage_bytes limit.
	Modules     int   `db:"modules"`
	ModuleBytes int64 `db:"module_bytes"`
}

// AccountUsage counts the account's jobs created today and those
// unfinished, and its live modules.
func (s *Store) AccountUsage(ctx context.Context, accountID uuid.UUID) (Usage, error) {
	var u Usage
	err := s.db.GetContext(ctx, &u, `
		SELECT count(*) AS modules, coalesce(sum(size_bytes), 0)::bigint AS module_bytes
		FROM modules WHERE account_id = $1 AND deleted_at IS NULL`, accountID)
	if err != nil {
		return u, wrapDB(err, "account usage")
	}
	err = s.db.GetContext(ctx, &u, `
		SELECT count(*) FILTER (WHERE created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS runs_today,
			count(*) FILTER (WHERE status = 'running') AS running,
			count(*) FILTER (WHERE status = 'queued') AS queued
		FROM jobs WHERE account_id = $1
			AND (status IN ('queued', 'running') OR created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')`, accountID)
	return u, wrapDB(err, "account usage")
}

// UnfinishedJobs counts the account's queued and running jobs.
func (s *Store) UnfinishedJobs(ctx context.Context, accountID uuid.UUID) (int, error) {
	var n int
	err := s.db.GetContext(ctx, &n, `
		SELECT count(*) FROM jobs WHERE account_id = $1 AND status IN ('queued', 'running')`, accountID)
	return n, wrapDB(err, "count unfinished jobs")
}
