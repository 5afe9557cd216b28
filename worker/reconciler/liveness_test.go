package reconciler_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/worker/reconciler"
)

const lease = 10 * time.Second

// worker registers a worker (its first heartbeat) and returns its ID.
func (b bundle) worker(t *testing.T, id string) string {
	t.Helper()
	require.NoError(t, b.st.Heartbeat(context.Background(), store.WorkerInfo{ID: id, Host: "h", PID: 1}))
	return id
}

// silence makes worker id's last heartbeat older by d.
func (b bundle) silence(t *testing.T, id string, d time.Duration) {
	t.Helper()
	_, err := b.st.DB().ExecContext(context.Background(),
		`UPDATE workers SET heartbeat_at = heartbeat_at - make_interval(secs => $2) WHERE id = $1`, id, d.Seconds())
	require.NoError(t, err)
}

// longJob is a queued job with a one-hour timeout, claimed by worker.
func (b bundle) longJob(t *testing.T, worker string) store.Job {
	t.Helper()
	ctx := context.Background()
	j := b.job(t)
	_, err := b.st.DB().ExecContext(ctx, `UPDATE jobs SET timeout_ms = 3600000 WHERE id = $1`, j.ID)
	require.NoError(t, err)
	j, err = b.st.ClaimJob(ctx, j.ID, worker)
	require.NoError(t, err)
	return j
}

// A job whose worker's heartbeat is older than the lease is queued again at
// once, whatever its timeout; a job running as long on a worker whose
// heartbeat is fresh is left alone; each is recovered once.
func TestLostWorkersJobIsRecoveredAfterTheLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, reconciler.Config{Lease: lease, RunningGrace: 2 * time.Minute})
	dead, live := b.worker(t, "dead"), b.worker(t, "live")
	lost, kept := b.longJob(t, dead), b.longJob(t, live)
	// Both have run for longer than the lease (but far less than their
	// timeout); only the dead worker has stopped beating.
	b.age(t, lost.ID, "started_at", 3*lease)
	b.age(t, kept.ID, "started_at", 3*lease)
	b.silence(t, dead, lease+time.Second)

	st, err := b.rec.RecoverLost(ctx)
	require.NoError(t, err)
	require.True(t, st.Ran)
	require.Equal(t, 1, st.Requeued)
	require.Zero(t, st.FailedLost)

	got := b.requireStatus(t, lost, jobstate.Queued)
	require.Nil(t, got.WorkerID)
	require.Equal(t, asynq.TaskStatePending, b.taskState(t, lost.ID.String()+":recovery-1"))
	events, err := b.st.JobEvents(ctx, b.account.ID, lost.ID)
	require.NoError(t, err)
	require.Equal(t, "job.requeued", events[len(events)-1].Action)
	require.Equal(t, "worker_lost", events[len(events)-1].Data["reason"])

	got, err = b.st.GetJob(ctx, b.account.ID, kept.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.Running, got.Status, "a live worker's long job is never taken")
	require.Equal(t, live, *got.WorkerID)

	st, err = b.rec.RecoverLost(ctx)
	require.NoError(t, err)
	require.Zero(t, st.Requeued, "recovered once")

	// The next attempt, by another worker, is its own: the dead worker's
	// late result cannot overwrite it.
	again, err := b.st.ClaimJob(ctx, lost.ID, live)
	require.NoError(t, err)
	require.Equal(t, 2, again.Attempts)
	ok, err := b.st.FinishJob(ctx, lost.ID, 1, dead, jobstate.Outcome{Status: jobstate.Succeeded})
	require.NoError(t, err)
	require.False(t, ok)
}

// At the attempt cap, a lost worker's job ends failed with worker_lost.
func TestLostWorkersJobFailsAtTheAttemptCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, reconciler.Config{Lease: lease, MaxAttempts: 1})
	dead := b.worker(t, "dead")
	j := b.longJob(t, dead)
	b.silence(t, dead, time.Minute)

	st, err := b.rec.RecoverLost(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.FailedLost)
	got := b.requireStatus(t, j, jobstate.Failed)
	require.Equal(t, "worker_lost", *got.ErrorCode)
}

// A worker that stopped gracefully leaves nothing to wait for: what it still
// had running is recovered at once, and its heartbeats do not revive it.
func TestStoppedWorkersJobIsRecoveredAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, reconciler.Config{Lease: lease})
	w := b.worker(t, "stopping")
	j := b.longJob(t, w)
	require.NoError(t, b.st.StopWorker(ctx, w))
	require.NoError(t, b.st.Heartbeat(ctx, store.WorkerInfo{ID: w}))

	st, err := b.rec.RecoverLost(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Requeued)
	b.requireStatus(t, j, jobstate.Queued)
}

// A job whose worker never registered (claimed before workers had
// heartbeats) is recovered only after its timeout plus the grace.
func TestJobOfAWorkerWithoutHeartbeatsWaitsForItsTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, reconciler.Config{Lease: lease, RunningGrace: 2 * time.Minute})
	j := b.longJob(t, "old-binary")
	b.age(t, j.ID, "started_at", 10*lease)

	st, err := b.rec.RecoverLost(ctx)
	require.NoError(t, err)
	require.Zero(t, st.Requeued)
	b.requireStatus(t, j, jobstate.Running)

	b.age(t, j.ID, "started_at", 2*time.Hour)
	st, err = b.rec.RecoverLost(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Requeued)
}

// Many recoveries at once (several reconcilers, or the full pass and the
// lease pass together) recover each lost attempt exactly once.
func TestConcurrentRecoveriesTakeEachJobOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, reconciler.Config{Lease: lease})
	// More running jobs than the free tier's concurrency limit.
	_, err := b.st.DB().ExecContext(ctx, `UPDATE tiers SET max_concurrent_runs = 0`)
	require.NoError(t, err)
	dead := b.worker(t, "dead")
	const n = 20
	for range n {
		b.longJob(t, dead)
	}
	b.silence(t, dead, time.Minute)

	var mu sync.Mutex
	total := 0
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec, err := b.st.RecoverAbandoned(ctx, time.Minute, lease, 3, 7)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			total += len(rec.Requeued)
			mu.Unlock()
		}()
	}
	wg.Wait()
	for {
		rec, err := b.st.RecoverAbandoned(ctx, time.Minute, lease, 3, 7)
		require.NoError(t, err)
		if len(rec.Requeued) == 0 {
			break
		}
		total += len(rec.Requeued)
	}
	require.Equal(t, n, total)
	var requeued int
	require.NoError(t, b.st.DB().GetContext(ctx, &requeued,
		`SELECT count(*) FROM audit_events WHERE action = 'job.requeued'`))
	require.Equal(t, n, requeued)
}

// The recovery task is not held up by the lost worker's task, which asynq
// keeps active under the job's own task ID until its lease runs out.
func TestRecoveryTaskIsDeliveredWhileTheLostTaskIsActive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, reconciler.Config{Lease: lease})
	dead := b.worker(t, "dead")
	j := b.longJob(t, dead)

	opt, err := asynq.ParseRedisURI(testenv.RedisURL())
	require.NoError(t, err)
	task, err := tasks.NewRunJob(j.ID, b.queue, time.Hour, "")
	require.NoError(t, err)
	_, err = b.client.Enqueue(task)
	require.NoError(t, err)
	// The "dead" worker: it took the job's task and never lets go.
	delivered := make(chan string, 4)
	hold := make(chan struct{})
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 2, Queues: map[string]int{b.queue: 1},
		TaskCheckInterval: 20 * time.Millisecond, LogLevel: asynq.FatalLevel})
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		delivered <- id
		if id == j.ID.String() {
			select {
			case <-hold:
			case <-ctx.Done():
			}
		}
		return nil
	})))
	t.Cleanup(func() { close(hold); srv.Shutdown() })
	require.Equal(t, j.ID.String(), <-delivered)
	require.Equal(t, asynq.TaskStateActive, b.taskState(t, j.ID.String()))

	b.silence(t, dead, time.Minute)
	st, err := b.rec.RecoverLost(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Requeued)
	select {
	case id := <-delivered:
		require.Equal(t, j.ID.String()+":recovery-1", id)
	case <-time.After(30 * time.Second):
		t.Fatal("the recovery task was not delivered while the lost task was active")
	}
}

// Long-dead workers are forgotten, unless a job still runs under their name.
func TestDeadWorkersAreForgotten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, reconciler.Config{Lease: lease})
	gone, holding, alive := b.worker(t, "gone"), b.worker(t, "holding"), b.worker(t, "alive")
	j := b.longJob(t, holding)
	b.silence(t, gone, 2*time.Hour)
	b.silence(t, holding, 2*time.Hour)
	_, err := b.st.DB().ExecContext(ctx, `UPDATE jobs SET started_at = now() WHERE id = $1`, j.ID)
	require.NoError(t, err)

	n, err := b.st.DeleteDeadWorkers(ctx, time.Hour, 100)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	ws, err := b.st.Workers(ctx)
	require.NoError(t, err)
	var ids []string
	for _, w := range ws {
		ids = append(ids, w.ID)
	}
	require.ElementsMatch(t, []string{alive, holding}, ids)
}
