package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/store"
)

// The search for a free slot is sized from the rows this process knows the
// account has. When another process has made more rows since, the count
// here is stale: the search looks at a wider window, still takes a free
// slot, and makes no rows.
func TestAStaleSlotCountStillFindsAFreeSlot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	actor := store.Actor{Name: "test"}
	const limit = 100_000
	_, err := b.st.CreateJob(ctx, actor, b.limited(limit)) // makes the first rows, counted here
	require.NoError(t, err)
	var known int
	require.NoError(t, b.st.DB().QueryRowContext(ctx, `SELECT count(*) FROM account_slots
		WHERE account_id = $1`, b.account.ID).Scan(&known))
	// Another process takes every row this one knows of and makes seven
	// times as many.
	_, err = b.st.DB().ExecContext(ctx, `UPDATE account_slots SET job_id = gen_random_uuid()
		WHERE account_id = $1 AND job_id IS NULL`, b.account.ID)
	require.NoError(t, err)
	_, err = b.st.DB().ExecContext(ctx, `INSERT INTO account_slots (account_id, slot)
		SELECT $1, g FROM generate_series($2::integer, $3::integer) AS g`, b.account.ID, known, 8*known-1)
	require.NoError(t, err)
	for range 20 {
		j, err := b.st.CreateJob(ctx, actor, b.limited(limit))
		require.NoError(t, err)
		var slot int
		require.NoError(t, b.st.DB().QueryRowContext(ctx, `SELECT slot FROM jobs WHERE id = $1`, j.ID).Scan(&slot))
		require.GreaterOrEqual(t, slot, known, "a free slot, made by the other process")
	}
	var rows int
	require.NoError(t, b.st.DB().QueryRowContext(ctx, `SELECT count(*) FROM account_slots
		WHERE account_id = $1`, b.account.ID).Scan(&rows))
	require.Equal(t, 8*known, rows, "no rows made")
}
