-- +goose Up
-- The W3C traceparent of the request that submitted a job, when tracing is
-- on (NULL otherwise): written by the job's insert, read back by the claim,
-- so a worker's spans join the submit's trace however the job reached it
-- (asynq, doorbell, a reconciler's re-enqueue or recovery, a fair claim of
-- another job's delivery). Nullable without a default: adding it rewrites
-- nothing.
ALTER TABLE jobs ADD COLUMN traceparent text;

-- +goose Down
ALTER TABLE jobs DROP COLUMN traceparent;
