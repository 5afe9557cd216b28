package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/httpapi"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// When Redis refuses the enqueue, the client gets 503 and no job is left
// behind in Postgres.
func TestEnqueueFailureLeavesNoJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Nothing listens on port 1: every enqueue fails to connect.
	dead := asynq.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = dead.Close() })
	a := newTestAPI(t, func(_ *redis.Client, d *httpapi.Deps) {
		d.Enqueuer, d.EnqueueTimeout = dead, time.Second
	})

	status, mod := a.post(t, "/v1/modules", "application/wasm", fixtures.Bytes(fixtures.Hello))
	require.Equal(t, http.StatusCreated, status)
	body, _ := json.Marshal(map[string]any{"module_id": mod["id"]})
	status, problem := a.post(t, "/v1/jobs", "application/json", body)
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Equal(t, "unavailable", problem["code"])

	var jobs, events int
	require.NoError(t, a.st.DB().GetContext(ctx, &jobs, `SELECT count(*) FROM jobs`))
	require.NoError(t, a.st.DB().GetContext(ctx, &events, `SELECT count(*) FROM audit_events WHERE job_id IS NOT NULL`))
	require.Zero(t, jobs)
	require.Zero(t, events)
}
