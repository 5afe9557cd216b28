-- Signed result webhooks: one delivery per terminal transition of a job with
-- a webhook_url, every attempt recorded, and a second secret during a
-- rotation's overlap.

-- +goose Up
ALTER TABLE accounts
    ADD COLUMN previous_webhook_secret text,
    ADD COLUMN previous_secret_expires_at timestamptz;

CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY,          -- the webhook-id header, stable across retries
    job_id          uuid NOT NULL UNIQUE REFERENCES jobs (id) ON DELETE CASCADE,
    account_id      uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    url             text NOT NULL,
    event_type      text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    payload         bytea,                     -- the body, fixed at the first attempt
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

CREATE TABLE webhook_attempts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id      uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt          integer NOT NULL,
    status_code      integer,
    duration_ms      integer NOT NULL,
    error            text,
    response_excerpt text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

-- Exactly one delivery per job, whoever made it terminal (worker, cancel,
-- reconciler, module deletion): a terminal status never changes again.
-- +goose StatementBegin
CREATE FUNCTION create_webhook_delivery() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (id, job_id, account_id, url, event_type)
    VALUES (gen_random_uuid(), NEW.id, NEW.account_id, NEW.webhook_url, 'job.' || NEW.status)
    ON CONFLICT (job_id) DO NOTHING;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER jobs_webhook_delivery
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.webhook_url IS NOT NULL
          AND OLD.status IS DISTINCT FROM NEW.status
          AND NEW.status IN ('succeeded', 'failed', 'timed_out', 'cancelled'))
    EXECUTE FUNCTION create_webhook_delivery();

-- +goose Down
DROP TRIGGER jobs_webhook_delivery ON jobs;
DROP FUNCTION create_webhook_delivery();
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
ALTER TABLE accounts DROP COLUMN previous_secret_expires_at, DROP COLUMN previous_webhook_secret;
