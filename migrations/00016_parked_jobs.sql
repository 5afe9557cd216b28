-- A queued job whose delivery was dropped because its account ran as many
-- jobs as its limit allows is marked parked; the end of one of the
-- account's running jobs wakes one parked job (and unmarks it).
--
-- Until now the end of a running job woke the account's oldest queued job
-- only if the account still ran at its limit in the finishing statement's
-- snapshot. When the running jobs ended one after another, only the first
-- end saw the limit: the others woke nothing, and the jobs whose
-- deliveries had been dropped waited for the reconciler's sweep (about
-- 30 s) with slots free. Concurrent ends woke the same job. Now each end
-- wakes a distinct parked job (FOR UPDATE SKIP LOCKED), whatever the
-- account runs at that moment, and an account with nothing parked costs
-- the end one probe of an empty partial index.
--
-- Adding a column with a constant default rewrites nothing; parked is in
-- no index but the partial one below, whose rows are only the parked
-- queued jobs, so the claim and the finish touch it only for those.

-- +goose Up
ALTER TABLE jobs ADD COLUMN parked boolean NOT NULL DEFAULT false;
CREATE INDEX jobs_parked_idx ON jobs (account_id, queue, id) WHERE parked AND status = 'queued';

-- +goose Down
DROP INDEX jobs_parked_idx;
ALTER TABLE jobs DROP COLUMN parked;
