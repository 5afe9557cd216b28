package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// Taking a slot and giving it back change only the slot row's heap page
// (HOT updates): no index of account_slots depends on job_id, and its pages
// keep room for the new row versions.
func TestTakingAndGivingBackASlotAreHOTUpdates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	actor := store.Actor{Name: "test"}
	j, err := b.st.CreateJob(ctx, actor, b.limited(3))
	require.NoError(t, err)
	_, err = b.st.CancelJob(ctx, actor, b.account.ID, j.ID)
	require.NoError(t, err)
	// Backends report their counters to pg_stat_user_tables within a
	// second or so of going idle.
	var upd, hot int
	require.Eventually(t, func() bool {
		require.NoError(t, b.st.DB().QueryRowContext(ctx, `SELECT n_tup_upd, n_tup_hot_upd
			FROM pg_stat_user_tables WHERE relname = 'account_slots'`).Scan(&upd, &hot))
		return upd >= 2
	}, 15*time.Second, 100*time.Millisecond, "the take and the give-back are counted")
	require.Equal(t, upd, hot, "every update of a slot row is HOT")
}

// An account whose slot rows are all made and all taken but one still gets
// that one, wherever it is (the bounded search misses it, the search of
// every row finds it), and no more.
func TestTheLastFreeSlotIsFoundAmongManyTakenOnes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	actor := store.Actor{Name: "test"}
	const limit = 3000
	for _, free := range []int{0, limit / 2, limit - 1} {
		_, err := b.st.DB().ExecContext(ctx, `DELETE FROM account_slots WHERE account_id = $1`, b.account.ID)
		require.NoError(t, err)
		_, err = b.st.DB().ExecContext(ctx, `INSERT INTO account_slots (account_id, slot, job_id)
			SELECT $1, g, CASE WHEN g <> $2 THEN gen_random_uuid() END FROM generate_series(0, $3 - 1) AS g`,
			b.account.ID, free, limit)
		require.NoError(t, err)
		j, err := b.st.CreateJob(ctx, actor, b.limited(limit))
		require.NoError(t, err, "slot %d is free", free)
		var slot int
		require.NoError(t, b.st.DB().QueryRowContext(ctx, `SELECT slot FROM jobs WHERE id = $1`, j.ID).Scan(&slot))
		require.Equal(t, free, slot)
		_, err = b.st.CreateJob(ctx, actor, b.limited(limit))
		require.Equal(t, apperr.QuotaExceeded, apperr.CodeOf(err), "%v", err)
		var rows int
		require.NoError(t, b.st.DB().QueryRowContext(ctx, `SELECT count(*) FROM account_slots
			WHERE account_id = $1`, b.account.ID).Scan(&rows))
		require.Equal(t, limit, rows, "no rows past the limit")
		_, err = b.st.CancelJob(ctx, actor, b.account.ID, j.ID)
		require.NoError(t, err)
	}
}

// While an account has fewer rows than its limit, a submit that finds no
// free slot among the rows it looks at makes more rows (at least as many
// as there are), so the rows' free share stays high.
func TestSlotRowsGrowWhenFewAreFree(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	actor := store.Actor{Name: "test"}
	_, err := b.st.DB().ExecContext(ctx, `INSERT INTO account_slots (account_id, slot, job_id)
		SELECT $1, g, gen_random_uuid() FROM generate_series(0, 2047) AS g`, b.account.ID)
	require.NoError(t, err)
	_, err = b.st.CreateJob(ctx, actor, b.limited(100_000))
	require.NoError(t, err)
	var rows int
	require.NoError(t, b.st.DB().QueryRowContext(ctx, `SELECT count(*) FROM account_slots
		WHERE account_id = $1`, b.account.ID).Scan(&rows))
	require.Equal(t, 4096, rows)
}

// A submit refused for want of a free slot writes nothing (no row, no
// lock): an account at its limit that keeps submitting costs the database
// neither WAL nor durable commits. An admitted submit writes.
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
}

// An account with a small limit searches all its slot rows first once they
// exist: the limit stays exact under concurrent submits, a freed slot is
// found again, and a submit of a module that is gone is refused as
// not_found, not as over the limit.
func TestASmallLimitIsExactOnceItsRowsExist(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	actor := store.Actor{Name: "test"}
	const limit = 5
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
	// The first submits make the rows; the next ones search them all.
	ids, refused := submit(20)
	require.Len(t, ids, limit)
	require.Equal(t, 20-limit, refused)
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
