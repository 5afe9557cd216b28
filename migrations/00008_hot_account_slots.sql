-- Taking and giving back a slot as HOT updates.
--
-- 00007 found a free slot through a partial index WHERE job_id IS NULL.
-- Because job_id is in that index's predicate, no update of job_id could
-- be HOT: every take and every give-back wrote a new heap tuple with new
-- entries in both of account_slots' indexes, and left a dead entry in the
-- free-slot index. Now the search for a free slot walks an index on
-- (account_id, pos) that job_id is not part of, and skips taken rows: a
-- take or a give-back changes only the heap page (a HOT update, when the
-- page has room: hence the fillfactor). The walk is bounded by the
-- account's rows, which are bounded by its tier's limit; slot rows are
-- made so that at least half of them are free right after (see createJob).

-- +goose Up
ALTER TABLE account_slots SET (fillfactor = 70);
CREATE INDEX account_slots_pos_idx ON account_slots (account_id, pos);
DROP INDEX account_slots_free_idx;

-- +goose Down
CREATE INDEX account_slots_free_idx ON account_slots (account_id, pos) WHERE job_id IS NULL;
DROP INDEX account_slots_pos_idx;
ALTER TABLE account_slots RESET (fillfactor);
