package platformtest

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/shared/config"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// For every /v1 route that takes an ID, another account's ID answers exactly
// like an ID that does not exist: 404, the same code, the same body shape,
// the same detail (but for the ID itself).
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	p := startPlatformWith(t, func(c *config.Common) { c.WebhookAllowPrivate, c.WebhookAllowHTTP = true, true })
	owner, intruder := p.account("free"), p.account("free")
	module := p.upload(owner, fixtures.Loop)
	// A queued-or-running job (cancellable) with a webhook (deliveries).
	job := p.submit(owner, map[string]any{"module_id": module, "timeout_ms": 5000, "webhook_url": "http://127.0.0.1:1/hook"})
	missing := "0190b0a0-0000-7000-8000-000000000000"

	routes := []struct{ method, path string }{
		{http.MethodGet, "/v1/modules/%s"},
		{http.MethodDelete, "/v1/modules/%s"},
		{http.MethodGet, "/v1/jobs/%s"},
		{http.MethodGet, "/v1/jobs/%s/events"},
		{http.MethodGet, "/v1/jobs/%s/deliveries"},
		{http.MethodPost, "/v1/jobs/%s/deliveries/retry"},
		{http.MethodPost, "/v1/jobs/%s/cancel"},
	}
	shape := func(res response, id string) (int, string, string, []string) {
		keys := slices.Sorted(maps.Keys(members(t, res.Body)))
		// Only the members compared are decoded, so that a body of
		// another shape (a job, if the route answered one) fails on its
		// status below rather than here.
		body := decode[struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
		}](t, res)
		return res.Status, body.Code, strings.ReplaceAll(body.Detail, id, "<id>"), keys
	}
	for _, r := range routes {
		id := job
		if strings.HasPrefix(r.path, "/v1/modules") {
			id = module
		}
		theirs := p.do(r.method, strings.Replace(r.path, "%s", id, 1), intruder, "application/json", nil)
		nobodys := p.do(r.method, strings.Replace(r.path, "%s", missing, 1), intruder, "application/json", nil)
		s1, c1, d1, k1 := shape(theirs, id)
		s2, c2, d2, k2 := shape(nobodys, missing)
		require.Equal(t, http.StatusNotFound, s1, "%s %s: %s", r.method, r.path, theirs.Body)
		require.Equal(t, s2, s1, r.path)
		require.Equal(t, c2, c1, r.path)
		require.Equal(t, d2, d1, r.path)
		require.Equal(t, k2, k1, r.path)
	}
	// IDs in bodies and filters.
	res := p.postJSON("/v1/jobs", intruder, map[string]any{"module_id": module})
	require.Equal(t, http.StatusNotFound, res.Status)
	res = p.do(http.MethodGet, "/v1/jobs?module_id="+module, intruder, "", nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.Empty(t, decode[client.Page[client.Job]](t, res).Data)

	// The owner's job and module are untouched by all of that.
	res = p.do(http.MethodGet, "/v1/jobs/"+job, owner, "", nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.NotEqual(t, "cancelled", decode[client.Job](t, res).Status)
	require.Equal(t, http.StatusOK, p.do(http.MethodGet, "/v1/modules/"+module, owner, "", nil).Status)
}
