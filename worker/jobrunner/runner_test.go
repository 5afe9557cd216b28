package jobrunner_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
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
	st, a := testenv.StoreWithAccount(t)
	m := testenv.Module(t, st, a.ID, "m", wasm)
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
	first := requireStatus(t, st, j, jobstate.Succeeded)
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

	back := requireStatus(t, st, j, jobstate.Queued)
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
	cancel, done := start(t, r, j)
	awaitRunning(t, st, j)

	cancelRun(t, st, j, cancel, done)

	got := requireStatus(t, st, j, jobstate.Cancelled)
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

	process(t, r, j)
	got := requireStatus(t, st, j, jobstate.Cancelled)
	require.Empty(t, got.Stdout, "the guest did not run")
}

// setupFairRun is setup of a looping job, older, run with fair claims, and
// a newer job of the same account with the task that delivers it.
func setupFairRun(t *testing.T) (*store.Store, store.Job, store.Job, *jobrunner.Runner, *asynq.Task) {
	t.Helper()
	st, older, r := setup(t, fixtures.Loop, 30*time.Second)
	r.EnableFairClaims()
	newer, err := st.CreateJob(context.Background(), store.Actor{Name: "t"}, store.Job{
		AccountID: older.AccountID, ModuleID: older.ModuleID, Queue: "q", Function: "_start",
		TimeoutMS: 30000, MemoryLimitMB: 16, MaxOutputBytes: 1000,
	})
	require.NoError(t, err)
	task, err := tasks.NewRunJob(newer.ID, "q", 30*time.Second, "")
	require.NoError(t, err)
	return st, older, newer, r, task
}

// awaitRunning waits until job j runs.
func awaitRunning(t *testing.T, st *store.Store, j store.Job, msgAndArgs ...any) {
	t.Helper()
	require.Eventually(t, func() bool {
		cur, err := st.GetJob(context.Background(), j.AccountID, j.ID)
		return err == nil && cur.Status == jobstate.Running
	}, 30*time.Second, 5*time.Millisecond, msgAndArgs...)
}

// awaitCancelledRun waits for a cancelled run's ProcessTask to end without
// error.
func awaitCancelledRun(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the run was not cancelled")
	}
}

// start delivers the task of job j to r in the background: cancel cancels
// the task's context, done gets what ProcessTask returned.
func start(t *testing.T, r *jobrunner.Runner, j store.Job) (cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	task, err := tasks.NewRunJob(j.ID, "q", time.Second, "")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ended := make(chan error, 1)
	go func() { ended <- r.ProcessTask(ctx, task) }()
	return cancel, ended
}

// cancelRun does what the cancel endpoint does to job j, run by start:
// record the request, then interrupt; the run must end without error.
func cancelRun(t *testing.T, st *store.Store, j store.Job, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	_, err := st.CancelJob(context.Background(), store.Actor{Name: "key:t"}, j.AccountID, j.ID)
	require.NoError(t, err)
	cancel()
	require.NoError(t, <-done)
}

// process delivers the task of job j to r once and requires its
// acknowledgement.
func process(t *testing.T, r *jobrunner.Runner, j store.Job) {
	t.Helper()
	task, err := tasks.NewRunJob(j.ID, "q", time.Second, "")
	require.NoError(t, err)
	require.NoError(t, r.ProcessTask(context.Background(), task))
}

// requireStatus requires job j to be stored with status want, and returns
// it as stored.
func requireStatus(t *testing.T, st *store.Store, j store.Job, want jobstate.Status, msgAndArgs ...any) store.Job {
	t.Helper()
	got, err := st.GetJob(context.Background(), j.AccountID, j.ID)
	require.NoError(t, err)
	require.Equal(t, want, got.Status, msgAndArgs...)
	return got
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
	requireStatus(t, st, j, jobstate.Queued)
}

// With fair claims, a delivery of one job may run another (here the
// account's older job); Cancel, by the job's ID, reaches that run, and the
// delivered job stays queued for the next delivery.
func TestFairRunOfAnotherJobIsCancelledByItsID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, older, newer, r, task := setupFairRun(t)
	done := make(chan error, 1)
	go func() { done <- r.ProcessTask(ctx, task) }()
	awaitRunning(t, st, older, "the older job runs first")

	_, err := st.CancelJob(ctx, store.Actor{Name: "key:t"}, older.AccountID, older.ID)
	require.NoError(t, err)
	r.Cancel(newer.ID) // the delivered job is not running: nothing happens
	r.Cancel(older.ID)
	awaitCancelledRun(t, done)
	requireStatus(t, st, older, jobstate.Cancelled)
	requireStatus(t, st, newer, jobstate.Queued)
}

// asynq cancels by task ID: a client's cancel of the delivered job cancels
// the task's context, which must not stop the run of another job that a fair
// claim gave that task. Before, that run was handed back to the queue.
func TestCancelOfTheDeliveredJobDoesNotStopAFairRunOfAnother(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, older, newer, r, task := setupFairRun(t)
	tctx, cancelTask := context.WithCancel(ctx)
	defer cancelTask()
	done := make(chan error, 1)
	go func() { done <- r.ProcessTask(tctx, task) }()
	awaitRunning(t, st, older, "the older job runs first")

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
	requireStatus(t, st, older, jobstate.Running, "the older job still runs")

	// Its own cancel still stops it.
	_, err = st.CancelJob(ctx, store.Actor{Name: "key:t"}, older.AccountID, older.ID)
	require.NoError(t, err)
	r.Cancel(older.ID)
	awaitCancelledRun(t, done)
	requireStatus(t, st, older, jobstate.Cancelled)
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
	cancel, done := start(t, r, j)
	select {
	case <-seen:
	case <-time.After(30 * time.Second):
		t.Fatal("no live output")
	}
	cancelRun(t, st, j, cancel, done)
	require.Equal(t, j.ID, hookFor)
	require.Equal(t, []string{"stdout:partial out\n", "stderr:partial err\n"}, got)

	cur := requireStatus(t, st, j, jobstate.Cancelled)
	require.Equal(t, "partial out\n", string(cur.Stdout))
	require.Equal(t, "partial err\n", string(cur.Stderr))
}

func TestATimedOutJobKeepsItsOutput(t *testing.T) {
	t.Parallel()
	st, j, r := setup(t, fixtures.TalkLoop, 200*time.Millisecond)
	process(t, r, j)
	cur := requireStatus(t, st, j, jobstate.TimedOut)
	require.Equal(t, "partial out\n", string(cur.Stdout))
	require.Equal(t, "partial err\n", string(cur.Stderr))
}
