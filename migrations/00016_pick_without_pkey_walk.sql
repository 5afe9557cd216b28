-- The fair pick's lock of an account's oldest queued job, without the
-- primary key walk.
--
-- pick_fair_job took the job with
--   SELECT id FROM jobs WHERE queue = q AND status = 'queued' AND
--   account_id = acct ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
-- and PL/pgSQL runs it with a generic plan after a few calls. For that
-- plan the planner expects a queued job of the account every few hundred
-- jobs in id order, and with the heap fetch that FOR UPDATE needs it
-- priced a walk of the primary key (the jobs in id order, filtered) below
-- the partial index jobs_queued_account_idx. But ids are times: the
-- queued jobs are the newest, so the walk reads every finished job first.
-- On the benchmark's database (19,000 jobs, 4,000 queued) the statement
-- took 30 ms on average against microseconds, and the end-to-end rate fell
-- to 40 jobs/s: the "slow mode" of the 50-account runs in
-- docs/BENCHMARKS.md. Ordering by the index's own columns does not help
-- (the equalities make them constant).
--
-- Now the ids come from the index alone (an index-only scan, which the
-- planner prices below any heap walk), 32 of them oldest first, and only
-- those rows are locked, the first one no concurrent claim holds. With
-- all 32 held (more concurrent claims of one account than that), the old
-- statement runs.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION oldest_free_queued_job(q text, acct uuid) RETURNS uuid
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    picked uuid;
BEGIN
    SELECT j.id INTO picked FROM jobs j
    WHERE j.id = ANY (ARRAY(SELECT o.id FROM jobs o
                            WHERE o.queue = q AND o.status = 'queued' AND o.account_id = acct
                            ORDER BY o.id LIMIT 32))
        AND j.status = 'queued'
    ORDER BY j.id LIMIT 1
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        SELECT id INTO picked FROM jobs
        WHERE queue = q AND status = 'queued' AND account_id = acct
        ORDER BY id LIMIT 1
        FOR UPDATE SKIP LOCKED;
    END IF;
    RETURN picked;
END
$$;
-- +goose StatementEnd

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
        RETURN coalesce(oldest_free_queued_job(q, accts[1]), own);
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
        picked := oldest_free_queued_job(q, acct);
        IF picked IS NOT NULL THEN
            RETURN picked;
        END IF;
    END LOOP;
    RETURN own;
END
$$;
-- +goose StatementEnd

-- +goose Down
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

DROP FUNCTION oldest_free_queued_job(text, uuid);
