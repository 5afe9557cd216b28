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

-- Workers ask which of the modules they keep locally no account holds any
-- more (deleted), to remove their files.
CREATE INDEX modules_live_sha_idx ON modules (sha256) WHERE deleted_at IS NULL;

-- +goose Down
DROP INDEX modules_live_sha_idx;
ALTER TABLE tiers
    DROP COLUMN uploads_per_minute,
    DROP COLUMN max_modules,
    DROP COLUMN max_module_storage_bytes;
