-- Fairness between tenants: an exact concurrency limit that does not
-- serialise an account's submits, and a claim that serves, within a tier,
-- the account with the fewest running jobs first.
--
-- account_slots holds up to max_concurrent_runs rows per account, numbered
-- from 0 (made on demand, 1024 at a time). A submit of a limited account
-- takes a free slot with FOR UPDATE SKIP LOCKED in the statement that
-- inserts the job, and records it in jobs.slot: concurrent submits of one
-- account take different slots instead of waiting for each other, and no
-- more jobs than slots are ever admitted. A job gives its slot back in
-- the same transaction as its terminal transition or its deletion (the
-- triggers below), whichever path ends it, so a slot never leaks.

-- +goose Up
CREATE TABLE account_slots (
    account_id uuid    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    slot       integer NOT NULL CHECK (slot >= 0),
    job_id     uuid,
    -- A random place: concurrent submits start their search for a free
    -- slot at random places, so they seldom meet on the same rows.
    pos        double precision NOT NULL DEFAULT random(),
    PRIMARY KEY (account_id, slot)
);

-- The slot a job holds (NULL: none, the job's tier had no limit).
ALTER TABLE jobs ADD COLUMN slot integer;

-- A submit finds a free slot without walking the taken ones.
CREATE INDEX account_slots_free_idx ON account_slots (account_id, pos) WHERE job_id IS NULL;

-- Unfinished jobs hold slots from the start, whatever their tier.
UPDATE jobs j SET slot = n.slot
FROM (SELECT id, (row_number() OVER (PARTITION BY account_id ORDER BY id) - 1)::integer AS slot
      FROM jobs WHERE status IN ('queued', 'running')) n
WHERE j.id = n.id;
INSERT INTO account_slots (account_id, slot, job_id)
SELECT account_id, slot, id FROM jobs WHERE slot IS NOT NULL;

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

-- The queued jobs of a tier by account, oldest first, and each account's
-- latest start (fair claim).
CREATE INDEX jobs_queued_account_idx ON jobs (queue, account_id, id) WHERE status = 'queued';
CREATE INDEX jobs_account_started_idx ON jobs (account_id, started_at DESC) WHERE started_at IS NOT NULL;

-- pick_fair_job returns the job a delivery of job own should run: own when
-- it is a running job whose claim expired (its worker died); else, among
-- the accounts with queued jobs in own's queue (at most 100 of them,
-- starting from a random account so that none is always left out), the
-- oldest queued job nobody is claiming of the account with the fewest
-- running jobs; among those, of the account whose latest job started
-- longest ago (never first): turns go round the accounts, so a small worker
-- pool, where nobody has a job running when a slot frees, is shared too;
-- last, the account whose oldest queued job is oldest. The job is locked
-- FOR UPDATE for the caller's statement; own when there is none.
-- +goose StatementBegin
CREATE FUNCTION pick_fair_job(own uuid, grace double precision) RETURNS uuid
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    q       text;
    expired boolean;
    pivot   uuid := gen_random_uuid();
    acct    uuid;
    accts   uuid[] := '{}';
    wrapped boolean := false;
    picked  uuid;
BEGIN
    SELECT queue, status = 'running' AND started_at < now() - make_interval(secs => timeout_ms / 1000.0 + grace)
    INTO q, expired FROM jobs WHERE id = own;
    IF NOT FOUND OR expired THEN
        RETURN own;
    END IF;
    acct := pivot;
    WHILE cardinality(accts) < 100 LOOP
        SELECT account_id INTO acct FROM jobs
        WHERE queue = q AND status = 'queued' AND account_id > acct
        ORDER BY account_id LIMIT 1;
        IF NOT FOUND THEN
            EXIT WHEN wrapped;
            wrapped := true;
            acct := '00000000-0000-0000-0000-000000000000';
            CONTINUE;
        END IF;
        EXIT WHEN wrapped AND acct > pivot;
        accts := accts || acct;
    END LOOP;
    IF cardinality(accts) = 1 THEN
        -- One account waiting (the common case): nothing to rank.
        SELECT id INTO picked FROM jobs
        WHERE queue = q AND status = 'queued' AND account_id = accts[1]
        ORDER BY id LIMIT 1
        FOR UPDATE SKIP LOCKED;
        RETURN coalesce(picked, own);
    END IF;
    FOR acct IN
        SELECT a.id FROM unnest(accts) AS a(id)
        ORDER BY (SELECT count(*) FROM jobs r WHERE r.account_id = a.id AND r.status = 'running'),
                 (SELECT s.started_at FROM jobs s WHERE s.account_id = a.id AND s.started_at IS NOT NULL
                  ORDER BY s.started_at DESC LIMIT 1) NULLS FIRST,
                 (SELECT o.id FROM jobs o WHERE o.queue = q AND o.status = 'queued' AND o.account_id = a.id
                  ORDER BY o.id LIMIT 1)
    LOOP
        SELECT id INTO picked FROM jobs
        WHERE queue = q AND status = 'queued' AND account_id = acct
        ORDER BY id LIMIT 1
        FOR UPDATE SKIP LOCKED;
        IF FOUND THEN
            RETURN picked;
        END IF;
    END LOOP;
    RETURN own;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION pick_fair_job(uuid, double precision);
DROP INDEX jobs_account_started_idx;
DROP INDEX jobs_queued_account_idx;
DROP TRIGGER jobs_release_slot_on_delete ON jobs;
DROP TRIGGER jobs_release_slot ON jobs;
DROP FUNCTION release_account_slot();
DROP TABLE account_slots;
ALTER TABLE jobs DROP COLUMN slot;
