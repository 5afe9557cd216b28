-- The complete jobs API: cancellation requests, a notification when a job
-- becomes terminal (long-polling), and an index for the combined
-- module + status filter of GET /v1/jobs.

-- +goose Up
-- Set when a client asks to cancel a running job; the worker running it
-- finishes it as cancelled instead of handing it back to the queue.
ALTER TABLE jobs ADD COLUMN cancel_requested_at timestamptz;

-- Every writer that moves a job into a terminal status (the worker, cancel,
-- module deletion, anything added later) wakes the API replicas holding a
-- ?wait= on it. NOTIFY is delivered at commit, so a listener that re-reads
-- the job sees the terminal row.
-- +goose StatementBegin
CREATE FUNCTION notify_job_terminal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('wasmwizard_job_terminal', NEW.id::text);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER jobs_notify_terminal
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          AND NEW.status IN ('succeeded', 'failed', 'timed_out', 'cancelled'))
    EXECUTE FUNCTION notify_job_terminal();

-- GET /v1/jobs?module_id=…&status=… newest first, by keyset.
CREATE INDEX jobs_account_module_status_id_idx ON jobs (account_id, module_id, status, id DESC);

-- +goose Down
DROP INDEX jobs_account_module_status_id_idx;
DROP TRIGGER jobs_notify_terminal ON jobs;
DROP FUNCTION notify_job_terminal();
ALTER TABLE jobs DROP COLUMN cancel_requested_at;
