-- A job's slot is given back by its ending itself, with no write.
--
-- Until now a trigger gave a limited job's slot back (account_slots.job_id
-- set to NULL) in the transaction that ended the job: one more row update,
-- its WAL and a PL/pgSQL call in every finish of a job on a tier with a
-- concurrency limit. Now a slot is free when its job_id is NULL or names a
-- job that has visibly ended (status only moves forward, so a slot seen
-- free stays free): the submit that takes it checks, and ending a job
-- writes nothing to account_slots.
--
-- Why "ended" and not "not unfinished": a submit that finds a slot free in
-- its snapshot and then finds, on locking it, that a concurrent submit took
-- it since, re-checks the slot's new version against its own snapshot
-- (READ COMMITTED's re-check). The new job is not visible to that snapshot:
-- "the named job has ended" is then false and the slot is skipped, where
-- "no unfinished job of that id is visible" would be true and take it twice.
--
-- A deleted job that still holds its slot (DeleteQueuedJob, retention of an
-- ended job whose slot nobody took since) gives it back on deletion: its
-- slot row would otherwise name a job that never ends.

-- +goose Up
DROP TRIGGER jobs_release_slot ON jobs;
DROP TRIGGER jobs_release_slot_on_delete ON jobs;
CREATE TRIGGER jobs_release_slot_on_delete
    AFTER DELETE ON jobs
    FOR EACH ROW
    WHEN (OLD.slot IS NOT NULL)
    EXECUTE FUNCTION release_account_slot();

-- +goose Down
DROP TRIGGER jobs_release_slot_on_delete ON jobs;
UPDATE account_slots s SET job_id = NULL
WHERE job_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = s.job_id AND j.status IN ('queued', 'running'));
CREATE TRIGGER jobs_release_slot
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (OLD.slot IS NOT NULL AND OLD.status IN ('queued', 'running') AND NEW.status NOT IN ('queued', 'running'))
    EXECUTE FUNCTION release_account_slot();
CREATE TRIGGER jobs_release_slot_on_delete
    AFTER DELETE ON jobs
    FOR EACH ROW
    WHEN (OLD.slot IS NOT NULL AND OLD.status IN ('queued', 'running'))
    EXECUTE FUNCTION release_account_slot();
