package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/httpapi"
	"github.com/wasmwizard/wasmwizard/api/ratelimit"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
	"github.com/wasmwizard/wasmwizard/shared/webhook"
	"github.com/wasmwizard/wasmwizard/shared/webhook/webhooktest"
)

// Manual retries coalesce on the one task of the delivery's next attempt,
// and are limited per account.
func TestRetriesCoalesceAndAreLimited(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var inspector *asynq.Inspector
	var client *asynq.Client
	var webhooks string
	a := newTestAPI(t, func(rdb *redis.Client, d *httpapi.Deps) {
		ns := strings.TrimSuffix(d.Queue, "jobs")
		client, inspector = asynq.NewClientFromRedisClient(rdb), asynq.NewInspectorFromRedisClient(rdb)
		d.Enqueuer, d.Tasks = client, inspector
		d.Limiter = ratelimit.New(rdb, ns)
		webhooks = ns + "webhooks"
		d.WebhookQueue = webhooks
	})
	m, _, err := a.st.CreateModule(ctx, store.Actor{Name: "t"}, a.account.ID, "hello", fixtures.Bytes(fixtures.Hello), wasmmeta.Meta{})
	require.NoError(t, err)
	url := "https://hooks.example/x"
	j, err := a.st.CreateJob(ctx, store.Actor{Name: "t"}, store.Job{AccountID: a.account.ID, ModuleID: m.ID,
		ModuleSHA256: m.SHA256, Queue: a.queue, Function: "_start", TimeoutMS: 1000, MemoryLimitMB: 16,
		MaxOutputBytes: 100, WebhookURL: &url})
	require.NoError(t, err)
	_, err = a.st.ClaimJob(ctx, j.ID, "w")
	require.NoError(t, err)
	ok, err := a.st.FinishJob(ctx, j.ID, 1, "w", jobstate.Outcome{Status: jobstate.Failed, ErrorCode: "trap"})
	require.NoError(t, err)
	require.True(t, ok)
	d, err := a.st.DeliveryForJob(ctx, a.account.ID, j.ID)
	require.NoError(t, err)
	path := "/v1/jobs/" + j.ID.String() + "/deliveries/retry"
	queued := func() []*asynq.TaskInfo {
		var all []*asynq.TaskInfo
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
			inspector.ListPendingTasks, inspector.ListScheduledTasks, inspector.ListRetryTasks} {
			l, err := list(webhooks)
			if err == nil {
				all = append(all, l...)
			}
		}
		return all
	}

	// The first retry queues the send; more retries while it waits add
	// nothing.
	for range 3 {
		status, v := a.post(t, path, "", nil)
		require.Equal(t, http.StatusAccepted, status, "%v", v)
		require.Equal(t, "pending", v["status"])
	}
	tasksNow := queued()
	require.Len(t, tasksNow, 1, "one send waits, whatever the number of retries")
	require.Equal(t, tasks.DeliverWebhookID(d.ID, 0), tasksNow[0].ID)

	// The send is made and fails; the next attempt is scheduled for later.
	// A retry moves that very task to now.
	require.NoError(t, inspector.DeleteTask(webhooks, tasksNow[0].ID))
	code := 503
	require.NoError(t, a.st.RecordAttempt(ctx, d.ID, store.Attempt{StatusCode: &code}, store.DeliveryPending, time.Now().Add(time.Hour)))
	next, err := tasks.NewDeliverWebhook(d.ID, d.AccountID, 1, "", webhooks, asynq.ProcessIn(time.Hour))
	require.NoError(t, err)
	_, err = client.EnqueueContext(ctx, next)
	require.NoError(t, err)
	status, v := a.post(t, path, "", nil)
	require.Equal(t, http.StatusAccepted, status, "%v", v)
	tasksNow = queued()
	require.Len(t, tasksNow, 1)
	require.Equal(t, tasks.DeliverWebhookID(d.ID, 1), tasksNow[0].ID)
	require.Equal(t, asynq.TaskStatePending, tasksNow[0].State, "moved to now")

	// Ten retries a minute per account.
	for range 6 {
		status, _ := a.post(t, path, "", nil)
		require.Equal(t, http.StatusAccepted, status)
	}
	req, err := http.NewRequest(http.MethodPost, a.url+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+a.key)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	require.NotEmpty(t, res.Header.Get("Retry-After"))
	require.Equal(t, "10", res.Header.Get("RateLimit-Limit"))
	require.Len(t, queued(), 1)
}

// A batch resolves each distinct webhook host once, all at the same time.
func TestBatchResolvesEachWebhookHostOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	res, lookups := webhooktest.DNS(t, 200*time.Millisecond, [4]byte{93, 184, 216, 34})
	a := newTestAPI(t, func(rdb *redis.Client, d *httpapi.Deps) {
		d.Enqueuer = asynq.NewClientFromRedisClient(rdb)
		d.Webhooks = webhook.Policy{Resolver: res}
	})
	m, _, err := a.st.CreateModule(ctx, store.Actor{Name: "t"}, a.account.ID, "hello", fixtures.Bytes(fixtures.Hello),
		wasmmeta.Meta{Exports: []wasmmeta.Export{{Name: "_start", Kind: "function"}}})
	require.NoError(t, err)
	_, err = a.st.DB().Exec(`UPDATE tiers SET max_concurrent_runs = 0, runs_per_minute = 0, runs_per_day = 0 WHERE name = 'free'`)
	require.NoError(t, err)
	var jobs []map[string]any
	for i := range 60 {
		jobs = append(jobs, map[string]any{"module_id": m.ID.String(), "webhook_url": fmt.Sprintf("https://h%d.example/hook/%d", i%6, i)})
	}
	body, err := json.Marshal(map[string]any{"jobs": jobs})
	require.NoError(t, err)
	status, out := a.post(t, "/v1/jobs/batch", "application/json", body)
	require.Equal(t, http.StatusCreated, status, "%v", out)
	for i, item := range out["data"].([]any) {
		require.Contains(t, item.(map[string]any), "job", "job %d: %v", i, item)
	}
	for i := range 6 {
		require.Equal(t, 1, lookups(fmt.Sprintf("h%d.example", i)), "h%d.example is resolved once for its ten jobs", i)
	}
}
