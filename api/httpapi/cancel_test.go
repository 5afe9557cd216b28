package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/api/httpapi"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

// A running job whose worker is gone cannot be stopped now: the cancel is
// recorded and answered 202 with the job still running, and the next
// attempt ends it cancelled without running it (see jobrunner's tests).
func TestCancelOfAJobWhoseWorkerIsGone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testenv.Store(t)
	opt, err := redis.ParseURL(testenv.RedisURL())
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	inspector := asynq.NewInspectorFromRedisClient(rdb)
	queue := testenv.Namespace(t) + "jobs"
	srv := httpapi.New(httpapi.Deps{
		Store: st, Redis: rdb, Enqueuer: asynq.NewClientFromRedisClient(rdb), Tasks: inspector,
		Inspector: wasmmeta.NewInspector(ctx), Log: zap.NewNop(), Registry: prometheus.NewRegistry(), Queue: queue,
		// No watcher: the API answers after one round instead of waiting
		// for a worker that will not come.
	})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

	acct, err := st.CreateAccount(ctx, store.Actor{Name: "t"}, "a", "free")
	require.NoError(t, err)
	_, key, err := st.CreateKey(ctx, store.Actor{Name: "t"}, acct.ID, "")
	require.NoError(t, err)
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

	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/jobs/"+j.ID.String()+"/cancel", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	body, _ := io.ReadAll(res.Body)
	require.Equal(t, http.StatusAccepted, res.StatusCode, "%s", body)
	var job map[string]any
	require.NoError(t, json.Unmarshal(body, &job))
	require.Equal(t, "running", job["status"])

	requested, err := st.CancelRequested(ctx, j.ID)
	require.NoError(t, err)
	require.True(t, requested)
	events, err := st.JobEvents(ctx, acct.ID, j.ID)
	require.NoError(t, err)
	require.Equal(t, "job.cancel_requested", events[len(events)-1].Action)
}
