-- max_concurrent_runs limits the jobs that *run* at once, not the jobs
-- that are queued or running.
--
-- Until now a submit of an account with a concurrency limit took one of the
-- account's slots (account_slots) in the job's insert, and the job gave it
-- back when it ended. That one extra row write made a limited account's
-- submits about 15 % slower than an unlimited one's on a 2-core machine,
-- whatever the search for a free slot looked like (docs/BENCHMARKS.md).
-- Now the claim takes the slot, in the statement that moves the job to
-- running, and the job gives it back when it stops running (it ends, or it
-- is handed back to the queue); a submit costs what an unlimited one does.
-- Queued jobs are bounded by runs_per_minute and runs_per_day.
--
-- The claim finds a free slot in slot order (the primary key): taken rows
-- are at most the account's running jobs, which are at most the fleet's
-- job slots, so the walk is short whatever the limit; the random-place
-- index of 00008 is no longer used. Slot rows are still made on demand
-- (below).
--
-- pick_fair_job leaves out the accounts that are at their limit, so a
-- delivery runs the fairest job that can start.
--
-- Queued jobs that hold a slot give it back now. Replace every older API
-- replica and worker when this migration runs: a job that an older API
-- admits afterwards takes a slot that nothing gives back.

-- +goose Up
UPDATE account_slots s SET job_id = NULL
FROM jobs j WHERE j.id = s.job_id AND j.status = 'queued';
UPDATE jobs SET slot = NULL WHERE status = 'queued' AND slot IS NOT NULL;

DROP TRIGGER jobs_release_slot ON jobs;
DROP TRIGGER jobs_release_slot_on_delete ON jobs;
CREATE TRIGGER jobs_release_slot
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (OLD.slot IS NOT NULL AND OLD.status = 'running' AND NEW.status <> 'running')
    EXECUTE FUNCTION release_account_slot();
CREATE TRIGGER jobs_release_slot_on_delete
    AFTER DELETE ON jobs
    FOR EACH ROW
    WHEN (OLD.slot IS NOT NULL AND OLD.status = 'running')
    EXECUTE FUNCTION release_account_slot();

DROP INDEX account_slots_pos_idx;

-- Every account of a limited tier has slot rows before its first claim:
-- min(limit, 16) of them, made when the account is made or changes tier
-- and when its tier's limit changes (and below, for the accounts there
-- are). A claim that takes a slot in the upper half of its account's rows
-- makes more (twice as many, up to the limit), so a fair claim that picks
-- an account's job finds a free row while the account is below its limit.
-- +goose StatementBegin
CREATE FUNCTION make_account_slots() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'accounts' THEN
        INSERT INTO account_slots (account_id, slot)
        SELECT NEW.id, g FROM tiers t, generate_series(0, least(t.max_concurrent_runs, 16) - 1) AS g
        WHERE t.name = NEW.tier
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO account_slots (account_id, slot)
        SELECT a.id, g FROM accounts a, generate_series(0, least(NEW.max_concurrent_runs, 16) - 1) AS g
        WHERE a.tier = NEW.name
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER accounts_make_slots AFTER INSERT OR UPDATE OF tier ON accounts
    FOR EACH ROW EXECUTE FUNCTION make_account_slots();
CREATE TRIGGER tiers_make_slots AFTER UPDATE OF max_concurrent_runs ON tiers
    FOR EACH ROW EXECUTE FUNCTION make_account_slots();
INSERT INTO account_slots (account_id, slot)
SELECT a.id, g FROM accounts a JOIN tiers t ON t.name = a.tier,
    generate_series(0, least(t.max_concurrent_runs, 16) - 1) AS g
ON CONFLICT DO NOTHING;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pick_fair_job(own uuid, grace double precision) RETURNS uuid
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
        SELECT id INTO picked FROM jobs
        WHERE queue = q AND status = 'queued' AND account_id = accts[1]
        ORDER BY id LIMIT 1
        FOR UPDATE SKIP LOCKED;
        RETURN coalesce(picked, own);
    END IF;
    -- Accounts at their concurrency limit are left out: their jobs cannot
    -- start now (the claim's slot decides exactly; this count may be a
    -- moment old).
    FOR acct IN
        SELECT a.id FROM unnest(accts) AS a(id)
        CROSS JOIN LATERAL (SELECT count(*) AS n FROM jobs r WHERE r.account_id = a.id AND r.status = 'running') r
        WHERE NOT EXISTS (SELECT 1 FROM accounts ac JOIN tiers t ON t.name = ac.tier
                          WHERE ac.id = a.id AND t.max_concurrent_runs > 0 AND r.n >= t.max_concurrent_runs)
        ORDER BY r.n,
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
DROP TRIGGER tiers_make_slots ON tiers;
DROP TRIGGER accounts_make_slots ON accounts;
DROP FUNCTION make_account_slots();
CREATE INDEX account_slots_pos_idx ON account_slots (account_id, pos);

DROP TRIGGER jobs_release_slot ON jobs;
DROP TRIGGER jobs_release_slot_on_delete ON jobs;
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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pick_fair_job(own uuid, grace double precision) RETURNS uuid
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
