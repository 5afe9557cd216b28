package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/httpapi"
	"github.com/wasmwizard/wasmwizard/api/scaling"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/shared/webhook"
)

const (
	scalingAdminToken   = "scaling-test-admin-token"
	scalingMetricsToken = "scaling-test-metrics-token"
)

// send makes a request with an optional bearer token and returns the status
// and body.
func send(t *testing.T, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, b
}

func scalingAPI(t *testing.T, adminToken, metricsToken string) (testAPI, string) {
	t.Helper()
	var ns string
	a := newTestAPI(t, func(rdb *redis.Client, d *httpapi.Deps) {
		ns = strings.TrimSuffix(d.Queue, "jobs")
		d.Enqueuer, d.Tasks = asynq.NewClientFromRedisClient(rdb), asynq.NewInspectorFromRedisClient(rdb)
		d.AdminToken, d.MetricsToken = adminToken, metricsToken
		d.Webhooks = webhook.Policy{AllowPrivate: true}
		d.WebhookQueue = ns + "webhooks"
		d.Scaling = scaling.New(scaling.Config{Store: d.Store, Namespace: ns, TTL: -1, Slots: 5})
	})
	return a, ns
}

// GET /v1/admin/scaling counts what Postgres holds: queued and running jobs
// per tier queue (a created tier's too, idle tiers with zeros), the live
// workers' smallest concurrency as the slots, desired_workers, and pending
// webhook deliveries; /metrics exports the same figures.
func TestScalingFigures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, ns := scalingAPI(t, scalingAdminToken, scalingMetricsToken)
	actor := store.Actor{Name: "t"}

	// A created tier, and an account on it and on basic.
	status, body := send(t, http.MethodPost, a.url+"/v1/admin/tiers", scalingAdminToken, map[string]any{
		"name": "gold", "runs_per_minute": 0, "runs_per_day": 0, "max_concurrent_runs": 0,
		"default_timeout_ms": 1000, "max_timeout_ms": 1000, "default_memory_mb": 16, "max_memory_mb": 16,
		"max_module_bytes": 1 << 20, "queue_weight": 2, "reads_per_minute": 0})
	require.Equal(t, http.StatusCreated, status, "%s", body)
	// And one whose accounts run one job at a time.
	status, body = send(t, http.MethodPost, a.url+"/v1/admin/tiers", scalingAdminToken, map[string]any{
		"name": "solo", "runs_per_minute": 0, "runs_per_day": 0, "max_concurrent_runs": 1,
		"default_timeout_ms": 1000, "max_timeout_ms": 1000, "default_memory_mb": 16, "max_memory_mb": 16,
		"max_module_bytes": 1 << 20, "queue_weight": 1, "reads_per_minute": 0})
	require.Equal(t, http.StatusCreated, status, "%s", body)
	keyOn := func(tier string) string {
		acct, err := a.st.CreateAccount(ctx, actor, tier, tier)
		require.NoError(t, err)
		_, key, err := a.st.CreateKey(ctx, actor, acct.ID, "")
		require.NoError(t, err)
		return key
	}
	keys := map[string]string{"free": a.key, "basic": keyOn("basic"), "gold": keyOn("gold"), "solo": keyOn("solo")}
	submit := func(tier string, extra map[string]any) uuid.UUID {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, a.url+"/v1/modules", bytes.NewReader(fixtures.Bytes(fixtures.Hello)))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+keys[tier])
		req.Header.Set("Content-Type", "application/wasm")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var mod struct{ ID string }
		require.NoError(t, json.NewDecoder(res.Body).Decode(&mod))
		_ = res.Body.Close()
		job := map[string]any{"module_id": mod.ID}
		for k, v := range extra {
			job[k] = v
		}
		status, body := send(t, http.MethodPost, a.url+"/v1/jobs", keys[tier], job)
		require.Equal(t, http.StatusCreated, status, "%s", body)
		var j struct{ ID uuid.UUID }
		require.NoError(t, json.Unmarshal(body, &j))
		return j.ID
	}
	for range 3 {
		submit("free", nil)
	}
	_, err := a.st.ClaimJob(ctx, submit("free", nil), "w1")
	require.NoError(t, err)
	submit("basic", nil)
	submit("basic", nil)
	_, err = a.st.ClaimJob(ctx, submit("gold", nil), "w2")
	require.NoError(t, err)
	// An account at its limit: its queued jobs wait for its running one,
	// not for a worker, and are not counted.
	_, err = a.st.ClaimJob(ctx, submit("solo", nil), "w1")
	require.NoError(t, err)
	submit("solo", nil)
	submit("solo", nil)
	// A finished job counts nowhere; its webhook delivery is pending.
	hooked := submit("gold", map[string]any{"webhook_url": "https://127.0.0.1:9/hook"})
	j, err := a.st.ClaimJob(ctx, hooked, "w2")
	require.NoError(t, err)
	zero := 0
	ok, err := a.st.FinishJob(ctx, j.ID, j.Attempts, "w2", jobstate.Outcome{Status: jobstate.Succeeded, ExitCode: &zero})
	require.NoError(t, err)
	require.True(t, ok)

	// Before any worker reports, the configured slots apply.
	f := getScaling(t, a.url, scalingMetricsToken)
	require.Equal(t, scaling.SlotsFromConfig, f.SlotsSource)
	require.Equal(t, 5, f.SlotsPerWorker)
	require.Equal(t, int64(2), f.DesiredWorkers) // ceil(8/5)

	// Live workers report 3 and 4 slots; a stopped one with 1 is ignored.
	for id, n := range map[string]int{"w1": 3, "w2": 4, "w3": 1} {
		require.NoError(t, a.st.Heartbeat(ctx, store.WorkerInfo{ID: id, Concurrency: n}))
	}
	require.NoError(t, a.st.StopWorker(ctx, "w3"))
	f = getScaling(t, a.url, scalingAdminToken)
	require.Equal(t, int64(5), f.Queued)
	require.Equal(t, int64(3), f.Running)
	require.Equal(t, 3, f.SlotsPerWorker)
	require.Equal(t, scaling.SlotsFromWorkers, f.SlotsSource)
	require.Equal(t, 2, f.LiveWorkers)
	require.Equal(t, int64(3), f.DesiredWorkers) // ceil(8/3)
	require.Equal(t, int64(1), f.WebhookDeliveriesPending)
	require.Equal(t, map[string]scaling.QueueFigures{
		ns + "jobs:free":  {Queued: 3, Running: 1},
		ns + "jobs:basic": {Queued: 2},
		ns + "jobs:pro":   {},
		ns + "jobs:gold":  {Queued: 0, Running: 1},
		ns + "jobs:solo":  {Queued: 0, Running: 1},
	}, f.ByQueue)

	// The same figures are wasmwizard_jobs{state,queue} on /metrics.
	status, body = send(t, http.MethodGet, a.url+"/metrics", scalingMetricsToken, nil)
	require.Equal(t, http.StatusOK, status)
	for _, line := range []string{
		`wasmwizard_jobs{queue="` + ns + `jobs:free",state="queued"} 3`,
		`wasmwizard_jobs{queue="` + ns + `jobs:free",state="running"} 1`,
		`wasmwizard_jobs{queue="` + ns + `jobs:gold",state="running"} 1`,
		`wasmwizard_jobs{queue="` + ns + `jobs:pro",state="queued"} 0`,
	} {
		require.Contains(t, string(body), line)
	}
}

func getScaling(t *testing.T, url, token string) scaling.Figures {
	t.Helper()
	status, body := send(t, http.MethodGet, url+"/v1/admin/scaling", token, nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
	var f scaling.Figures
	require.NoError(t, json.Unmarshal(body, &f))
	return f
}

// Who may read what: the metrics token reads the scaling figures and
// /metrics, and is refused (403) on every other admin route; a missing or
// wrong token, or an API key, is 401; with no token configured the route
// does not exist; with only the metrics token it does, and /metrics is
// open without a metrics token.
func TestScalingAuth(t *testing.T) {
	t.Parallel()
	problemCode := func(body []byte) string {
		var p struct{ Code string }
		_ = json.Unmarshal(body, &p)
		return p.Code
	}
	t.Run("both tokens", func(t *testing.T) {
		t.Parallel()
		a, _ := scalingAPI(t, scalingAdminToken, scalingMetricsToken)
		for _, c := range []struct {
			path, token string
			want        int
			code        string
		}{
			{"/v1/admin/scaling", scalingMetricsToken, http.StatusOK, ""},
			{"/v1/admin/scaling", scalingAdminToken, http.StatusOK, ""},
			{"/v1/admin/scaling", "", http.StatusUnauthorized, "unauthorized"},
			{"/v1/admin/scaling", "wrong-token-of-some-length", http.StatusUnauthorized, "unauthorized"},
			{"/v1/admin/scaling", a.key, http.StatusUnauthorized, "unauthorized"},
			{"/v1/admin/tiers", scalingMetricsToken, http.StatusForbidden, "forbidden"},
			{"/v1/admin/accounts", scalingMetricsToken, http.StatusForbidden, "forbidden"},
			{"/v1/admin/audit", scalingMetricsToken, http.StatusForbidden, "forbidden"},
			{"/v1/admin/tiers", scalingAdminToken, http.StatusOK, ""},
			{"/v1/account", scalingMetricsToken, http.StatusUnauthorized, "unauthorized"},
			{"/metrics", scalingMetricsToken, http.StatusOK, ""},
			{"/metrics", scalingAdminToken, http.StatusOK, ""},
			{"/metrics", "", http.StatusUnauthorized, "unauthorized"},
			{"/metrics", a.key, http.StatusUnauthorized, "unauthorized"},
		} {
			status, body := send(t, http.MethodGet, a.url+c.path, c.token, nil)
			require.Equal(t, c.want, status, "%s with %q: %s", c.path, c.token, body)
			if c.code != "" {
				require.Equal(t, c.code, problemCode(body), "%s", body)
			}
		}
		// A write with the metrics token is refused too, and changes nothing.
		status, body := send(t, http.MethodPost, a.url+"/v1/admin/accounts", scalingMetricsToken, map[string]any{"name": "x"})
		require.Equal(t, http.StatusForbidden, status, "%s", body)
		var n int
		require.NoError(t, testenvCount(a, &n, `SELECT count(*) FROM accounts WHERE name = 'x'`))
		require.Zero(t, n)
	})
	t.Run("metrics token only", func(t *testing.T) {
		t.Parallel()
		a, _ := scalingAPI(t, "", scalingMetricsToken)
		status, body := send(t, http.MethodGet, a.url+"/v1/admin/scaling", scalingMetricsToken, nil)
		require.Equal(t, http.StatusOK, status, "%s", body)
		status, _ = send(t, http.MethodGet, a.url+"/v1/admin/scaling", "", nil)
		require.Equal(t, http.StatusUnauthorized, status)
		status, body = send(t, http.MethodGet, a.url+"/v1/admin/tiers", scalingMetricsToken, nil)
		require.Equal(t, http.StatusNotFound, status, "%s", body) // admin routes are off
	})
	t.Run("admin token only", func(t *testing.T) {
		t.Parallel()
		a, _ := scalingAPI(t, scalingAdminToken, "")
		status, _ := send(t, http.MethodGet, a.url+"/v1/admin/scaling", scalingAdminToken, nil)
		require.Equal(t, http.StatusOK, status)
		status, _ = send(t, http.MethodGet, a.url+"/v1/admin/scaling", scalingMetricsToken, nil)
		require.Equal(t, http.StatusUnauthorized, status)
		status, _ = send(t, http.MethodGet, a.url+"/metrics", "", nil)
		require.Equal(t, http.StatusOK, status) // open without a metrics token
	})
	t.Run("no token", func(t *testing.T) {
		t.Parallel()
		a, _ := scalingAPI(t, "", "")
		status, body := send(t, http.MethodGet, a.url+"/v1/admin/scaling", scalingMetricsToken, nil)
		require.Equal(t, http.StatusNotFound, status, "%s", body)
		require.Equal(t, "not_found", problemCode(body))
	})
}

func testenvCount(a testAPI, n *int, q string) error {
	return a.st.DB().QueryRowContext(context.Background(), q).Scan(n)
}

// A read Postgres does not answer within its 2 s budget is 503
// unavailable (the autoscaler's fallback takes over), not stale figures
// and not a hang.
func TestScalingUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, _ := scalingAPI(t, scalingAdminToken, scalingMetricsToken)
	getScaling(t, a.url, scalingMetricsToken)
	// Another session holds an exclusive lock on tiers: the read waits.
	conn, err := a.st.DB().Conn(ctx)
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	tx, err := conn.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	_, err = tx.ExecContext(ctx, `LOCK TABLE tiers IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	status, body := send(t, http.MethodGet, a.url+"/v1/admin/scaling", scalingMetricsToken, nil)
	require.Equal(t, http.StatusServiceUnavailable, status, "%s", body)
	require.Contains(t, string(body), `"code":"unavailable"`)
	require.NoError(t, tx.Rollback())
	getScaling(t, a.url, scalingMetricsToken)
}

// The cache reads Postgres at most once per TTL: figures read a moment ago
// are reused, and read again once the TTL has passed.
func TestScalingCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testenv.Store(t)
	now := time.Unix(1_800_000_000, 0)
	c := scaling.New(scaling.Config{Store: st, TTL: time.Second, Now: func() time.Time { return now }})
	f, err := c.Figures(ctx)
	require.NoError(t, err)
	require.Equal(t, scaling.SlotsFromConfig, f.SlotsSource)
	require.NoError(t, st.Heartbeat(ctx, store.WorkerInfo{ID: "w", Concurrency: 7}))
	now = now.Add(999 * time.Millisecond)
	f, err = c.Figures(ctx)
	require.NoError(t, err)
	require.Equal(t, scaling.SlotsFromConfig, f.SlotsSource, "read again within the TTL")
	now = now.Add(time.Millisecond)
	f, err = c.Figures(ctx)
	require.NoError(t, err)
	require.Equal(t, 7, f.SlotsPerWorker)
}
