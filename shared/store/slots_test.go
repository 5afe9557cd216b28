package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

// setLimit sets the max_concurrent_runs of b's account's tier (0: none).
func (b bundle) setLimit(t testing.TB, limit int) {
	t.Helper()
	_, err := b.st.DB().Exec(`UPDATE tiers SET max_concurrent_runs = $1
		WHERE name = (SELECT tier FROM accounts WHERE id = $2)`, limit, b.account.ID)
	require.NoError(t, err)
}

// running counts b's account's running jobs.
func (b bundle) running(t testing.TB) int {
	t.Helper()
	var n int
	require.NoError(t, b.st.DB().Get(&n, `SELECT count(*) FROM jobs WHERE account_id = $1 AND status = 'running'`,
		b.account.ID))
	return n
}

// Submits are never refused for the concurrency limit: it bounds the jobs
// that run at once. Many concurrent claims of an account's queued jobs
// start exactly its limit of them, the others wait (ErrAccountAtLimit); a
// job's end lets one more start; the limit follows its tier's changes.
func TestConcurrencyLimitBoundsRunningJobsExactly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	const limit, jobs = 5, 40
	b.setLimit(t, limit)
	ids := make([]uuid.UUID, jobs)
	for i := range ids {
		ids[i] = b.job(t).ID
	}
	var wg sync.WaitGroup
	errs := make([]error, jobs)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				_, errs[i] = b.st.ClaimJob(ctx, ids[i], "w")
			} else {
				_, errs[i] = b.st.ClaimFairJob(ctx, ids[i], "w")
			}
		}()
	}
	wg.Wait()
	started := 0
	for _, err := range errs {
		if err == nil {
			started++
			continue
		}
		require.True(t, errors.Is(err, store.ErrAccountAtLimit) || errors.Is(err, store.ErrJobBusy), "%v", err)
	}
	require.Equal(t, limit, started)
	require.Equal(t, limit, b.running(t))

	var queued uuid.UUID
	require.NoError(t, b.st.DB().Get(&queued, `SELECT id FROM jobs WHERE account_id = $1 AND status = 'queued'
		ORDER BY id LIMIT 1`, b.account.ID))
	_, err := b.st.ClaimJob(ctx, queued, "w")
	require.ErrorIs(t, err, store.ErrAccountAtLimit)

	var first store.Job
	require.NoError(t, b.st.DB().Get(&first, `SELECT id, attempts FROM jobs WHERE account_id = $1 AND status = 'running'
		ORDER BY id LIMIT 1`, b.account.ID))
	fin, err := b.st.FinishRun(ctx, first.ID, first.Attempts, "w", jobstate.Outcome{Status: jobstate.Succeeded})
	require.NoError(t, err)
	require.True(t, fin.Done)
	require.NotNil(t, fin.Waiting, "the account's next job waits for the slot")
	require.Equal(t, queued, fin.Waiting.ID)
	require.Equal(t, "q", fin.Waiting.Queue)
	require.Equal(t, 1000, fin.Waiting.TimeoutMS)
	_, err = b.st.ClaimJob(ctx, queued, "w")
	require.NoError(t, err, "the finished job's slot is free again")

	// A lower limit (the tier changed) counts the slots above it too; a
	// higher one makes the rows it needs.
	b.setLimit(t, limit-1)
	next := b.job(t)
	_, err = b.st.ClaimJob(ctx, next.ID, "w")
	require.ErrorIs(t, err, store.ErrAccountAtLimit)
	b.setLimit(t, limit+1)
	_, err = b.st.ClaimJob(ctx, next.ID, "w")
	require.NoError(t, err)
	require.Equal(t, limit+1, b.running(t))
	_, err = b.st.ClaimJob(ctx, b.job(t).ID, "w")
	require.ErrorIs(t, err, store.ErrAccountAtLimit)
}

// However a job stops running, its slot is free again: finished by a
// worker, cancelled while it ran, handed back to the queue, taken back or
// failed by the reconciler after its worker was lost. A queued job holds no
// slot.
func TestSlotsComeBackHoweverAJobStopsRunning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	actor := store.Actor{Name: "test"}
	ends := map[string]func(t *testing.T, b bundle, j store.Job){
		"finished": func(t *testing.T, b bundle, j store.Job) {
			_, err := b.st.FinishJob(ctx, j.ID, j.Attempts, "w", jobstate.Outcome{Status: jobstate.Failed})
			require.NoError(t, err)
		},
		"cancelled": func(t *testing.T, b bundle, j store.Job) {
			_, err := b.st.CancelJob(ctx, actor, b.account.ID, j.ID)
			require.NoError(t, err)
			require.Equal(t, 1, b.running(t), "a running job's cancel is only a request")
			ok, err := b.st.FinishJob(ctx, j.ID, j.Attempts, "w", jobstate.Outcome{Status: jobstate.Cancelled})
			require.NoError(t, err)
			require.True(t, ok)
		},
		"handed back": func(t *testing.T, b bundle, j store.Job) {
			ok, err := b.st.ReleaseJob(ctx, j.ID, j.Attempts, "w")
			require.NoError(t, err)
			require.True(t, ok)
		},
		"worker lost, requeued": func(t *testing.T, b bundle, j store.Job) {
			_, err := b.st.DB().Exec(`UPDATE jobs SET started_at = now() - interval '1 hour' WHERE id = $1`, j.ID)
			require.NoError(t, err)
			rec, err := b.st.RecoverAbandoned(ctx, time.Second, 10*time.Second, 5, 10)
			require.NoError(t, err)
			require.Len(t, rec.Requeued, 1)
		},
		"worker lost, failed": func(t *testing.T, b bundle, j store.Job) {
			_, err := b.st.DB().Exec(`UPDATE jobs SET started_at = now() - interval '1 hour' WHERE id = $1`, j.ID)
			require.NoError(t, err)
			rec, err := b.st.RecoverAbandoned(ctx, time.Second, 10*time.Second, 1, 10)
			require.NoError(t, err)
			require.Equal(t, 1, rec.Failed)
		},
	}
	for name, end := range ends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.setLimit(t, 1)
			j, err := b.st.ClaimJob(ctx, b.job(t).ID, "w")
			require.NoError(t, err)
			// Queued jobs of the account, one of them cancelled, hold no slot.
			cancelled := b.job(t)
			_, err = b.st.CancelJob(ctx, actor, b.account.ID, cancelled.ID)
			require.NoError(t, err)
			b = b.otherModule(t)
			waiting := b.job(t)
			_, err = b.st.ClaimJob(ctx, waiting.ID, "w")
			require.ErrorIs(t, err, store.ErrAccountAtLimit)
			end(t, b, j)
			_, err = b.st.ClaimJob(ctx, waiting.ID, "w")
			require.NoError(t, err, "the slot is free again")
			require.Equal(t, 1, b.running(t))
		})
	}
}

// otherModule gives b a fresh module of its account's.
func (b bundle) otherModule(t *testing.T) bundle {
	t.Helper()
	m, _, err := b.st.CreateModule(context.Background(), store.Actor{Name: "test"}, b.account.ID, "again",
		append(fixtures.Bytes(fixtures.Hello), 0, 1, 0), // a custom section: other content
		wasmmeta.Meta{Imports: []wasmmeta.Import{}, Exports: []wasmmeta.Export{{Name: "_start", Kind: "function"}}, WASI: true})
	require.NoError(t, err)
	b.module = m
	return b
}

// A fair claim leaves out the accounts at their limit: a delivery of such
// an account's job runs another account's job, and with none it reports
// ErrAccountAtLimit. A job that did not hold a slot names no waiting job.
func TestFairClaimSkipsAccountsAtTheirLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := setup(t)
	a.setLimit(t, 1) // both accounts are on the same tier
	bb := a.otherAccount(t, "b")
	first, err := a.st.ClaimJob(ctx, a.job(t).ID, "w")
	require.NoError(t, err)
	waiting := a.job(t)
	other := bb.job(t)
	c, err := a.st.ClaimFairJob(ctx, waiting.ID, "w")
	require.NoError(t, err)
	require.Equal(t, other.ID, c.ID, "A is at its limit: B's job runs")
	_, err = a.st.ClaimFairJob(ctx, waiting.ID, "w")
	require.ErrorIs(t, err, store.ErrAccountAtLimit)

	fin, err := a.st.FinishRun(ctx, first.ID, first.Attempts, "w", jobstate.Outcome{Status: jobstate.Succeeded})
	require.NoError(t, err)
	require.Equal(t, waiting.ID, fin.Waiting.ID)
	c, err = a.st.ClaimFairJob(ctx, first.ID, "w")
	require.NoError(t, err, "the waiting job's delivery may name the finished one")
	require.Equal(t, waiting.ID, c.ID)

	// A queued job that was never refused keeps its own delivery: nothing
	// to wake.
	a.setLimit(t, 3)
	below, err := a.st.ClaimJob(ctx, a.job(t).ID, "w")
	require.NoError(t, err)
	a.job(t) // queued
	fin, err = a.st.FinishRun(ctx, below.ID, below.Attempts, "w", jobstate.Outcome{Status: jobstate.Succeeded})
	require.NoError(t, err)
	require.True(t, fin.Done)
	require.Nil(t, fin.Waiting, "the queued job was never refused")

	a.setLimit(t, 0)
	free, err := a.st.ClaimJob(ctx, a.job(t).ID, "w")
	require.NoError(t, err)
	require.Nil(t, free.Slot)
	a.job(t)
	fin, err = a.st.FinishRun(ctx, free.ID, free.Attempts, "w", jobstate.Outcome{Status: jobstate.Succeeded})
	require.NoError(t, err)
	require.True(t, fin.Done)
	require.Nil(t, fin.Waiting, "nobody waits for a slot of an unlimited tier")
}

// Every end of a job that held a slot wakes a distinct parked job (one
// whose delivery was dropped at the limit), whether the ends come one
// after another (the account then runs below its limit) or at once.
func TestEachEndWakesAnotherParkedJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	b.setLimit(t, 2)
	claim := func() store.Job {
		j, err := b.st.ClaimJob(ctx, b.job(t).ID, "w")
		require.NoError(t, err)
		return j
	}
	park := func() uuid.UUID { return b.parkedJob(t).ID }
	finish := func(j store.Job) *store.QueuedRef {
		fin, err := b.st.FinishRun(ctx, j.ID, j.Attempts, "w", jobstate.Outcome{Status: jobstate.Succeeded})
		require.NoError(t, err)
		require.True(t, fin.Done)
		return fin.Waiting
	}

	// One after another.
	first, second := claim(), claim()
	c, d := park(), park()
	w := finish(first)
	require.NotNil(t, w)
	require.Equal(t, c, w.ID)
	w = finish(second)
	require.NotNil(t, w, "the account runs below its limit, and a parked job still waits")
	require.Equal(t, d, w.ID)
	require.Nil(t, finish(claimJob(t, b, c)), "nothing parked any more")

	// At once.
	third, fourth := claimJob(t, b, d), claim()
	e, f := park(), park()
	woken := make([]*store.QueuedRef, 2)
	var wg sync.WaitGroup
	for i, j := range []store.Job{third, fourth} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fin, err := b.st.FinishRun(ctx, j.ID, j.Attempts, "w", jobstate.Outcome{Status: jobstate.Succeeded})
			assert.NoError(t, err)
			woken[i] = fin.Waiting
		}()
	}
	wg.Wait()
	require.NotNil(t, woken[0])
	require.NotNil(t, woken[1])
	require.ElementsMatch(t, []uuid.UUID{e, f}, []uuid.UUID{woken[0].ID, woken[1].ID})
}

// A parked job is returned by the sweep as soon as its account may start
// more, however recently it was queued: a slot freed without a wake (here
// a raised limit) is used at the reconciler's next pass. At the limit it
// is not, and once returned it is no longer parked.
func TestTheSweepWakesParkedJobsOnceTheirAccountHasRoom(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	b.setLimit(t, 1)
	claimJob(t, b, b.job(t).ID)
	parked := b.parkedJob(t)
	stale, err := b.st.TouchStaleQueued(ctx, time.Hour, 10)
	require.NoError(t, err)
	require.Empty(t, stale, "the account runs as many as its limit")

	b.setLimit(t, 2)
	stale, err = b.st.TouchStaleQueued(ctx, time.Hour, 10)
	require.NoError(t, err)
	require.Len(t, stale, 1)
	require.Equal(t, parked.ID, stale[0].ID)
	var still bool
	require.NoError(t, b.st.DB().Get(&still, `SELECT parked FROM jobs WHERE id = $1`, parked.ID))
	require.False(t, still)
	stale, err = b.st.TouchStaleQueued(ctx, time.Hour, 10)
	require.NoError(t, err)
	require.Empty(t, stale, "it has a delivery again")
}

// The queue's backlog age leaves out parked jobs: they wait for their own
// account's running jobs, not for a worker.
func TestOldestQueuedLeavesOutParkedJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	b.setLimit(t, 1)
	claimJob(t, b, b.job(t).ID)
	parked := b.parkedJob(t)
	_, err := b.st.DB().Exec(`UPDATE jobs SET created_at = now() - interval '1 hour' WHERE id = $1`, parked.ID)
	require.NoError(t, err)
	ages, err := b.st.OldestQueued(ctx)
	require.NoError(t, err)
	require.Empty(t, ages, "only a parked job is queued")

	b.job(t) // queued, its delivery still to come
	ages, err = b.st.OldestQueued(ctx)
	require.NoError(t, err)
	require.Len(t, ages, 1)
	require.Equal(t, "q", ages[0].Queue)
	require.Less(t, ages[0].Seconds, 600.0, "the parked job's hour is not the queue's backlog")
}

// A claim that claims nothing (a delivery of a job that runs elsewhere, or
// has finished) locks no slot row: the lock would give its transaction an
// ID, and a read-only claim would become a durable commit (a WAL flush).
func TestAClaimThatClaimsNothingLocksNoSlot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	b.setLimit(t, 2)
	j := claimJob(t, b, b.job(t).ID)
	lockers := func() []string {
		var x []string
		require.NoError(t, b.st.DB().Select(&x, `SELECT xmax::text FROM account_slots WHERE account_id = $1 ORDER BY slot`,
			b.account.ID))
		return x
	}
	before := lockers()
	_, err := b.st.ClaimJob(ctx, j.ID, "w")
	require.ErrorIs(t, err, store.ErrJobBusy)
	_, err = b.st.ClaimFairJob(ctx, j.ID, "w")
	require.ErrorIs(t, err, store.ErrJobBusy)
	require.Equal(t, before, lockers(), "the slot rows were locked by a claim of a running job")
	_, err = b.st.FinishJob(ctx, j.ID, j.Attempts, "w", jobstate.Outcome{Status: jobstate.Succeeded})
	require.NoError(t, err)
	before = lockers()
	_, err = b.st.ClaimFairJob(ctx, j.ID, "w")
	require.ErrorIs(t, err, store.ErrJobTerminal)
	require.Equal(t, before, lockers(), "the slot rows were locked by a claim of a finished job")
}

// parkedJob is a new job of b's account whose claim is refused at the
// account's limit (so it is parked).
func (b bundle) parkedJob(t *testing.T) store.Job {
	t.Helper()
	j := b.job(t)
	_, err := b.st.ClaimJob(context.Background(), j.ID, "w")
	require.ErrorIs(t, err, store.ErrAccountAtLimit)
	return j
}

// claimJob claims job id of b's account, which must start.
func claimJob(t *testing.T, b bundle, id uuid.UUID) store.Job {
	t.Helper()
	j, err := b.st.ClaimJob(context.Background(), id, "w")
	require.NoError(t, err)
	return j
}

// Taking a slot and giving it back change only the slot row's heap page
// (HOT updates): no index of account_slots depends on job_id, and its pages
// keep room for the new row versions.
func TestTakingAndGivingBackASlotAreHOTUpdates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	b.setLimit(t, 3)
	j, err := b.st.ClaimJob(ctx, b.job(t).ID, "w")
	require.NoError(t, err)
	require.NotNil(t, j.Slot)
	_, err = b.st.FinishJob(ctx, j.ID, j.Attempts, "w", jobstate.Outcome{Status: jobstate.Succeeded})
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

// An account whose slot rows are all taken but one still gets that one,
// wherever it is, and no more.
func TestTheLastFreeSlotIsFoundAmongManyTakenOnes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	const limit = 3000
	b.setLimit(t, limit)
	for _, free := range []int{0, limit / 2, limit - 1} {
		_, err := b.st.DB().ExecContext(ctx, `DELETE FROM account_slots WHERE account_id = $1`, b.account.ID)
		require.NoError(t, err)
		_, err = b.st.DB().ExecContext(ctx, `INSERT INTO account_slots (account_id, slot, job_id)
			SELECT $1, g, CASE WHEN g <> $2 THEN gen_random_uuid() END FROM generate_series(0, $3 - 1) AS g`,
			b.account.ID, free, limit)
		require.NoError(t, err)
		j, err := b.st.ClaimJob(ctx, b.job(t).ID, "w")
		require.NoError(t, err, "slot %d is free", free)
		require.Equal(t, free, *j.Slot)
		_, err = b.st.ClaimJob(ctx, b.job(t).ID, "w")
		require.ErrorIs(t, err, store.ErrAccountAtLimit)
	}
}

// Slot rows are made on demand, a few at a time, however large the limit:
// an account has about as many as it ever ran jobs at once.
func TestSlotRowsAreMadeOnDemand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	b.setLimit(t, 100_000)
	rows := func() int {
		var n int
		require.NoError(t, b.st.DB().Get(&n, `SELECT count(*) FROM account_slots WHERE account_id = $1`, b.account.ID))
		return n
	}
	require.Equal(t, 16, rows(), "made with the limit")
	for range 8 {
		_, err := b.st.ClaimJob(ctx, b.job(t).ID, "w")
		require.NoError(t, err)
	}
	require.Equal(t, 16, rows())
	_, err := b.st.ClaimJob(ctx, b.job(t).ID, "w")
	require.NoError(t, err)
	require.Equal(t, 32, rows(), "slot 8 of 16 taken: twice as many")
	_, err = b.st.DB().Exec(`DELETE FROM account_slots WHERE account_id = $1 AND job_id IS NULL`, b.account.ID)
	require.NoError(t, err)
	_, err = b.st.ClaimJob(ctx, b.job(t).ID, "w")
	require.NoError(t, err, "a claim that finds every row taken makes more")
}

// The reconciler's sweep of stale queued jobs returns, of an account with a
// limit, only as many as it may start more: none at its limit (their
// deliveries were dropped on purpose; a run's end wakes the next), the
// oldest once it runs fewer.
func TestStaleQueuedJobsOfAnAccountAtItsLimitWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	b.setLimit(t, 1)
	j, err := b.st.ClaimJob(ctx, b.job(t).ID, "w")
	require.NoError(t, err)
	waiting := b.job(t)
	later := b.job(t)
	_, err = b.st.DB().Exec(`UPDATE jobs SET updated_at = now() - interval '1 hour' WHERE id = $1`, waiting.ID)
	require.NoError(t, err)
	_, err = b.st.DB().Exec(`UPDATE jobs SET updated_at = now() - interval '50 minutes' WHERE id = $1`, later.ID)
	require.NoError(t, err)
	stale, err := b.st.TouchStaleQueued(ctx, time.Minute, 10)
	require.NoError(t, err)
	require.Empty(t, stale)
	_, err = b.st.FinishJob(ctx, j.ID, j.Attempts, "w", jobstate.Outcome{Status: jobstate.Succeeded})
	require.NoError(t, err)
	stale, err = b.st.TouchStaleQueued(ctx, time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, stale, 1)
	require.Equal(t, waiting.ID, stale[0].ID)
}
