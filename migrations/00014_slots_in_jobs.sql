-- An account's concurrency slots held by its unfinished jobs themselves.
--
-- 00007 and 00008 kept a row per slot in account_slots: a submit locked a
-- free row (FOR UPDATE SKIP LOCKED) and updated it, and a trigger updated
-- it again when the job ended, so a job of a limited account wrote a slot
-- row three times (a lock and two updates, with a PL/pgSQL call) besides
-- its own row: the profile of one limited account submitting from 32
-- clients put that at ≈ 0.15 ms of Postgres time per job, a sixth more
-- than an unlimited account's (docs/BENCHMARKS.md). Now a unique index on
-- the unfinished jobs' (account_id, slot) is the slot table: a submit
-- inserts its job with a slot no unfinished job of the account holds (ON
-- CONFLICT DO NOTHING when a concurrent submit took it first), and a job
-- gives its slot back by ending: its new row version leaves the index's
-- predicate, whoever ends it (worker, cancel, module deletion, the
-- reconciler) or deletes it. Jobs of unlimited tiers have no slot and are
-- not in the index.

-- +goose Up
-- Unfinished jobs hold different slots (account_slots' primary key made
-- them so); should two ever share one, the later one holds none.
UPDATE jobs SET slot = NULL WHERE id IN (
    SELECT id FROM (
        SELECT id, row_number() OVER (PARTITION BY account_id, slot ORDER BY id) AS n
        FROM jobs WHERE slot IS NOT NULL AND status IN ('queued', 'running')
    ) d WHERE n > 1);
CREATE UNIQUE INDEX jobs_account_slot_idx ON jobs (account_id, slot)
    WHERE slot IS NOT NULL AND status IN ('queued', 'running');
DROP TRIGGER jobs_release_slot_on_delete ON jobs;
DROP TRIGGER jobs_release_slot ON jobs;
DROP FUNCTION release_account_slot();
DROP TABLE account_slots;

-- +goose Down
CREATE TABLE account_slots (
    account_id uuid    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    slot       integer NOT NULL CHECK (slot >= 0),
    job_id     uuid,
    pos        double precision NOT NULL DEFAULT random(),
    PRIMARY KEY (account_id, slot)
) WITH (fillfactor = 70);
CREATE INDEX account_slots_pos_idx ON account_slots (account_id, pos);
-- Every slot up to each account's highest held one, taken by its job.
INSERT INTO account_slots (account_id, slot, job_id)
SELECT h.account_id, g, j.id
FROM (SELECT account_id, max(slot) AS top FROM jobs
      WHERE slot IS NOT NULL AND status IN ('queued', 'running') GROUP BY account_id) h
CROSS JOIN LATERAL generate_series(0, h.top) AS g
LEFT JOIN jobs j ON j.account_id = h.account_id AND j.slot = g AND j.status IN ('queued', 'running');
-- +goose StatementBegin
CREATE FUNCTION release_account_slot() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE account_slots SET job_id = NULL
    WHERE account_id = OLD.account_id AND slot = OLD.slot AND job_id = OLD.id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
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
DROP INDEX jobs_account_slot_idx;
