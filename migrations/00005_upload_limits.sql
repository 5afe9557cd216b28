-- Upload limits, and module bytes stored per account.
--
-- Upload limits per tier: how many uploads an account may make per minute
-- (GCRA in Redis, like runs_per_minute), and how many live modules and how
-- many bytes of live modules it may hold (counted in Postgres when a module
-- is created). 0 means unlimited. Tiers other than the three built-in ones
-- get the free tier's values; raise them with PATCH /v1/admin/tiers/{name}.

-- +goose Up
ALTER TABLE tiers
    ADD COLUMN uploads_per_minute       integer NOT NULL DEFAULT 10 CHECK (uploads_per_minute >= 0),
    ADD COLUMN max_modules              integer NOT NULL DEFAULT 100 CHECK (max_modules >= 0),
    ADD COLUMN max_module_storage_bytes bigint  NOT NULL DEFAULT 268435456 CHECK (max_module_storage_bytes >= 0);

UPDATE tiers SET uploads_per_minute = 30, max_modules = 1000, max_module_storage_bytes = 2147483648
WHERE name = 'basic';
UPDATE tiers SET uploads_per_minute = 100, max_modules = 10000, max_module_storage_bytes = 21474836480
WHERE name = 'pro';

-- Module bytes were stored once per SHA-256 whoever uploaded them, so an
-- upload of bytes another account held skipped the blob write and answered
-- several times faster: its timing told whether another tenant had the
-- module. Blobs are now kept per account and SHA-256 (deduplicated only
-- within an account): every new module of an account writes its own bytes,
-- whatever other accounts hold. Existing blobs are copied to each account
-- that has a module of them; blobs no module refers to are dropped (the
-- reconciler would have purged them).
ALTER TABLE modules DROP CONSTRAINT modules_sha256_fkey;
ALTER TABLE module_blobs RENAME TO module_blobs_shared;
ALTER TABLE module_blobs_shared RENAME CONSTRAINT module_blobs_pkey TO module_blobs_shared_pkey;
CREATE TABLE module_blobs (
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    sha256     bytea NOT NULL CHECK (length(sha256) = 32),
    size_bytes bigint NOT NULL,
    content    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, sha256)
);
INSERT INTO module_blobs (account_id, sha256, size_bytes, content, created_at)
SELECT DISTINCT ON (m.account_id, m.sha256) m.account_id, b.sha256, b.size_bytes, b.content, b.created_at
FROM modules m JOIN module_blobs_shared b ON b.sha256 = m.sha256;
DROP TABLE module_blobs_shared;
-- A worker fetches a module's bytes by SHA-256 alone (any account's copy).
CREATE INDEX module_blobs_sha_idx ON module_blobs (sha256);
ALTER TABLE modules ADD CONSTRAINT modules_blob_fkey
    FOREIGN KEY (account_id, sha256) REFERENCES module_blobs (account_id, sha256);

-- Workers ask which of the modules they keep locally no account holds any
-- more (deleted), to remove their files.
CREATE INDEX modules_live_sha_idx ON modules (sha256) WHERE deleted_at IS NULL;

-- +goose Down
DROP INDEX modules_live_sha_idx;
ALTER TABLE modules DROP CONSTRAINT modules_blob_fkey;
ALTER TABLE module_blobs RENAME TO module_blobs_per_account;
ALTER TABLE module_blobs_per_account RENAME CONSTRAINT module_blobs_pkey TO module_blobs_per_account_pkey;
CREATE TABLE module_blobs (
    sha256     bytea PRIMARY KEY CHECK (length(sha256) = 32),
    size_bytes bigint NOT NULL,
    content    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO module_blobs (sha256, size_bytes, content, created_at)
SELECT DISTINCT ON (sha256) sha256, size_bytes, content, created_at FROM module_blobs_per_account;
DROP TABLE module_blobs_per_account;
ALTER TABLE modules ADD CONSTRAINT modules_sha256_fkey FOREIGN KEY (sha256) REFERENCES module_blobs (sha256);
ALTER TABLE tiers
    DROP COLUMN uploads_per_minute,
    DROP COLUMN max_modules,
    DROP COLUMN max_module_storage_bytes;
