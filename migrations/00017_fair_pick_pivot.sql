-- pick_fair_job's walk over the accounts with queued jobs starts at a
-- random point *within* their ID range.
--
-- Until now the walk started at gen_random_uuid(). Account IDs are
-- UUIDv7 (their leading 48 bits are the creation time), all in a narrow
-- range that a random UUID almost never falls in, so the walk nearly always
-- wrapped to the oldest account. The walk ranks at most 100 accounts: with
-- more than 100 accounts with queued jobs in one queue, the accounts past
-- the oldest 100 were almost never in the window, and their jobs waited
-- until the older accounts' queued jobs were gone (their own deliveries ran
-- the older accounts' jobs). Now the start is a random point between the
-- oldest and the newest account (two probes of the accounts' primary key:
-- the ends of jobs_queued_account_idx can be long runs of dead entries
-- after a burst), so every account can be in the window. With 100 accounts
-- or fewer with queued jobs every one is ranked, as before, and the pick
-- is the same.
--
-- Migrations are append-only: the function's text is 00015's but for the
-- start (and Down puts 00015's back).

-- +goose Up
-- +goose StatementBegin
-- lead48 is the leading 48 bits of a UUID (of a UUIDv7, its time in ms).
CREATE FUNCTION lead48(u uuid) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT ('x' || lpad(left(replace(u::text, '-', ''), 12), 16, '0'))::bit(64)::bigint
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pick_fair_job(own uuid, grace double precision) RETURNS uuid
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    q       text;
    expired boolean;
    pivot   uuid;
    lo      uuid;
    hi      uuid;
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
    -- The walk starts at a random point between the oldest and the newest
    -- account (their IDs' 48-bit leading part: an account ID is a UUIDv7,
    -- whose leading 48 bits are its creation time in ms), so that past 100
    -- accounts with queued jobs each of them can be in the window. A random
    -- UUID would fall outside that range nearly always, and the walk would
    -- start at the oldest account.
    lo := (SELECT id FROM accounts ORDER BY id LIMIT 1);
    hi := (SELECT id FROM accounts ORDER BY id DESC LIMIT 1);
    pivot := (lpad(to_hex(lead48(lo) + floor(random() * (lead48(hi) - lead48(lo) + 1))::bigint), 12, '0')
              || repeat('0', 20))::uuid;
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
DROP FUNCTION lead48(uuid);
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
