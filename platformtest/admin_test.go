package platformtest

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/shared/config"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// tierAnswer is a tier as the admin API answers it: the fields these
// tests read.
type tierAnswer struct {
	Name             string `json:"name"`
	MaxTimeoutMS     int    `json:"max_timeout_ms"`
	MaxMemoryMB      int    `json:"max_memory_mb"`
	MaxInputBytes    int64  `json:"max_input_bytes"`
	MaxFSBytes       int64  `json:"max_fs_bytes"`
	MaxArtifactBytes int64  `json:"max_artifact_bytes"`
	MaxAssetBytes    int64  `json:"max_asset_bytes"`
}

func TestAdminTiers(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	replica := p.another(adminToken)

	res := p.do(http.MethodGet, "/v1/admin/tiers", adminToken, "", nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.Len(t, decode[client.Page[tierAnswer]](t, res).Data, 3)

	tier := map[string]any{"name": "enterprise", "runs_per_minute": 1000, "runs_per_day": 100000, "max_concurrent_runs": 200,
		"default_timeout_ms": 5000, "max_timeout_ms": 60000, "default_memory_mb": 128, "max_memory_mb": 1024,
		"max_module_bytes": 100 << 20, "queue_weight": 8, "reads_per_minute": 10000}
	res = p.postJSON("/v1/admin/tiers", adminToken, tier)
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	require.Equal(t, "enterprise", decode[tierAnswer](t, res).Name)
	res = p.postJSON("/v1/admin/tiers", adminToken, tier)
	require.Equal(t, http.StatusConflict, res.Status)

	bad := map[string]any{}
	for k, v := range tier {
		bad[k] = v
	}
	bad["name"], bad["max_timeout_ms"] = "broken", 10
	res = p.postJSON("/v1/admin/tiers", adminToken, bad)
	require.Equal(t, http.StatusBadRequest, res.Status)
	require.Contains(t, string(res.Body), "max_timeout_ms")
	res = p.postJSON("/v1/admin/tiers", adminToken, map[string]any{"name": "partial"})
	require.Equal(t, http.StatusBadRequest, res.Status)

	// A tier change takes effect on every replica within the auth cache's
	// lifetime (WIZARD_AUTH_CACHE_TTL, at most 5 s): free allows 5 s.
	key := p.account("free")
	mod := p.upload(key, fixtures.Hello)
	job := map[string]any{"module_id": mod, "timeout_ms": 8000}
	require.Equal(t, http.StatusBadRequest, replica.postJSON("/v1/jobs", key, job).Status)
	res = p.do(http.MethodPatch, "/v1/admin/tiers/free", adminToken, "application/json", []byte(`{"max_timeout_ms": 10000}`))
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	changed := decode[tierAnswer](t, res)
	require.Equal(t, 10000, changed.MaxTimeoutMS)
	require.Equal(t, 128, changed.MaxMemoryMB, "other fields are kept")
	require.Equal(t, http.StatusCreated, p.postJSON("/v1/jobs", key, job).Status, "at once on the replica that changed it")
	require.Eventually(t, func() bool { return replica.postJSON("/v1/jobs", key, job).Status == http.StatusCreated },
		5*time.Second, 50*time.Millisecond, "within 5 s on every other replica")

	res = p.do(http.MethodPatch, "/v1/admin/tiers/nope", adminToken, "application/json", []byte(`{"queue_weight": 2}`))
	require.Equal(t, http.StatusNotFound, res.Status)
	res = p.do(http.MethodPatch, "/v1/admin/tiers/free", adminToken, "application/json", []byte(`{"name": "gratis"}`))
	require.Equal(t, http.StatusBadRequest, res.Status)
	res = p.do(http.MethodPatch, "/v1/admin/tiers/free", adminToken, "application/json", []byte(`{"default_timeout_ms": 20000}`))
	require.Equal(t, http.StatusBadRequest, res.Status, "default above max")
}

func TestAdminAccountsAndKeys(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	replica := p.another(adminToken)

	res := p.postJSON("/v1/admin/accounts", adminToken, map[string]string{"name": "acme", "tier": "free"})
	require.Equal(t, http.StatusCreated, res.Status)
	acct := decode[client.AdminAccount](t, res)
	id := acct.ID
	res = p.postJSON("/v1/admin/accounts/"+id+"/keys", adminToken, map[string]string{"name": "ci"})
	require.Equal(t, http.StatusCreated, res.Status)
	k := decode[client.Key](t, res)
	key, keyID := k.Key, k.ID

	// The caller's own account.
	res = p.do(http.MethodGet, "/v1/account", key, "", nil)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	me := decode[client.Account](t, res)
	require.Equal(t, id, me.ID)
	require.Equal(t, "free", me.Tier)
	require.Equal(t, acct.WebhookSecret, me.WebhookSecret)
	require.EqualValues(t, 128, me.Limits["max_memory_mb"])
	p.run(key, fixtures.Hello, nil)
	res = p.do(http.MethodGet, "/v1/account", key, "", nil)
	require.EqualValues(t, 1, decode[client.Account](t, res).Usage.RunsToday)

	// A key cannot change its own tier or mint keys.
	require.Contains(t, []int{http.StatusNotFound, http.StatusMethodNotAllowed},
		p.do(http.MethodPatch, "/v1/account", key, "application/json", []byte(`{"tier":"pro"}`)).Status, "no route changes one's own tier")
	require.Equal(t, http.StatusUnauthorized, p.postJSON("/v1/admin/accounts/"+id+"/keys", key, map[string]string{}).Status)
	require.Equal(t, http.StatusUnauthorized, p.do(http.MethodPatch, "/v1/admin/accounts/"+id, key, "application/json", []byte(`{"tier":"pro"}`)).Status)

	// The admin can.
	res = p.do(http.MethodPatch, "/v1/admin/accounts/"+id, adminToken, "application/json", []byte(`{"tier":"pro"}`))
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	require.Equal(t, "pro", decode[client.AdminAccount](t, res).Tier)
	require.Equal(t, "pro", decode[client.Account](t, p.do(http.MethodGet, "/v1/account", key, "", nil)).Tier)
	require.Eventually(t, func() bool {
		return decode[client.Account](t, replica.do(http.MethodGet, "/v1/account", key, "", nil)).Tier == "pro"
	}, 5*time.Second, 50*time.Millisecond)
	res = p.do(http.MethodPatch, "/v1/admin/accounts/"+id, adminToken, "application/json", []byte(`{"tier":"gold"}`))
	require.Equal(t, http.StatusBadRequest, res.Status)
	res = p.do(http.MethodPatch, "/v1/admin/accounts/0190b0a0-0000-7000-8000-000000000000", adminToken, "application/json", []byte(`{"tier":"pro"}`))
	require.Equal(t, http.StatusNotFound, res.Status)

	// Keys are listed without secrets.
	res = p.do(http.MethodGet, "/v1/admin/keys?account_id="+id, adminToken, "", nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.Len(t, decode[client.Page[client.Key]](t, res).Data, 1)
	require.NotContains(t, string(res.Body), key)
	require.NotContains(t, string(res.Body), `"hash"`)
	// The key has been used: its use is recorded (in the background, at most
	// once a minute).
	require.Eventually(t, func() bool {
		keys := decode[client.Page[client.Key]](t, p.do(http.MethodGet, "/v1/admin/keys?account_id="+id, adminToken, "", nil)).Data
		return len(keys) == 1 && keys[0].LastUsedAt != nil
	}, 5*time.Second, 20*time.Millisecond)

	// A revoked key is refused at once on the replica that revoked it, and
	// within 5 s on every other (each caches key lookups for
	// WIZARD_AUTH_CACHE_TTL).
	require.Equal(t, http.StatusOK, replica.do(http.MethodGet, "/v1/modules", key, "", nil).Status)
	require.Equal(t, http.StatusOK, p.do(http.MethodGet, "/v1/modules", key, "", nil).Status)
	revoked := time.Now()
	require.Equal(t, http.StatusNoContent, p.do(http.MethodDelete, "/v1/admin/keys/"+keyID, adminToken, "", nil).Status)
	require.Equal(t, http.StatusUnauthorized, p.do(http.MethodGet, "/v1/modules", key, "", nil).Status)
	for replica.do(http.MethodGet, "/v1/modules", key, "", nil).Status != http.StatusUnauthorized {
		require.Less(t, time.Since(revoked), 5*time.Second, "a revoked key still works on another replica")
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, http.StatusNoContent, p.do(http.MethodDelete, "/v1/admin/keys/"+keyID, adminToken, "", nil).Status, "idempotent")
	require.Equal(t, http.StatusNotFound, p.do(http.MethodDelete, "/v1/admin/keys/0190b0a0-0000-7000-8000-000000000000", adminToken, "", nil).Status)

	// The account list pages and carries no webhook secrets.
	res = p.do(http.MethodGet, "/v1/admin/accounts?limit=1", adminToken, "", nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.Len(t, decode[client.Page[client.AdminAccount]](t, res).Data, 1)
	require.NotContains(t, string(res.Body), "whsec_")
	require.Equal(t, http.StatusOK, p.do(http.MethodGet, "/v1/admin/queues", adminToken, "", nil).Status)
}

func TestAdminAudit(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("free")
	bogus := "ww_" + strings.Repeat("Z", 32)
	require.Equal(t, http.StatusUnauthorized, p.do(http.MethodGet, "/v1/modules", bogus, "", nil).Status)
	require.Equal(t, http.StatusUnauthorized, p.do(http.MethodGet, "/v1/admin/audit", "not-the-token", "", nil).Status)
	p.run(key, fixtures.Hello, nil)

	res := p.do(http.MethodGet, "/v1/admin/audit?action=auth.failed", adminToken, "", nil)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	events := decode[client.Page[client.AuditEvent]](t, res).Data
	require.Len(t, events, 1)
	require.Equal(t, "unknown_or_revoked", events[0].Data["reason"])
	require.Equal(t, "ZZZZZZZZ", events[0].Data["key_prefix"])
	require.NotContains(t, string(res.Body), bogus, "never the key itself")

	res = p.do(http.MethodGet, "/v1/admin/audit?action=admin.auth_failed", adminToken, "", nil)
	require.Len(t, decode[client.Page[client.AuditEvent]](t, res).Data, 1)
	require.NotContains(t, string(res.Body), "not-the-token")

	// Every row exactly once, page by page.
	seen := map[int64]bool{}
	all, _ := walkPages[struct{ ID int64 }](p, "/v1/admin/audit?limit=2", adminToken)
	for _, e := range all {
		require.False(t, seen[e.ID])
		seen[e.ID] = true
	}
	// account.created, key.created, 2 auth failures, module.created, job.created/started/finished
	require.GreaterOrEqual(t, len(seen), 8)
	require.Equal(t, http.StatusBadRequest, p.do(http.MethodGet, "/v1/admin/audit?account_id=x", adminToken, "", nil).Status)
}

func TestAdminRoutesAreOffWithoutAToken(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	off := p.another("")
	res := off.postJSON("/v1/admin/accounts", "", map[string]string{"name": "x"})
	require.Equal(t, http.StatusNotFound, res.Status)
	require.Equal(t, http.StatusNotFound, off.do(http.MethodGet, "/v1/admin/tiers", adminToken, "", nil).Status)
}

func TestReadLimitAcrossReplicas(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	replica := p.another(adminToken)
	tier := map[string]any{"name": "tiny", "runs_per_minute": 2, "runs_per_day": 3, "max_concurrent_runs": 1,
		"default_timeout_ms": 1000, "max_timeout_ms": 1000, "default_memory_mb": 16, "max_memory_mb": 16,
		"max_module_bytes": 1 << 20, "queue_weight": 1, "reads_per_minute": 3}
	require.Equal(t, http.StatusCreated, p.postJSON("/v1/admin/tiers", adminToken, tier).Status)
	key := p.account("tiny")

	var remaining []string
	for i, api := range []*platform{p, replica, p} {
		res := api.do(http.MethodGet, "/v1/modules", key, "", nil)
		require.Equal(t, http.StatusOK, res.Status, "read %d", i+1)
		require.Equal(t, "3", res.Header.Get("RateLimit-Limit"))
		remaining = append(remaining, res.Header.Get("RateLimit-Remaining"))
	}
	require.Equal(t, []string{"2", "1", "0"}, remaining, "both replicas count against one limit")
	res := replica.do(http.MethodGet, "/v1/modules", key, "", nil)
	require.Equal(t, http.StatusTooManyRequests, res.Status)
	require.Equal(t, "rate_limited", decode[client.Error](t, res).Code)
	require.NotEmpty(t, res.Header.Get("Retry-After"))
	require.Equal(t, "0", res.Header.Get("RateLimit-Remaining"))
}

// startWithTier starts a platform and returns it with a key of an account
// on a new tier of the given name and limits (see tierWith).
func startWithTier(t *testing.T, name string, runsMin, runsDay, concurrent int) (*platform, string) {
	t.Helper()
	p := startPlatform(t)
	require.Equal(t, http.StatusCreated, p.postJSON("/v1/admin/tiers", adminToken, tierWith(name, runsMin, runsDay, concurrent)).Status)
	return p, p.account(name)
}

func tierWith(name string, runsMin, runsDay, concurrent int) map[string]any {
	return map[string]any{"name": name, "runs_per_minute": runsMin, "runs_per_day": runsDay, "max_concurrent_runs": concurrent,
		"default_timeout_ms": 5000, "max_timeout_ms": 5000, "default_memory_mb": 64, "max_memory_mb": 64,
		"max_module_bytes": 10 << 20, "queue_weight": 1, "reads_per_minute": 10000}
}

func TestRunLimitsAcrossReplicas(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	replica := p.another(adminToken)
	require.Equal(t, http.StatusCreated, p.postJSON("/v1/admin/tiers", adminToken, tierWith("perminute", 3, 1000, 100)).Status)
	require.Equal(t, http.StatusCreated, p.postJSON("/v1/admin/tiers", adminToken, tierWith("perday", 1000, 2, 100)).Status)

	key := p.account("perminute")
	mod := p.upload(key, fixtures.Hello)
	var remaining []string
	for _, api := range []*platform{p, replica, p} {
		res := api.postJSON("/v1/jobs", key, map[string]any{"module_id": mod})
		require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
		require.Equal(t, "3", res.Header.Get("RateLimit-Limit"))
		remaining = append(remaining, res.Header.Get("RateLimit-Remaining"))
	}
	require.Equal(t, []string{"2", "1", "0"}, remaining)
	res := replica.postJSON("/v1/jobs", key, map[string]any{"module_id": mod})
	require.Equal(t, http.StatusTooManyRequests, res.Status, "N+1 is refused on either replica")
	require.Equal(t, "rate_limited", decode[client.Error](t, res).Code)
	require.NotEmpty(t, res.Header.Get("Retry-After"))
	// A batch is admitted job by job.
	res = p.postJSON("/v1/jobs/batch", key, map[string]any{"jobs": []any{map[string]any{"module_id": mod}}})
	require.Equal(t, http.StatusCreated, res.Status)
	items := decode[client.Page[client.BatchItem]](t, res).Data
	require.Len(t, items, 1)
	require.NotNil(t, items[0].Error, "%s", res.Body)
	require.Equal(t, "rate_limited", items[0].Error.Code)

	daily := p.account("perday")
	mod = p.upload(daily, fixtures.Hello)
	for range 2 {
		require.Equal(t, http.StatusCreated, p.postJSON("/v1/jobs", daily, map[string]any{"module_id": mod}).Status)
	}
	res = replica.postJSON("/v1/jobs", daily, map[string]any{"module_id": mod})
	require.Equal(t, http.StatusTooManyRequests, res.Status)
	require.Equal(t, "quota_exceeded", decode[client.Error](t, res).Code)
}

// stillQueued checks, for a moment, that the job stays queued.
func (p *platform) stillQueued(key, id string) {
	p.t.Helper()
	require.Never(p.t, func() bool { return p.job(key, id).Status != "queued" },
		500*time.Millisecond, 20*time.Millisecond, "job %s started past its account's concurrency limit", id)
}

// The concurrency limit bounds the jobs that run at once: a submit past it
// is accepted and its job waits, queued, until a running job ends, however
// that ends (timed out, failed, succeeded, cancelled); then it starts
// without waiting for the reconciler.
func TestJobsPastTheConcurrencyLimitWaitForASlot(t *testing.T) {
	t.Parallel()
	p, key := startWithTier(t, "single", 1000, 1000, 1)
	loop, exit3, hello := p.upload(key, fixtures.Loop), p.upload(key, fixtures.Exit3), p.upload(key, fixtures.Hello)

	// Timed out, then the waiting job runs.
	id := p.submit(key, map[string]any{"module_id": loop, "timeout_ms": 1000})
	p.awaitStatus(key, id, "running")
	next := p.submit(key, map[string]any{"module_id": exit3})
	p.stillQueued(key, next)
	require.Equal(t, "timed_out", p.await(key, id).Status)
	// Failed, then succeeded.
	after := p.submit(key, map[string]any{"module_id": hello})
	require.Equal(t, "failed", p.await(key, next).Status)
	require.Equal(t, "succeeded", p.await(key, after).Status)
	// Cancelled.
	id = p.submit(key, map[string]any{"module_id": loop, "timeout_ms": 5000})
	p.awaitStatus(key, id, "running")
	next = p.submit(key, map[string]any{"module_id": hello})
	p.stillQueued(key, next)
	res := p.postJSON("/v1/jobs/"+id+"/cancel", key, nil)
	require.Contains(t, []int{http.StatusOK, http.StatusAccepted}, res.Status, "%s", res.Body)
	require.Equal(t, "cancelled", p.await(key, id).Status)
	require.Equal(t, "succeeded", p.await(key, next).Status)
}

// Simultaneous submits are all accepted, and on a worker with more slots
// than the limit, no more than the limit of the account's jobs ever run at
// once; all of them end.
func TestConcurrencyLimitHoldsUnderSimultaneousSubmits(t *testing.T) {
	t.Parallel()
	p := startPlatformN(t, func(*config.Common) {}, 5)
	require.Equal(t, http.StatusCreated, p.postJSON("/v1/admin/tiers", adminToken, tierWith("three", 100000, 100000, 3)).Status)
	key := p.account("three")
	loop := p.upload(key, fixtures.Loop)
	const n = 12
	ids := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := p.postJSON("/v1/jobs", key, map[string]any{"module_id": loop, "timeout_ms": 300})
			if res.Status != http.StatusCreated {
				t.Errorf("submit: %d %s", res.Status, res.Body)
				return
			}
			ids <- decode[client.Job](t, res).ID
		}()
	}
	wg.Wait()
	close(ids)
	require.Len(t, ids, n)
	most := 0
	require.Eventually(t, func() bool {
		res := p.do(http.MethodGet, "/v1/account", key, "", nil)
		require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
		u := decode[client.Account](t, res).Usage
		require.LessOrEqual(t, u.Running, int64(3), "running jobs of an account with a limit of 3")
		most = max(most, int(u.Running))
		return u.Running+u.Queued == 0
	}, 60*time.Second, 5*time.Millisecond)
	require.Equal(t, 3, most, "the limit is used")
	for id := range ids {
		require.Equal(t, "timed_out", p.job(key, id).Status)
	}
}
