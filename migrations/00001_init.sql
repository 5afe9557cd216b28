-- The first schema: tiers, accounts, keys, modules (content stored once per
-- SHA-256), jobs, idempotency keys and audit events. Later features add
-- tables (webhook deliveries, usage) rather than rewriting these.

-- +goose Up
CREATE TABLE tiers (
    name                 text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,31}$'),
    runs_per_minute      integer NOT NULL CHECK (runs_per_minute >= 0),
    runs_per_day         integer NOT NULL CHECK (runs_per_day >= 0),
    max_concurrent_runs  integer NOT NULL CHECK (max_concurrent_runs >= 0),
    default_timeout_ms   integer NOT NULL CHECK (default_timeout_ms > 0),
    max_timeout_ms       integer NOT NULL CHECK (max_timeout_ms >= default_timeout_ms),
    default_memory_mb    integer NOT NULL CHECK (default_memory_mb > 0),
    max_memory_mb        integer NOT NULL CHECK (max_memory_mb >= default_memory_mb),
    default_output_bytes integer NOT NULL CHECK (default_output_bytes > 0),
    max_output_bytes     integer NOT NULL CHECK (max_output_bytes >= default_output_bytes),
    max_module_bytes     bigint  NOT NULL CHECK (max_module_bytes > 0),
    queue_weight         integer NOT NULL CHECK (queue_weight > 0),
    reads_per_minute     integer NOT NULL CHECK (reads_per_minute >= 0),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

INSERT INTO tiers (name, runs_per_minute, runs_per_day, max_concurrent_runs,
                   default_timeout_ms, max_timeout_ms, default_memory_mb, max_memory_mb,
                   default_output_bytes, max_output_bytes, max_module_bytes,
                   queue_weight, reads_per_minute)
VALUES ('free',   10,   500,   5, 5000,  5000, 128, 128, 1048576,  1048576, 10485760, 1,  600),
       ('basic', 100, 10000,  20, 5000, 10000, 128, 256, 1048576,  4194304, 26214400, 3, 1800),
       ('pro',   500, 50000, 100, 5000, 30000, 128, 512, 1048576, 16777216, 52428800, 6, 6000);

CREATE TABLE accounts (
    id             uuid PRIMARY KEY,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    tier           text NOT NULL REFERENCES tiers (name) ON UPDATE CASCADE,
    webhook_secret text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    disabled_at    timestamptz
);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         text NOT NULL DEFAULT '',
    prefix       text NOT NULL,
    hash         bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_account_idx ON api_keys (account_id, id);

-- Module content, stored once per SHA-256 whoever uploads it.
CREATE TABLE module_blobs (
    sha256     bytea PRIMARY KEY CHECK (length(sha256) = 32),
    size_bytes bigint NOT NULL,
    content    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE modules (
    id         uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       text NOT NULL DEFAULT '',
    sha256     bytea NOT NULL REFERENCES module_blobs (sha256),
    size_bytes bigint NOT NULL,
    imports    jsonb NOT NULL DEFAULT '[]',
    exports    jsonb NOT NULL DEFAULT '[]',
    wasi       boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
-- One live module per account and content: re-uploading returns it.
CREATE UNIQUE INDEX modules_account_sha_idx ON modules (account_id, sha256) WHERE deleted_at IS NULL;
-- Keyset pagination of an account's modules, newest first (ids are UUIDv7).
CREATE INDEX modules_account_id_idx ON modules (account_id, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE jobs (
    id                uuid PRIMARY KEY,
    account_id        uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    module_id         uuid NOT NULL REFERENCES modules (id),
    module_sha256     bytea NOT NULL,
    queue             text NOT NULL,
    function          text NOT NULL DEFAULT '_start',
    args              jsonb NOT NULL DEFAULT '[]',
    env               jsonb NOT NULL DEFAULT '{}',
    stdin             bytea NOT NULL DEFAULT '',
    params            jsonb NOT NULL DEFAULT '[]',
    timeout_ms        integer NOT NULL,
    memory_limit_mb   integer NOT NULL,
    max_output_bytes  integer NOT NULL,
    deterministic     boolean NOT NULL DEFAULT false,
    webhook_url       text,
    metadata          jsonb NOT NULL DEFAULT '{}',
    status            text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled')),
    attempts          integer NOT NULL DEFAULT 0,
    exit_code         integer,
    stdout            bytea,
    stderr            bytea,
    stdout_truncated  boolean NOT NULL DEFAULT false,
    stderr_truncated  boolean NOT NULL DEFAULT false,
    return_values     jsonb,
    error_code        text,
    error_message     text,
    memory_peak_bytes bigint,
    run_ms            integer,
    worker_id         text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- Keyset pagination of an account's jobs, newest first, with and without
-- the status and module filters.
CREATE INDEX jobs_account_id_idx ON jobs (account_id, id DESC);
CREATE INDEX jobs_account_status_id_idx ON jobs (account_id, status, id DESC);
CREATE INDEX jobs_account_module_id_idx ON jobs (account_id, module_id, id DESC);
-- The reconciler's view: jobs that are not finished yet.
CREATE INDEX jobs_unfinished_idx ON jobs (status, updated_at) WHERE status IN ('queued', 'running');
-- Retention: finished jobs by age.
CREATE INDEX jobs_finished_at_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- Idempotency-Key: one job per (account, key) for 24 h.
CREATE TABLE idempotency_keys (
    account_id   uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash bytea NOT NULL,
    job_id       uuid REFERENCES jobs (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Audit events: job lifecycle, admin actions, authentication failures.
-- Never holds secrets or guest output.
CREATE TABLE audit_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   uuid,
    actor        text NOT NULL,
    action       text NOT NULL,
    subject_type text NOT NULL DEFAULT '',
    subject_id   text NOT NULL DEFAULT '',
    job_id       uuid,
    request_id   text NOT NULL DEFAULT '',
    data         jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_job_idx ON audit_events (job_id, id) WHERE job_id IS NOT NULL;
CREATE INDEX audit_events_account_idx ON audit_events (account_id, id DESC);
CREATE INDEX audit_events_created_idx ON audit_events (created_at);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE idempotency_keys;
DROP TABLE jobs;
DROP TABLE modules;
DROP TABLE module_blobs;
DROP TABLE api_keys;
DROP TABLE accounts;
DROP TABLE tiers;
