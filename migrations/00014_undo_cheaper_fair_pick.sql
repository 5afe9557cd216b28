-- pick_fair_job as 00007 made it: 00013 is undone.
--
-- 00013 counted every account's running jobs in one pass instead of one
-- probe per account. Measured end to end on the real tier (tools/bench
-- -only real, six alternating runs each, docs/BENCHMARKS.md "2026-12-03
-- afternoon"), it made no difference: 241.5 against 241.0 jobs/s with 50
-- accounts (p = 0.79) and 150.5 against 151.0 with one (p = 0.97). A
-- change to the lifecycle is kept only when it measures faster, so the
-- function goes back to 00007's, the one the older measurements describe.

-- +goose Up
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
        -- One account waiting (the common case): nothing to rank.
        SELECT id INTO picked FROM jobs
        WHERE queue = q AND status = 'queued' AND account_id = accts[1]
        ORDER BY id LIMIT 1
        FOR UPDATE SKIP LOCKED;
        RETURN coalesce(picked, own);
    END IF;
    FOR acct IN
        WITH running AS MATERIALIZED (
            SELECT account_id, count(*) AS n FROM jobs WHERE status = 'running' GROUP BY account_id
        )
        SELECT a.id FROM unnest(accts) AS a(id)
        LEFT JOIN running r ON r.account_id = a.id
        ORDER BY coalesce(r.n, 0),
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
