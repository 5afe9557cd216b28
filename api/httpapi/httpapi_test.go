package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

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

// When Redis refuses the enqueue, the client gets 503 and no job is left
// behind in Postgres.
func TestEnqueueFailureLeavesNoJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testenv.Store(t)
	opt, err := redis.ParseURL(testenv.RedisURL())
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	// Nothing listens on port 1: every enqueue fails to connect.
	dead := asynq.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = dead.Close() })
	inspector := wasmmeta.NewInspector(ctx)
	srv := httpapi.New(httpapi.Deps{
		Store: st, Redis: rdb, Enqueuer: dead, Inspector: inspector, Log: zap.NewNop(),
		Registry: prometheus.NewRegistry(), Queue: testenv.Namespace(t) + "jobs", EnqueueTimeout: time.Second,
	})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

	acct, err := st.CreateAccount(ctx, store.Actor{Name: "t"}, "a", "free")
	require.NoError(t, err)
	_, key, err := st.CreateKey(ctx, store.Actor{Name: "t"}, acct.ID, "")
	require.NoError(t, err)

	post := func(path, ct string, body []byte) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", ct)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer func() { _ = res.Body.Close() }()
		b, _ := io.ReadAll(res.Body)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m), "%s", b)
		return res.StatusCode, m
	}
	status, mod := post("/v1/modules", "application/wasm", fixtures.Bytes(fixtures.Hello))
	require.Equal(t, http.StatusCreated, status)
	body, _ := json.Marshal(map[string]any{"module_id": mod["id"]})
	status, problem := post("/v1/jobs", "application/json", body)
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Equal(t, "unavailable", problem["code"])

	var jobs, events int
	require.NoError(t, st.DB().GetContext(ctx, &jobs, `SELECT count(*) FROM jobs`))
	require.NoError(t, st.DB().GetContext(ctx, &events, `SELECT count(*) FROM audit_events WHERE job_id IS NOT NULL`))
	require.Zero(t, jobs)
	require.Zero(t, events)
}
