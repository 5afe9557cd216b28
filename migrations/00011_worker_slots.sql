-- Autoscaling: each worker says in its heartbeat how many jobs it runs at
-- once (WIZARD_WORKER_CONCURRENCY), so that GET /v1/admin/scaling can turn
-- queued and running jobs into a number of workers without the API being
-- configured with the workers' concurrency. 0: unknown (a worker from
-- before this column).
--
-- The scaling figures need no new index: queued jobs per queue are counted
-- from jobs_queued_account_idx (queue, account_id, id) WHERE status =
-- 'queued' (index-only), and running jobs, at most the fleet's slots,
-- through the partial indexes of unfinished jobs (jobs_unfinished_idx,
-- jobs_running_worker_idx).

-- +goose Up
ALTER TABLE workers ADD COLUMN concurrency integer NOT NULL DEFAULT 0 CHECK (concurrency >= 0);

-- +goose Down
ALTER TABLE workers DROP COLUMN concurrency;
