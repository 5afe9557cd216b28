package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// holdSlots makes the account's unfinished jobs hold every slot below
// limit but free (a copy of job tmpl each; none of them goes to a queue).
func (b bundle) holdSlots(t *testing.T, tmpl uuid.UUID, limit int, free ...int) {
	t.Helper()
	if free == nil {
		free = []int{}
	}
	_, err := b.st.DB().ExecContext(context.Background(), `INSERT INTO jobs
		(id, account_id, module_id, module_sha256, queue, function, timeout_ms, memory_limit_mb, max_output_bytes, slot)
		SELECT gen_random_uuid(), account_id, module_id, module_sha256, queue, function, timeout_ms, memory_limit_mb,
			max_output_bytes, g
		FROM jobs, generate_series(0, $2 - 1) AS g
		WHERE id = $1 AND g <> ALL ($3)`, tmpl, limit, free)
	require.NoError(t, err)
}

// A job gives its slot back by ending, whoever ends it, or by being
// deleted: the next submit gets it, and the one after is refused.
func TestAJobGivesItsSlotBackByEnding(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	actor := store.Actor{Name: "test"}
	j, err := b.st.CreateJob(ctx, actor, b.limited(1))
	require.NoError(t, err)
	_, err = b.st.CreateJob(ctx, actor, b.limited(1))
	require.Equal(t, apperr.QuotaExceeded, apperr.CodeOf(err), "%v", err)

	_, err = b.st.CancelJob(ctx, actor, b.account.ID, j.ID)
	require.NoError(t, err)
	j, err = b.st.CreateJob(ctx, actor, b.limited(1))
	require.NoError(t, err, "the cancelled job's slot is free")

	require.NoError(t, b.st.DeleteQueuedJob(ctx, j.ID))
	j, err = b.st.CreateJob(ctx, actor, b.limited(1))
	require.NoError(t, err, "the deleted job's slot is free")

	zero := 0
	_, err = b.st.ClaimJob(ctx, j.ID, "w")
	require.NoError(t, err)
	_, err = b.st.CreateJob(ctx, actor, b.limited(1))
	require.Equal(t, apperr.QuotaExceeded, apperr.CodeOf(err), "a running job holds its slot: %v", err)
	ok, err := b.st.FinishJob(ctx, j.ID, 1, "w", jobstate.Outcome{Status: jobstate.Succeeded, ExitCode: &zero})
	require.NoError(t, err)
	require.True(t, ok)
	_, err = b.st.CreateJob(ctx, actor, b.limited(1))
	require.NoError(t, err, "the finished job's slot is free")
}

// An account whose slots are all held but one still gets that one,
// wherever it is (the window from a random slot misses it, the search for
// a gap finds it), and no more.
func TestTheLastFreeSlotIsFoundAmongManyTakenOnes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	actor := store.Actor{Name: "test"}
	const limit = 3000
	tmpl, err := b.st.CreateJob(ctx, actor, b.request())
	require.NoError(t, err)
	for _, free := range []int{0, limit / 2, limit - 1} {
		_, err := b.st.DB().ExecContext(ctx, `DELETE FROM jobs WHERE account_id = $1 AND slot IS NOT NULL`, b.account.ID)
		require.NoError(t, err)
		b.holdSlots(t, tmpl.ID, limit, free)
		j, err := b.st.CreateJob(ctx, actor, b.limited(limit))
		require.NoError(t, err, "slot %d is free", free)
		var slot int
		require.NoError(t, b.st.DB().QueryRowContext(ctx, `SELECT slot FROM jobs WHERE id = $1`, j.ID).Scan(&slot))
		require.Equal(t, free, slot)
		_, err = b.st.CreateJob(ctx, actor, b.limited(limit))
		require.Equal(t, apperr.QuotaExceeded, apperr.CodeOf(err), "%v", err)
	}
}

// A job that holds a slot at or above the limit (its tier's limit was
// lowered) does not count: only the limit's lowest slots do.
func TestOnlyTheLowestSlotsCount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	actor := store.Actor{Name: "test"}
	tmpl, err := b.st.CreateJob(ctx, actor, b.request())
	require.NoError(t, err)
	b.holdSlots(t, tmpl.ID, 100, 0)
	j, err := b.st.CreateJob(ctx, actor, b.limited(1))
	require.NoError(t, err)
	require.NoError(t, b.st.DB().QueryRowContext(ctx, `SELECT slot FROM jobs WHERE id = $1`, j.ID).Scan(&j.Attempts))
	require.Zero(t, j.Attempts, "slot 0")
	_, err = b.st.CreateJob(ctx, actor, b.limited(1))
	require.Equal(t, apperr.QuotaExceeded, apperr.CodeOf(err), "%v", err)
}

// A submit refused for want of a free slot writes nothing (no row, no
// lock): an account at its limit that keeps submitting costs the database
// neither WAL nor durable commits, whether its limit is searched in one
// window or needs the search for a gap. An admitted submit writes.
func TestARefusedSubmitWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	actor := store.Actor{Name: "test"}
	wrote, err := b.st.CreateJobWrites(ctx, actor, b.limited(1))
	require.NoError(t, err)
	require.True(t, wrote, "an admitted submit writes")
	_, err = b.st.CreateJob(ctx, actor, b.limited(1))
	require.NoError(t, err)
	wrote, err = b.st.CreateJobWrites(ctx, actor, b.limited(1))
	require.Equal(t, apperr.QuotaExceeded, apperr.CodeOf(err))
	require.False(t, wrote, "a refused submit writes nothing")

	other := b.otherAccount(t, "big")
	tmpl, err := other.st.CreateJob(ctx, actor, other.request())
	require.NoError(t, err)
	other.holdSlots(t, tmpl.ID, 500)
	wrote, err = other.st.CreateJobWrites(ctx, actor, other.limited(500))
	require.Equal(t, apperr.QuotaExceeded, apperr.CodeOf(err), "%v", err)
	require.False(t, wrote, "a refused submit of a large limit writes nothing")
}

// The limit stays exact under concurrent submits of one account, for a
// limit searched in one window and for one that needs the search for a
// gap; a freed slot is taken again; a submit of a module that is gone is
// refused as not_found, not as over the limit.
func TestTheLimitIsExactUnderConcurrentSubmits(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{5, 40} {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := setup(t)
			actor := store.Actor{Name: "test"}
			submit := func(n int) (ids []uuid.UUID, refused int) {
				var mu sync.Mutex
				var wg sync.WaitGroup
				for range n {
					wg.Go(func() {
						j, err := b.st.CreateJob(ctx, actor, b.limited(limit))
						mu.Lock()
						defer mu.Unlock()
						if err != nil {
							require.Equal(t, apperr.QuotaExceeded, apperr.CodeOf(err), "%v", err)
							refused++
							return
						}
						ids = append(ids, j.ID)
					})
				}
				wg.Wait()
				return ids, refused
			}
			ids, refused := submit(4 * limit)
			require.Len(t, ids, limit)
			require.Equal(t, 3*limit, refused)
			for _, id := range ids[:2] {
				_, err := b.st.CancelJob(ctx, actor, b.account.ID, id)
				require.NoError(t, err)
			}
			again, refused := submit(10)
			require.Len(t, again, 2, "exactly the freed slots are taken again")
			require.Equal(t, 8, refused)
			var unfinished int
			require.NoError(t, b.st.DB().QueryRowContext(ctx, `SELECT count(*) FROM jobs
				WHERE account_id = $1 AND status IN ('queued', 'running')`, b.account.ID).Scan(&unfinished))
			require.Equal(t, limit, unfinished)

			_, err := b.st.DeleteModule(ctx, actor, b.account.ID, b.module.ID)
			require.NoError(t, err)
			_, err = b.st.CreateJob(ctx, actor, b.limited(limit))
			require.Equal(t, apperr.NotFound, apperr.CodeOf(err), "%v", err)
		})
	}
}
