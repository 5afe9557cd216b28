package deliveryqueue_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/deliveryqueue"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
)

type bundle struct {
	st        *store.Store
	queue     deliveryqueue.Queue
	inspector *asynq.Inspector
	// finished makes a job terminal: with a webhook URL, the trigger gives
	// it a delivery.
	finished func(url *string) store.Job
}

func setup(t *testing.T) bundle {
	t.Helper()
	st, a, m := testenv.StoreWithModule(t)
	opt, err := redis.ParseURL(testenv.RedisURL())
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	inspector := asynq.NewInspectorFromRedisClient(rdb)
	q := deliveryqueue.Queue{Client: asynq.NewClientFromRedisClient(rdb), Inspector: inspector, Name: tasks.WebhookQueue(testenv.Namespace(t))}
	return bundle{st: st, queue: q, inspector: inspector, finished: func(url *string) store.Job {
		return testenv.FinishedJob(t, st, store.Job{AccountID: a.ID, ModuleID: m.ID, ModuleSHA256: m.SHA256,
			Queue: "q", Function: "_start", TimeoutMS: 1000, MemoryLimitMB: 16, MaxOutputBytes: 100, WebhookURL: url},
			jobstate.Outcome{Status: jobstate.Succeeded})
	}}
}

func (b bundle) state(t *testing.T, d store.Delivery) asynq.TaskState {
	t.Helper()
	info, err := b.inspector.GetTaskInfo(b.queue.Name, tasks.DeliverWebhookID(d.ID, d.Attempts))
	require.NoError(t, err)
	return info.State
}

// A terminal job's delivery (made by the trigger) is queued once, however
// often it is asked for; a job without a webhook URL has none to queue.
func TestEnsureForJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	url := "https://hooks.example/x"
	job := b.finished(&url)
	require.NoError(t, b.queue.EnsureForJob(ctx, b.st, job))
	require.NoError(t, b.queue.EnsureForJob(ctx, b.st, job))
	d, err := b.st.DeliveryForJob(ctx, job.AccountID, job.ID)
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStatePending, b.state(t, d))
	pending, err := b.inspector.ListPendingTasks(b.queue.Name)
	require.NoError(t, err)
	require.Len(t, pending, 1)

	require.NoError(t, b.queue.EnsureForJob(ctx, b.st, b.finished(nil)))
	pending, err = b.inspector.ListPendingTasks(b.queue.Name)
	require.NoError(t, err)
	require.Len(t, pending, 1, "nothing queued for a job without a webhook")
}

// A task scheduled for later is left alone unless asked to run now; one
// asynq archived is replaced; without an inspector, one that is queued is
// left alone whatever its state.
func TestEnsure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	url := "https://hooks.example/x"
	job := b.finished(&url)
	d, err := b.st.DeliveryForJob(ctx, job.AccountID, job.ID)
	require.NoError(t, err)

	blind := deliveryqueue.Queue{Client: b.queue.Client, Name: b.queue.Name}
	for _, step := range []struct {
		what    string
		archive bool // the task first
		q       deliveryqueue.Queue
		at      time.Time
		runNow  bool
		queued  bool
		state   asynq.TaskState
	}{
		{what: "queued for later", q: b.queue, at: time.Now().Add(time.Hour), queued: true, state: asynq.TaskStateScheduled},
		{what: "a scheduled task waits for its time", q: b.queue, state: asynq.TaskStateScheduled},
		{what: "run now moves it", q: b.queue, runNow: true, queued: true, state: asynq.TaskStatePending},
		{what: "without an inspector a queued task is left alone", archive: true, q: blind, runNow: true, state: asynq.TaskStateArchived},
		{what: "an archived task is replaced", q: b.queue, queued: true, state: asynq.TaskStatePending},
	} {
		if step.archive {
			require.NoError(t, b.inspector.ArchiveTask(b.queue.Name, tasks.DeliverWebhookID(d.ID, d.Attempts)))
		}
		queued, err := step.q.Ensure(ctx, d, step.at, step.runNow)
		require.NoError(t, err, step.what)
		require.Equal(t, step.queued, queued, step.what)
		require.Equal(t, step.state, b.state(t, d), step.what)
	}
}
