package migrations_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Migration 00014 moves the slots that unfinished jobs hold from
// account_slots into a unique index on jobs (a slot two jobs shared stays
// with the older one), and its Down makes the slot rows again: one per
// slot up to the highest held, naming its job, given back by the trigger.
func TestSlotsMoveIntoTheJobsIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := freshDB(t)
	p := provider(t, db)
	_, err := p.UpTo(ctx, 13)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `
		INSERT INTO accounts (id, name, tier, webhook_secret) VALUES
			('00000000-0000-0000-0000-00000000000a', 'a', 'free', 's');
		INSERT INTO module_blobs (account_id, sha256, size_bytes, content) VALUES
			('00000000-0000-0000-0000-00000000000a', decode(repeat('11', 32), 'hex'), 3, 'one');
		INSERT INTO modules (id, account_id, sha256, size_bytes) VALUES
			('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-00000000000a', decode(repeat('11', 32), 'hex'), 3);
		INSERT INTO jobs (id, account_id, module_id, module_sha256, queue, timeout_ms, memory_limit_mb, max_output_bytes, slot, status)
		SELECT ('00000000-0000-0000-0000-0000000001' || n)::uuid, '00000000-0000-0000-0000-00000000000a',
			'00000000-0000-0000-0000-000000000001', decode(repeat('11', 32), 'hex'), 'q', 1000, 16, 1024, slot, status
		FROM (VALUES ('01', 0, 'queued'), ('02', 2, 'running'), ('03', 2, 'queued'), ('04', 1, 'succeeded')) AS v (n, slot, status);`)
	require.NoError(t, err)

	_, err = p.UpTo(ctx, 14)
	require.NoError(t, err)
	held := func() map[string]*int {
		rows, err := db.QueryContext(ctx, `SELECT right(id::text, 2), slot FROM jobs`)
		require.NoError(t, err)
		defer func() { _ = rows.Close() }()
		m := map[string]*int{}
		for rows.Next() {
			var id string
			var slot *int
			require.NoError(t, rows.Scan(&id, &slot))
			m[id] = slot
		}
		require.NoError(t, rows.Err())
		return m
	}
	got := held()
	require.Equal(t, 0, *got["01"])
	require.Equal(t, 2, *got["02"])
	require.Nil(t, got["03"], "the later of two jobs on one slot holds none")
	_, err = db.ExecContext(ctx, `UPDATE jobs SET status = 'queued', slot = 0 WHERE right(id::text, 2) = '04'`)
	require.ErrorContains(t, err, "jobs_account_slot_idx", "a slot has one unfinished holder")

	_, err = p.DownTo(ctx, 13)
	require.NoError(t, err)
	var slots string
	require.NoError(t, db.QueryRowContext(ctx, `SELECT string_agg(slot || ':' || coalesce(right(job_id::text, 2), '-'), ' ' ORDER BY slot)
		FROM account_slots`).Scan(&slots))
	require.Equal(t, "0:01 1:- 2:02", slots)
	_, err = db.ExecContext(ctx, `UPDATE jobs SET status = 'cancelled' WHERE right(id::text, 2) = '01'`)
	require.NoError(t, err)
	require.NoError(t, db.QueryRowContext(ctx, `SELECT string_agg(slot || ':' || coalesce(right(job_id::text, 2), '-'), ' ' ORDER BY slot)
		FROM account_slots`).Scan(&slots))
	require.Equal(t, "0:- 1:- 2:02", slots, "the trigger gives a slot back")
	_, err = p.UpTo(ctx, 14)
	require.NoError(t, err)
}
