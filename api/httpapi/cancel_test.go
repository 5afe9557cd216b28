package httpapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/httpapi"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

// A running job whose worker is gone cannot be stopped now: the cancel is
// recorded and answered 202 with the job still running, and the next
// attempt ends it cancelled without running it (see jobrunner's tests).
func TestCancelOfAJobWhoseWorkerIsGone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newTestAPI(t, func(rdb *redis.Client, d *httpapi.Deps) {
		d.Enqueuer, d.Tasks = asynq.NewClientFromRedisClient(rdb), asynq.NewInspectorFromRedisClient(rdb)
		// No watcher: the API answers after one round instead of waiting
		// for a worker that will not come.
	})
	st, acct, queue := a.st, a.account, a.queue
	m, _, err := st.CreateModule(ctx, store.Actor{Name: "t"}, acct.ID, "loop", fixtures.Bytes(fixtures.Loop),
		wasmmeta.Meta{Exports: []wasmmeta.Export{{Name: "_start", Kind: "function"}}})
	require.NoError(t, err)
	j, err := st.CreateJob(ctx, store.Actor{Name: "t"}, store.Job{
		AccountID: acct.ID, ModuleID: m.ID, Queue: queue, Function: "_start",
		TimeoutMS: 1000, MemoryLimitMB: 16, MaxOutputBytes: 100,
	})
	require.NoError(t, err)
	_, err = st.ClaimJob(ctx, j.ID, "a-worker-that-died")
	require.NoError(t, err)

	status, job := a.post(t, "/v1/jobs/"+j.ID.String()+"/cancel", "", nil)
	require.Equal(t, http.StatusAccepted, status, "%v", job)
	require.Equal(t, "running", job["status"])

	requested, err := st.CancelRequested(ctx, j.ID)
	require.NoError(t, err)
	require.True(t, requested)
	events, err := st.JobEvents(ctx, acct.ID, j.ID)
	require.NoError(t, err)
	require.Equal(t, "job.cancel_requested", events[len(events)-1].Action)
}
