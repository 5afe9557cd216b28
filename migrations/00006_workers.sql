-- Workers prove they are alive: each worker process has a row that it
-- refreshes every few seconds (heartbeat_at, Postgres's own clock). A
-- running job whose worker's heartbeat is older than the lease, or whose
-- worker stopped, is recovered by the reconciler without waiting for the
-- job's timeout. Jobs already name their worker (jobs.worker_id); a job
-- whose worker has no row (claimed before this migration) keeps the older
-- timeout-plus-grace recovery.

-- +goose Up
CREATE TABLE workers (
    id           text PRIMARY KEY,
    host         text NOT NULL DEFAULT '',
    pid          integer NOT NULL DEFAULT 0,
    version      text NOT NULL DEFAULT '',
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    -- Set when the worker shut down gracefully: its jobs (if any are left
    -- running) are recovered at once.
    stopped_at   timestamptz
);

-- The reconciler's lookups of running jobs by worker.
CREATE INDEX jobs_running_worker_idx ON jobs (worker_id) WHERE status = 'running';

-- +goose Down
DROP INDEX jobs_running_worker_idx;
DROP TABLE workers;
