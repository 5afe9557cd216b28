-- Only jobs that a client is long-polling announce their end with NOTIFY.
--
-- A transaction that notifies holds a cluster-wide lock from before its
-- commit until after it, so notifying commits cannot share a disk flush:
-- with a NOTIFY on every terminal transition, job throughput was bound by
-- one flush per finished job (docs/BENCHMARKS.md). A job is watched when it
-- is submitted with ?wait=, or when a GET ?wait= (or a cancel that waits)
-- finds it unfinished; the API sets the flag before it reads the job, so a
-- finish that commits after the flag notifies, and one that committed
-- before it is seen by the read.

-- +goose Up
ALTER TABLE jobs ADD COLUMN watched boolean NOT NULL DEFAULT false;

DROP TRIGGER jobs_notify_terminal ON jobs;
CREATE TRIGGER jobs_notify_terminal
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.watched
          AND OLD.status IS DISTINCT FROM NEW.status
          AND NEW.status IN ('succeeded', 'failed', 'timed_out', 'cancelled'))
    EXECUTE FUNCTION notify_job_terminal();

-- +goose Down
DROP TRIGGER jobs_notify_terminal ON jobs;
CREATE TRIGGER jobs_notify_terminal
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          AND NEW.status IN ('succeeded', 'failed', 'timed_out', 'cancelled'))
    EXECUTE FUNCTION notify_job_terminal();
ALTER TABLE jobs DROP COLUMN watched;
