package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/httpapi"
	"github.com/wasmwizard/wasmwizard/shared/doorbell"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// A new job rings the doorbell (a hint for an idle worker) unless the
// doorbell is already long: then no worker is listening, and the API stops
// ringing for a while instead of paying a Redis round trip per job.
func TestTheDoorbellIsQuietWhileNobodyListens(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, func(rdb *redis.Client, d *httpapi.Deps) {
		d.Enqueuer = asynq.NewClientFromRedisClient(rdb)
	})
	ctx := context.Background()
	key := doorbell.Key(a.queue)
	t.Cleanup(func() { _ = a.rdb.Del(context.Background(), key).Err() })
	status, mod := a.post(t, "/v1/modules", "application/wasm", fixtures.Bytes(fixtures.Hello))
	require.Equal(t, http.StatusCreated, status)
	submit := func() {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"module_id": mod["id"]})
		status, job := a.post(t, "/v1/jobs", "application/json", body)
		require.Equal(t, http.StatusCreated, status, "%v", job)
	}
	length := func() int64 {
		n, err := a.rdb.LLen(ctx, key).Result()
		require.NoError(t, err)
		return n
	}

	submit()
	require.EqualValues(t, 1, length(), "a short doorbell is rung")
	for range 100 {
		require.NoError(t, a.rdb.LPush(ctx, key, doorbell.Entry(uuid.New(), time.Now())).Err())
	}
	submit()
	require.EqualValues(t, 102, length(), "rung, and found long")
	submit()
	submit()
	require.EqualValues(t, 102, length(), "no more rings while it is long")
}
