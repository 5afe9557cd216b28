package reconciler_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/worker/reconciler"
)

type bundle struct {
	st        *store.Store
	rec       *reconciler.Reconciler
	client    *asynq.Client
	inspector *asynq.Inspector
	queue     string
	account   store.Account
	module    store.Module
}

func setup(t *testing.T, cfg reconciler.Config) bundle {
	t.Helper()
	st, a, m := testenv.StoreWithModule(t)
	opt, err := asynq.ParseRedisURI(testenv.RedisURL())
	require.NoError(t, err)
	client, inspector := asynq.NewClient(opt), asynq.NewInspector(opt)
	t.Cleanup(func() { _ = client.Close(); _ = inspector.Close() })
	if cfg.QueuedAfter == 0 {
		cfg.QueuedAfter = time.Minute
	}
	if cfg.RunningGrace == 0 {
		cfg.RunningGrace = time.Minute
	}
	return bundle{st: st, rec: reconciler.New(cfg, st, client, inspector, zap.NewNop()), client: client,
		inspector: inspector, queue: tasks.Queue(testenv.Namespace(t)), account: a, module: m}
}

func (b bundle) job(t *testing.T) store.Job {
	t.Helper()
	j, err := b.st.CreateJob(context.Background(), store.Actor{Name: "t"}, store.Job{
		AccountID: b.account.ID, ModuleID: b.module.ID, ModuleSHA256: b.module.SHA256, Queue: b.queue,
		Function: "_start", TimeoutMS: 1000, MemoryLimitMB: 16, MaxOutputBytes: 100,
	})
	require.NoError(t, err)
	return j
}

// requireStatus requires job j to be stored with status want, and returns
// it as stored.
func (b bundle) requireStatus(t *testing.T, j store.Job, want jobstate.Status) store.Job {
	t.Helper()
	got, err := b.st.GetJob(context.Background(), b.account.ID, j.ID)
	require.NoError(t, err)
	require.Equal(t, want, got.Status)
	return got
}

func (b bundle) age(t *testing.T, id any, column string, by time.Duration) {
	t.Helper()
	_, err := b.st.DB().ExecContext(context.Background(),
		`UPDATE jobs SET `+column+` = `+column+` - make_interval(secs => $2) WHERE id = $1`, id, by.Seconds())
	require.NoError(t, err)
}

func (b bundle) taskState(t *testing.T, id string) asynq.TaskState {
	t.Helper()
	info, err := b.inspector.GetTaskInfo(b.queue, id)
	require.NoError(t, err)
	return info.State
}

func TestLostTaskIsEnqueuedAgain(t *testing.T) {
	t.Parallel()
	b := setup(t, reconciler.Config{})
	j := b.job(t) // in Postgres, never enqueued: as if Redis lost it
	fresh := b.job(t)
	b.age(t, j.ID, "updated_at", 2*time.Minute)

	st, err := b.rec.Pass(context.Background())
	require.NoError(t, err)
	require.True(t, st.Ran)
	require.Equal(t, 1, st.Reenqueued, "only the stale job")
	require.Equal(t, asynq.TaskStatePending, b.taskState(t, j.ID.String()))
	_, err = b.inspector.GetTaskInfo(b.queue, fresh.ID.String())
	require.ErrorIs(t, err, asynq.ErrTaskNotFound, "a job queued moments ago is left to the API")

	st, err = b.rec.Pass(context.Background())
	require.NoError(t, err)
	require.Zero(t, st.Reenqueued, "checked jobs wait another period")
}

func TestArchivedTaskIsReplaced(t *testing.T) {
	t.Parallel()
	b := setup(t, reconciler.Config{})
	j := b.job(t)
	task, err := tasks.NewRunJob(j.ID, b.queue, time.Second, "")
	require.NoError(t, err)
	_, err = b.client.Enqueue(task)
	require.NoError(t, err)
	require.NoError(t, b.inspector.ArchiveTask(b.queue, j.ID.String()))
	b.age(t, j.ID, "updated_at", 2*time.Minute)

	st, err := b.rec.Pass(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, st.Reenqueued)
	require.Equal(t, asynq.TaskStatePending, b.taskState(t, j.ID.String()))
}

func TestAbandonedRunningJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, reconciler.Config{MaxAttempts: 2})
	retry, last, live := b.job(t), b.job(t), b.job(t)
	for _, j := range []store.Job{retry, last, live} {
		_, err := b.st.ClaimJob(ctx, j.ID, "gone")
		require.NoError(t, err)
	}
	// last has already used its attempts.
	_, err := b.st.DB().ExecContext(ctx, `UPDATE jobs SET attempts = 2 WHERE id = $1`, last.ID)
	require.NoError(t, err)
	b.age(t, retry.ID, "started_at", time.Hour)
	b.age(t, last.ID, "started_at", time.Hour)

	st, err := b.rec.Pass(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Requeued)
	require.Equal(t, 1, st.FailedLost)

	b.requireStatus(t, retry, jobstate.Queued)
	require.Equal(t, asynq.TaskStatePending, b.taskState(t, retry.ID.String()+":recovery-1"),
		"a recovery task of its own, whatever became of the lost worker's")
	got := b.requireStatus(t, last, jobstate.Failed)
	require.Equal(t, "worker_lost", *got.ErrorCode)
	got, err = b.st.GetJob(ctx, b.account.ID, live.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.Running, got.Status, "a job within its time is left alone")

	events, err := b.st.JobEvents(ctx, b.account.ID, retry.ID)
	require.NoError(t, err)
	require.Equal(t, "job.requeued", events[len(events)-1].Action)
	require.Equal(t, "worker_lost", events[len(events)-1].Data["reason"])
}

func TestOneReconcilerAtATime(t *testing.T) {
	t.Parallel()
	b := setup(t, reconciler.Config{})
	held := make(chan struct{})
	release := make(chan struct{})
	go func() {
		_, _ = b.st.TryLock(context.Background(), 0x5757524543, func(context.Context) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	st, err := b.rec.Pass(context.Background())
	close(release)
	require.NoError(t, err)
	require.False(t, st.Ran)
}

func TestRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, reconciler.Config{Retention: 24 * time.Hour})
	old, recent := b.job(t), b.job(t)
	for _, j := range []store.Job{old, recent} {
		testenv.Finish(t, b.st, j.ID, jobstate.Outcome{Status: jobstate.Succeeded})
	}
	b.age(t, old.ID, "finished_at", 48*time.Hour)
	// A deleted module nothing refers to, and its content uploaded long ago.
	other := testenv.Module(t, b.st, b.account.ID, "echo", fixtures.Bytes(fixtures.Echo))
	_, err := b.st.DB().ExecContext(ctx, `UPDATE modules SET deleted_at = now() WHERE id = $1`, other.ID)
	require.NoError(t, err)
	_, err = b.st.DB().ExecContext(ctx, `UPDATE module_blobs SET created_at = now() - interval '2 hours'`)
	require.NoError(t, err)

	// Audit rows past the retention go, whatever their place among the
	// others (the purge reads the oldest rows by id).
	_, err = b.st.DB().ExecContext(ctx, `UPDATE audit_events SET created_at = now() - interval '48 hours'
		WHERE action = 'module.created'`)
	require.NoError(t, err)

	st, err := b.rec.Pass(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, st.Purged.Jobs)
	require.EqualValues(t, 2, st.Purged.Events, "hello's and echo's module.created")
	var kept int
	require.NoError(t, b.st.DB().GetContext(ctx, &kept, `SELECT count(*) FROM audit_events WHERE action = 'module.created'`))
	require.Zero(t, kept)
	require.NoError(t, b.st.DB().GetContext(ctx, &kept, `SELECT count(*) FROM audit_events WHERE job_id = $1`, recent.ID))
	require.Positive(t, kept, "the recent job's rows stay")
	require.EqualValues(t, 1, st.Purged.Modules)
	require.EqualValues(t, 1, st.Purged.Blobs, "echo's content goes; hello's is still used")
	_, err = b.st.GetJob(ctx, b.account.ID, old.ID)
	require.Error(t, err)
	events, err := b.st.JobEvents(ctx, b.account.ID, old.ID)
	require.NoError(t, err)
	require.Empty(t, events)
	_, err = b.st.GetJob(ctx, b.account.ID, recent.ID)
	require.NoError(t, err)
	_, err = b.st.ModuleContent(ctx, b.module.SHA256)
	require.NoError(t, err)
}

// A lost worker's job holds its account's concurrency slot only until the
// reconciler ends it: the slot is the job's unfinished row.
func TestLostWorkerReturnsTheConcurrencySlot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, reconciler.Config{MaxAttempts: 1})
	j := b.job(t)
	_, err := b.st.ClaimJob(ctx, j.ID, "killed")
	require.NoError(t, err)
	n, err := b.st.UnfinishedJobs(ctx, b.account.ID)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the running job holds the slot")
	b.age(t, j.ID, "started_at", time.Hour)

	st, err := b.rec.Pass(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.FailedLost)
	n, err = b.st.UnfinishedJobs(ctx, b.account.ID)
	require.NoError(t, err)
	require.Zero(t, n, "the slot is free again")
}
