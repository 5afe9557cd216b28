package jobrunner_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
	"github.com/wasmwizard/wasmwizard/worker/executor"
	"github.com/wasmwizard/wasmwizard/worker/jobrunner"
	"github.com/wasmwizard/wasmwizard/worker/modstore"
)

func setup(t *testing.T, fixture string, timeout time.Duration) (*store.Store, store.Job, *jobrunner.Runner) {
	t.Helper()
	return setupWith(t, fixtures.Bytes(fixture), timeout, executor.NewInProcess(""))
}

// setupWith stores module wasm and a job of it, run by exec.
func setupWith(t *testing.T, wasm []byte, timeout time.Duration, exec executor.Executor) (*store.Store, store.Job, *jobrunner.Runner) {
	t.Helper()
	return setupDeps(t, wasm, timeout, exec, nil)
}

// setupDeps is setupWith with the runner's deps changed by deps.
func setupDeps(t *testing.T, wasm []byte, timeout time.Duration, exec executor.Executor,
	deps func(*jobrunner.Deps)) (*store.Store, store.Job, *jobrunner.Runner) {
	t.Helper()
	ctx := context.Background()
	st := testenv.Store(t)
	a, err := st.CreateAccount(ctx, store.Actor{Name: "t"}, "a", "free")
	require.NoError(t, err)
	m, _, err := st.CreateModule(ctx, store.Actor{Name: "t"}, a.ID, "m", wasm, wasmmeta.Meta{})
	require.NoError(t, err)
	j, err := st.CreateJob(ctx, store.Actor{Name: "t"}, store.Job{
		AccountID: a.ID, ModuleID: m.ID, ModuleSHA256: m.SHA256, Queue: "q", Function: "_start",
		TimeoutMS: int(timeout.Milliseconds()), MemoryLimitMB: 16, MaxOutputBytes: 1000,
	})
	require.NoError(t, err)
	mods, err := modstore.New(t.TempDir(), st.ModuleContent)
	require.NoError(t, err)
	d := jobrunner.Deps{Store: st, Executor: exec, Modules: mods, WorkerID: "test-worker", Log: zap.NewNop()}
	if deps != nil {
		deps(&d)
	}
	return st, j, jobrunner.New(d)
}

func TestDuplicateDeliveryDoesNotRunAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, j, r := setup(t, fixtures.Hello, 5*time.Second)
	task, err := tasks.NewRunJob(j.ID, "q", time.Second, "")
	require.NoError(t, err)

	require.NoError(t, r.ProcessTask(ctx, task))
	first, err := st.GetJob(ctx, j.AccountID, j.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.Succeeded, first.Status)
	require.Equal(t, "hello, world\n", string(first.Stdout))

	require.NoError(t, r.ProcessTask(ctx, task), "a finished job's task is acknowledged")
	again, err := st.GetJob(ctx, j.AccountID, j.ID)
	require.NoError(t, err)
	require.Equal(t, 1, again.Attempts)
	require.Equal(t, first.FinishedAt, again.FinishedAt)
}

func TestInterruptedRunIsHandedBack(t *testing.T) {
	t.Parallel()
	st, j, r := setup(t, fixtures.Loop, 30*time.Second)
	task, err := tasks.NewRunJob(j.ID, "q", time.Second, "")
	require.NoError(t, err)
	// The worker shuts down while the guest runs.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	require.Error(t, r.ProcessTask(ctx, task), "asynq must requeue the task")

	back, err := st.GetJob(context.Background(), j.AccountID, j.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.Queued, back.Status)
	require.Equal(t, 1, back.Attempts)
}

func TestTaskForMissingJobIsDropped(t *testing.T) {
	t.Parallel()
	_, j, r := setup(t, fixtures.Hello, time.Second)
	task, err := tasks.NewRunJob(store.NewID(), "q", time.Second, "")
	require.NoError(t, err)
	require.NoError(t, r.ProcessTask(context.Background(), task))
	_ = j
}

func TestCancelledRunEndsCancelled(t *testing.T) {
	t.Parallel()
	st, j, r := setup(t, fixtures.Loop, 30*time.Second)
	task, err := tasks.NewRunJob(j.ID, "q", time.Second, "")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.ProcessTask(ctx, task) }()
	require.Eventually(t, func() bool {
		cur, err := st.GetJob(context.Background(), j.AccountID, j.ID)
		return err == nil && cur.Status == jobstate.Running
	}, 30*time.Second, 5*time.Millisecond)

	// What the cancel endpoint does: record the request, then interrupt.
	_, err = st.CancelJob(context.Background(), store.Actor{Name: "key:t"}, j.AccountID, j.ID)
	require.NoError(t, err)
	cancel()
	require.NoError(t, <-done)

	got, err := st.GetJob(context.Background(), j.AccountID, j.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.Cancelled, got.Status)
	require.Equal(t, "cancelled", *got.ErrorCode)
	events, err := st.JobEvents(context.Background(), j.AccountID, j.ID)
	require.NoError(t, err)
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action)
	}
	require.Equal(t, []string{"job.created", "job.started", "job.cancel_requested", "job.cancelled"}, actions)
}

func TestJobCancelledDuringALostAttemptIsNotRunAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, j, r := setup(t, fixtures.Hello, time.Second)
	_, err := st.ClaimJob(ctx, j.ID, "dead-worker")
	require.NoError(t, err)
	_, err = st.CancelJob(ctx, store.Actor{Name: "key:t"}, j.AccountID, j.ID)
	require.NoError(t, err)
	// The worker holding the attempt died; the claim expires.
	_, err = st.DB().ExecContext(ctx, `UPDATE jobs SET started_at = now() - interval '1 hour' WHERE id = $1`, j.ID)
	require.NoError(t, err)

	task, err := tasks.NewRunJob(j.ID, "q", time.Second, "")
	require.NoError(t, err)
	require.NoError(t, r.ProcessTask(ctx, task))
	got, err := st.GetJob(ctx, j.AccountID, j.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.Cancelled, got.Status)
	require.Empty(t, got.Stdout, "the guest did not run")
}

// A task whose context is cancelled as it starts still sees its claim, so
// the job is not left running with nobody running it.
func TestClaimUnderACancelledContextIsNotLost(t *testing.T) {
	t.Parallel()
	st, j, r := setup(t, fixtures.Hello, time.Second)
	task, err := tasks.NewRunJob(j.ID, "q", time.Second, "")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.Error(t, r.ProcessTask(ctx, task), "asynq must requeue the task")
	back, err := st.GetJob(context.Background(), j.AccountID, j.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.Queued, back.Status)
}

// With fair claims, a delivery of one job may run another (here the
// account's older job); Cancel, by the job's ID, reaches that run, and the
// delivered job stays queued for the next delivery.
func TestFairRunOfAnotherJobIsCancelledByItsID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, older, r := setup(t, fixtures.Loop, 30*time.Second)
	r.EnableFairClaims()
	newer, err := st.CreateJob(ctx, store.Actor{Name: "t"}, store.Job{
		AccountID: older.AccountID, ModuleID: older.ModuleID, Queue: "q", Function: "_start",
		TimeoutMS: 30000, MemoryLimitMB: 16, MaxOutputBytes: 1000,
	})
	require.NoError(t, err)
	task, err := tasks.NewRunJob(newer.ID, "q", 30*time.Second, "")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- r.ProcessTask(ctx, task) }()
	require.Eventually(t, func() bool {
		cur, err := st.GetJob(ctx, older.AccountID, older.ID)
		return err == nil && cur.Status == jobstate.Running
	}, 30*time.Second, 5*time.Millisecond, "the older job runs first")

	_, err = st.CancelJob(ctx, store.Actor{Name: "key:t"}, older.AccountID, older.ID)
	require.NoError(t, err)
	r.Cancel(newer.ID) // the delivered job is not running: nothing happens
	r.Cancel(older.ID)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the run was not cancelled")
	}
	got, err := st.GetJob(ctx, older.AccountID, older.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.Cancelled, got.Status)
	got, err = st.GetJob(ctx, newer.AccountID, newer.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.Queued, got.Status)
}

// asynq cancels by task ID: a client's cancel of the delivered job cancels
// the task's context, which must not stop the run of another job that a fair
// claim gave that task. Before, that run was handed back to the queue.
func TestCancelOfTheDeliveredJobDoesNotStopAFairRunOfAnother(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, older, r := setup(t, fixtures.Loop, 30*time.Second)
	r.EnableFairClaims()
	newer, err := st.CreateJob(ctx, store.Actor{Name: "t"}, store.Job{
		AccountID: older.AccountID, ModuleID: older.ModuleID, Queue: "q", Function: "_start",
		TimeoutMS: 30000, MemoryLimitMB: 16, MaxOutputBytes: 1000,
	})
	require.NoError(t, err)
	task, err := tasks.NewRunJob(newer.ID, "q", 30*time.Second, "")
	require.NoError(t, err)
	tctx, cancelTask := context.WithCancel(ctx)
	defer cancelTask()
	done := make(chan error, 1)
	go func() { done <- r.ProcessTask(tctx, task) }()
	require.Eventually(t, func() bool {
		cur, err := st.GetJob(ctx, older.AccountID, older.ID)
		return err == nil && cur.Status == jobstate.Running
	}, 30*time.Second, 5*time.Millisecond, "the older job runs first")

	// The client cancels the delivered (queued) job; asynq cancels its task.
	cancelledJob, err := st.CancelJob(ctx, store.Actor{Name: "key:t"}, newer.AccountID, newer.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.Cancelled, cancelledJob.Status)
	cancelTask()
	select {
	case err := <-done:
		t.Fatalf("the run of the older job ended with the task's cancel: %v", err)
	case <-time.After(time.Second):
	}
	got, err := st.GetJob(ctx, older.AccountID, older.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.Running, got.Status, "the older job still runs")

	// Its own cancel still stops it.
	_, err = st.CancelJob(ctx, store.Actor{Name: "key:t"}, older.AccountID, older.ID)
	require.NoError(t, err)
	r.Cancel(older.ID)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the run was not cancelled")
	}
	got, err = st.GetJob(ctx, older.AccountID, older.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.Cancelled, got.Status)
}

// The live-output hook sees the guest's output while it runs; the job,
// cancelled meanwhile, keeps that output.
func TestLiveOutputAndACancelledJobsOutput(t *testing.T) {
	t.Parallel()
	seen := make(chan struct{})
	var got []string
	var hookFor uuid.UUID
	st, j, r := setupDeps(t, fixtures.Bytes(fixtures.TalkLoop), 30*time.Second, executor.NewInProcess(""),
		func(d *jobrunner.Deps) {
			d.Output = func(id uuid.UUID) func(executor.Stream, []byte) {
				hookFor = id
				return func(s executor.Stream, chunk []byte) {
					got = append(got, s.String()+":"+string(chunk))
					if s == executor.StreamStderr {
						close(seen)
					}
				}
			}
		})
	task, err := tasks.NewRunJob(j.ID, "q", time.Second, "")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.ProcessTask(ctx, task) }()
	select {
	case <-seen:
	case <-time.After(30 * time.Second):
		t.Fatal("no live output")
	}
	_, err = st.CancelJob(context.Background(), store.Actor{Name: "key:t"}, j.AccountID, j.ID)
	require.NoError(t, err)
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, j.ID, hookFor)
	require.Equal(t, []string{"stdout:partial out\n", "stderr:partial err\n"}, got)

	cur, err := st.GetJob(context.Background(), j.AccountID, j.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.Cancelled, cur.Status)
	require.Equal(t, "partial out\n", string(cur.Stdout))
	require.Equal(t, "partial err\n", string(cur.Stderr))
}

func TestATimedOutJobKeepsItsOutput(t *testing.T) {
	t.Parallel()
	st, j, r := setup(t, fixtures.TalkLoop, 200*time.Millisecond)
	task, err := tasks.NewRunJob(j.ID, "q", time.Second, "")
	require.NoError(t, err)
	require.NoError(t, r.ProcessTask(context.Background(), task))
	cur, err := st.GetJob(context.Background(), j.AccountID, j.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.TimedOut, cur.Status)
	require.Equal(t, "partial out\n", string(cur.Stdout))
	require.Equal(t, "partial err\n", string(cur.Stderr))
}
