package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

func (b bundle) limited(limit int) store.Job {
	j := b.request()
	j.ModuleSHA256 = b.module.SHA256
	j.MaxUnfinished = limit
	return j
}

// Many concurrent submits against a limit of L admit exactly L jobs, with
// and without an Idempotency-Key, and a job's end frees its slot.
func TestConcurrencyLimitIsExact(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	const limit, submits = 5, 40
	var wg sync.WaitGroup
	errs := make([]error, submits)
	ids := make([]uuid.UUID, submits)
	for i := range submits {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var j store.Job
			if i%2 == 0 {
				j, errs[i] = b.st.CreateJob(ctx, store.Actor{Name: "test"}, b.limited(limit))
			} else {
				j, _, errs[i] = b.st.CreateJobIdempotent(ctx, store.Actor{Name: "test"}, b.limited(limit),
					fmt.Sprintf("key-%d", i), []byte("h"))
			}
			ids[i] = j.ID
		}()
	}
	wg.Wait()
	var admitted []uuid.UUID
	for i, err := range errs {
		if err == nil {
			admitted = append(admitted, ids[i])
			continue
		}
		require.Equal(t, apperr.QuotaExceeded, apperr.CodeOf(err), "%v", err)
	}
	require.Len(t, admitted, limit)
	n, err := b.st.UnfinishedJobs(ctx, b.account.ID)
	require.NoError(t, err)
	require.Equal(t, limit, n)

	_, err = b.st.CreateJob(ctx, store.Actor{Name: "test"}, b.limited(limit))
	require.Equal(t, apperr.QuotaExceeded, apperr.CodeOf(err))
	c, err := b.st.ClaimJob(ctx, admitted[0], "w")
	require.NoError(t, err)
	ok, err := b.st.FinishJob(ctx, c.ID, c.Attempts, "w", jobstate.Outcome{Status: jobstate.Succeeded})
	require.NoError(t, err)
	require.True(t, ok)
	_, err = b.st.CreateJob(ctx, store.Actor{Name: "test"}, b.limited(limit))
	require.NoError(t, err, "the finished job's slot is free again")

	// A lower limit (the account changed tier) counts the jobs holding
	// slots above it too.
	_, err = b.st.CreateJob(ctx, store.Actor{Name: "test"}, b.limited(limit-1))
	require.Equal(t, apperr.QuotaExceeded, apperr.CodeOf(err))
	_, err = b.st.CreateJob(ctx, store.Actor{Name: "test"}, b.limited(limit+1))
	require.NoError(t, err, "a higher limit makes the slots it needs")
}

// However a job ends, its slot is free again: finished by a worker,
// cancelled while queued, withdrawn after a failed enqueue, failed with its
// deleted module, failed by the reconciler after its last lost attempt.
func TestSlotsComeBackHoweverAJobEnds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	actor := store.Actor{Name: "test"}
	ends := map[string]func(t *testing.T, b bundle, j store.Job){
		"finished": func(t *testing.T, b bundle, j store.Job) {
			c, err := b.st.ClaimJob(ctx, j.ID, "w")
			require.NoError(t, err)
			_, err = b.st.FinishJob(ctx, c.ID, c.Attempts, "w", jobstate.Outcome{Status: jobstate.Failed})
			require.NoError(t, err)
		},
		"cancelled": func(t *testing.T, b bundle, j store.Job) {
			_, err := b.st.CancelJob(ctx, actor, b.account.ID, j.ID)
			require.NoError(t, err)
		},
		"withdrawn": func(t *testing.T, b bundle, j store.Job) {
			require.NoError(t, b.st.DeleteQueuedJob(ctx, j.ID))
		},
		"module deleted": func(t *testing.T, b bundle, j store.Job) {
			_, err := b.st.DeleteModule(ctx, actor, b.account.ID, b.module.ID)
			require.NoError(t, err)
		},
		"worker lost": func(t *testing.T, b bundle, j store.Job) {
			_, err := b.st.ClaimJob(ctx, j.ID, "w")
			require.NoError(t, err)
			_, err = b.st.DB().Exec(`UPDATE jobs SET started_at = now() - interval '1 hour' WHERE id = $1`, j.ID)
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
			j, err := b.st.CreateJob(ctx, actor, b.limited(1))
			require.NoError(t, err)
			_, err = b.st.CreateJob(ctx, actor, b.limited(1))
			require.Equal(t, apperr.QuotaExceeded, apperr.CodeOf(err))
			end(t, b, j)
			b = b.otherModule(t)
			_, err = b.st.CreateJob(ctx, actor, b.limited(1))
			require.NoError(t, err, "the slot is free again")
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

// A limited account's submit does not wait for another submit of the same
// account that has not committed yet: the limit is counted without a lock
// per account. The first submit is held inside its insert by a trigger
// that waits for an advisory lock the test holds.
func TestSubmitsOfALimitedAccountDoNotWaitForEachOther(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	key := rand.Int64()
	db := b.st.DB()
	_, err := db.Exec(fmt.Sprintf(`
		CREATE FUNCTION hold_slow_job() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.function = 'slow' THEN PERFORM pg_advisory_xact_lock(%d); END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER hold_slow_job BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION hold_slow_job();`, key))
	require.NoError(t, err)
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	_, err = conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, key)
	require.NoError(t, err)

	slow := b.limited(10)
	slow.Function = "slow"
	_, err = b.st.CreateJob(ctx, store.Actor{Name: "test"}, b.limited(10)) // makes the slots
	require.NoError(t, err)
	slowDone := make(chan error, 1)
	go func() {
		_, err := b.st.CreateJob(ctx, store.Actor{Name: "test"}, slow)
		slowDone <- err
	}()
	require.Eventually(t, func() bool {
		var waiting bool
		require.NoError(t, db.Get(&waiting, `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`))
		return waiting
	}, 10*time.Second, 10*time.Millisecond, "the slow submit is inside its insert")

	fast := make(chan error, 1)
	go func() {
		_, err := b.st.CreateJob(ctx, store.Actor{Name: "test"}, b.limited(10))
		fast <- err
	}()
	select {
	case err := <-fast:
		require.NoError(t, err)
	case err := <-slowDone:
		t.Fatalf("the slow submit ended first: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the second submit waited for the first one")
	}
	_, err = conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, key)
	require.NoError(t, err)
	require.NoError(t, <-slowDone)
	n, err := b.st.UnfinishedJobs(ctx, b.account.ID)
	require.NoError(t, err)
	require.Equal(t, 3, n)
}

// A delivery claims, in its job's queue, the oldest queued job of the
// account with the fewest running jobs (ties: whose latest start is oldest),
// not its own job.
func TestFairClaimServesTheLeastBusyAccount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := setup(t)
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

// Concurrent deliveries of one account's backlog claim different jobs, and
// every job is claimed once when busy deliveries are retried (as asynq
// does).
func TestFairClaimsDoNotCollide(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
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
