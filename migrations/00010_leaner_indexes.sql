-- Fewer index entries per job: every status change of a job is a non-HOT
-- update (status is in several indexes), which adds an entry to every index
-- of jobs, and every audit row adds one to every index of audit_events.
--
-- jobs_account_id_idx and jobs_account_module_id_idx served GET /v1/jobs
-- without a status filter; that listing now merges the per-status parts of
-- jobs_account_status_id_idx and jobs_account_module_status_id_idx, each
-- read in id order (see listJobsQuery). audit_events_created_idx served the
-- retention purge; the purge now walks the oldest rows by id (ids grow with
-- time) and deletes those past the retention. Per job (insert, claim,
-- finish, three audit rows) that is 9 index entries fewer (see
-- docs/BENCHMARKS.md).

-- +goose Up
DROP INDEX jobs_account_id_idx;
DROP INDEX jobs_account_module_id_idx;
DROP INDEX audit_events_created_idx;

-- +goose Down
CREATE INDEX audit_events_created_idx ON audit_events (created_at);
CREATE INDEX jobs_account_module_id_idx ON jobs (account_id, module_id, id DESC);
CREATE INDEX jobs_account_id_idx ON jobs (account_id, id DESC);
