package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// A delivery claims, in its job's queue, the oldest queued job of the
// account with the fewest running jobs (ties: whose latest start is oldest),
// not its own job.
func TestFairClaimServesTheLeastBusyAccount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := setup(t)
	a.setLimit(t, 0) // the order alone; see slots_test.go for the limit
	bb := a.otherAccount(t, "b")
	var flood []store.Job
	for range 6 {
		flood = append(flood, a.job(t))
	}
	victim := bb.job(t)
	other := bb.job(t)
	elsewhere := a.request()
	elsewhere.Queue = "other"
	_, err := a.st.CreateJob(ctx, store.Actor{Name: "test"}, elsewhere)
	require.NoError(t, err)

	// Oldest first while nobody runs anything: A's first job.
	c, err := a.st.ClaimFairJob(ctx, flood[3].ID, "w")
	require.NoError(t, err)
	require.Equal(t, flood[0].ID, c.ID)
	// A runs one job, B none: B's oldest, whatever the delivery named.
	c, err = a.st.ClaimFairJob(ctx, flood[3].ID, "w")
	require.NoError(t, err)
	require.Equal(t, victim.ID, c.ID)
	// One each: the account whose latest job started longest ago, A.
	c, err = a.st.ClaimFairJob(ctx, other.ID, "w")
	require.NoError(t, err)
	require.Equal(t, flood[1].ID, c.ID)
	c, err = a.st.ClaimFairJob(ctx, flood[5].ID, "w")
	require.NoError(t, err)
	require.Equal(t, other.ID, c.ID, "A runs two, B one")

	// A delivery whose own job has finished still runs a queued job.
	ok, err := a.st.FinishJob(ctx, other.ID, 1, "w", jobstate.Outcome{Status: jobstate.Succeeded})
	require.NoError(t, err)
	require.True(t, ok)
	c, err = a.st.ClaimFairJob(ctx, other.ID, "w")
	require.NoError(t, err)
	require.Equal(t, flood[2].ID, c.ID)

	// A delivery of a job whose claim expired takes that job over first.
	_, err = a.st.DB().Exec(`UPDATE jobs SET started_at = now() - interval '1 hour' WHERE id = $1`, victim.ID)
	require.NoError(t, err)
	c, err = a.st.ClaimFairJob(ctx, victim.ID, "w2")
	require.NoError(t, err)
	require.Equal(t, victim.ID, c.ID)
	require.Equal(t, 2, c.Attempts)

	// With nothing else queued, a delivery of a running job is busy, of a
	// finished one finished.
	for range 3 {
		_, err = a.st.ClaimFairJob(ctx, flood[0].ID, "w")
		require.NoError(t, err)
	}
	_, err = a.st.ClaimFairJob(ctx, flood[0].ID, "w")
	require.ErrorIs(t, err, store.ErrJobBusy)
	_, err = a.st.ClaimFairJob(ctx, other.ID, "w")
	require.ErrorIs(t, err, store.ErrJobTerminal)
	var queued int
	require.NoError(t, a.st.DB().Get(&queued, `SELECT count(*) FROM jobs WHERE status = 'queued'`))
	require.Equal(t, 1, queued, "the other queue's job is left alone")
}

// Past the 100 accounts a fair claim ranks, every account with queued jobs
// can still be picked: the walk over them starts at a random point within
// their IDs' range. (It started at a random UUID, which falls outside the
// range of time-ordered account IDs nearly always: the walk began at the
// oldest account, and the newest ones were never ranked.)
func TestFairClaimReachesAccountsPastTheFirstHundred(t *testing.T) {
	t.Parallel()
	a := setup(t)
	a.setLimit(t, 0)
	accounts := []bundle{a}
	for i := range 101 {
		accounts = append(accounts, a.otherAccount(t, fmt.Sprintf("account-%d", i)))
	}
	// The newest account's job is the oldest queued job: whenever that
	// account is ranked, its job is picked (nothing runs anywhere).
	newest := accounts[len(accounts)-1].job(t)
	var own store.Job
	for _, b := range accounts[:len(accounts)-1] {
		own = b.job(t)
	}
	picked := 0
	for range 20 {
		var id uuid.UUID
		require.NoError(t, a.st.DB().Get(&id, `SELECT pick_fair_job($1, 120)`, own.ID))
		if id == newest.ID {
			picked++
		}
	}
	// It is left out only when the walk starts at one of the two oldest
	// accounts (102 accounts, 100 ranked).
	require.GreaterOrEqual(t, picked, 10, "the newest account's job was picked %d times in 20", picked)
}

// Concurrent deliveries of one account's backlog claim different jobs, and
// every job is claimed once when busy deliveries are retried (as asynq
// does).
func TestFairClaimsDoNotCollide(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	b.setLimit(t, 0)
	const n = 30
	jobs := make([]store.Job, n)
	for i := range jobs {
		jobs[i] = b.job(t)
	}
	claimed := make([]uuid.UUID, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				c, err := b.st.ClaimFairJob(ctx, jobs[i].ID, "w")
				if err == nil {
					claimed[i] = c.ID
					return
				}
				if !errors.Is(err, store.ErrJobBusy) {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	seen := map[uuid.UUID]bool{}
	for _, id := range claimed {
		require.NotEqual(t, uuid.Nil, id)
		require.False(t, seen[id], "claimed twice")
		seen[id] = true
	}
}
