-- Files: job inputs, collected artifacts and module asset trees.
--
-- File bytes are stored content-addressed per account (like module_blobs:
-- never shared across accounts, so that an upload's cost does not tell
-- whether another tenant holds the same bytes), in chunks of at most 1 MiB,
-- so that neither the API nor a worker ever holds a whole large file to
-- write or read it. A blob is written as a pending row (sha256 NULL) whose
-- chunks are added one statement at a time; it becomes the account's blob
-- of that SHA-256 when its last chunk is written (or is dropped for the
-- account's existing copy). Pending rows older than an hour, and blobs
-- that nothing refers to any more, are purged by the reconciler.

-- +goose Up
ALTER TABLE tiers
    ADD COLUMN max_input_bytes    bigint NOT NULL DEFAULT 1048576  CHECK (max_input_bytes >= 0),
    ADD COLUMN max_fs_bytes       bigint NOT NULL DEFAULT 16777216 CHECK (max_fs_bytes >= 0),
    ADD COLUMN max_artifact_bytes bigint NOT NULL DEFAULT 4194304  CHECK (max_artifact_bytes >= 0),
    ADD COLUMN max_asset_bytes    bigint NOT NULL DEFAULT 67108864 CHECK (max_asset_bytes >= 0);
UPDATE tiers SET max_input_bytes = 8388608, max_fs_bytes = 67108864, max_artifact_bytes = 33554432,
    max_asset_bytes = 268435456 WHERE name = 'basic';
UPDATE tiers SET max_input_bytes = 33554432, max_fs_bytes = 268435456, max_artifact_bytes = 134217728,
    max_asset_bytes = 1073741824 WHERE name = 'pro';

CREATE TABLE file_blobs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- NULL while the blob is being written (pending).
    sha256     bytea CHECK (length(sha256) = 32),
    size_bytes bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    -- Reset when the blob is reused, so the purge leaves it alone while
    -- the row that refers to it is written.
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT file_blobs_account_sha_key UNIQUE (account_id, sha256)
);
-- A worker fetches a blob by SHA-256 alone (any account's copy).
CREATE INDEX file_blobs_sha_idx ON file_blobs (sha256) WHERE sha256 IS NOT NULL;
CREATE INDEX file_blobs_created_idx ON file_blobs (created_at);

CREATE TABLE file_blob_chunks (
    blob_id bigint  NOT NULL REFERENCES file_blobs (id) ON DELETE CASCADE,
    seq     integer NOT NULL CHECK (seq >= 0),
    data    bytea   NOT NULL,
    PRIMARY KEY (blob_id, seq)
);
-- Chunks are stored out of line without compression: most file bytes that
-- matter (archives, images, audio, compiled code) do not compress, and a
-- range read then fetches only the TOAST slices it needs.
ALTER TABLE file_blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- The request's files travel with the job: a retried or recovered attempt
-- sees the same ones.
CREATE TABLE job_inputs (
    job_id     uuid   NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    path       text   NOT NULL,
    mode       text   NOT NULL CHECK (mode IN ('ro', 'rw')),
    account_id uuid   NOT NULL,
    sha256     bytea  NOT NULL,
    size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
    PRIMARY KEY (job_id, path),
    FOREIGN KEY (account_id, sha256) REFERENCES file_blobs (account_id, sha256)
);
CREATE INDEX job_inputs_blob_idx ON job_inputs (account_id, sha256);

CREATE TABLE job_artifacts (
    job_id     uuid   NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    path       text   NOT NULL,
    account_id uuid   NOT NULL,
    sha256     bytea  NOT NULL,
    size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, path),
    FOREIGN KEY (account_id, sha256) REFERENCES file_blobs (account_id, sha256)
);
CREATE INDEX job_artifacts_blob_idx ON job_artifacts (account_id, sha256);

-- A module's asset trees: a tar (normalised) stored as a file blob of the
-- module's account, mounted read-only at mount in every run.
CREATE TABLE module_assets (
    module_id  uuid   NOT NULL REFERENCES modules (id) ON DELETE CASCADE,
    mount      text   NOT NULL,
    account_id uuid   NOT NULL,
    sha256     bytea  NOT NULL,
    -- The bytes of the tree's regular files (counted against max_asset_bytes).
    size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
    files      integer NOT NULL CHECK (files >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (module_id, mount),
    FOREIGN KEY (account_id, sha256) REFERENCES file_blobs (account_id, sha256)
);
CREATE INDEX module_assets_blob_idx ON module_assets (account_id, sha256);
-- How many mounts the module has: a job records it at submit, so that a
-- worker asks for the asset list only for jobs whose module has some.
ALTER TABLE modules ADD COLUMN asset_count integer NOT NULL DEFAULT 0 CHECK (asset_count >= 0);

-- The job's file request, its limits snapshotted at submit like the others,
-- and what the worker learns without another query.
ALTER TABLE jobs
    ADD COLUMN preopens            text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN collect             text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN max_fs_bytes        bigint  NOT NULL DEFAULT 0 CHECK (max_fs_bytes >= 0),
    ADD COLUMN max_artifact_bytes  bigint  NOT NULL DEFAULT 0 CHECK (max_artifact_bytes >= 0),
    ADD COLUMN input_count         integer NOT NULL DEFAULT 0 CHECK (input_count >= 0),
    ADD COLUMN asset_count         integer NOT NULL DEFAULT 0 CHECK (asset_count >= 0),
    ADD COLUMN artifacts_truncated boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE jobs
    DROP COLUMN preopens,
    DROP COLUMN collect,
    DROP COLUMN max_fs_bytes,
    DROP COLUMN max_artifact_bytes,
    DROP COLUMN input_count,
    DROP COLUMN asset_count,
    DROP COLUMN artifacts_truncated;
ALTER TABLE modules DROP COLUMN asset_count;
DROP TABLE module_assets;
DROP TABLE job_artifacts;
DROP TABLE job_inputs;
DROP TABLE file_blob_chunks;
DROP TABLE file_blobs;
ALTER TABLE tiers
    DROP COLUMN max_input_bytes,
    DROP COLUMN max_fs_bytes,
    DROP COLUMN max_artifact_bytes,
    DROP COLUMN max_asset_bytes;
