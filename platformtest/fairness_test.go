package platformtest

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/shared/config"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// With a thousand free jobs queued ahead of it, a pro job starts long before
// the free queue drains: jobs wait in one queue per tier, weighted by the
// tier's queue_weight (pro 6, free 1).
func TestProJobsAreNotStarvedByAFreeFlood(t *testing.T) {
	t.Parallel()
	p := startPlatformN(t, func(*config.Common) {}, 1)
	free, pro := p.account("free"), p.account("pro")
	freeMod, proMod := p.upload(free, fixtures.CPULoop), p.upload(pro, fixtures.Hello)

	const flood = 1000
	for i := 0; i < flood; i += 100 {
		batch := make([]any, 100)
		for j := range batch {
			batch[j] = map[string]any{"module_id": freeMod, "args": []string{"20000000"}} // ≈ 25 ms each
		}
		res := p.postJSON("/v1/jobs/batch", free, map[string]any{"jobs": batch})
		require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	}
	res := p.postJSON("/v1/jobs?wait=60s", pro, map[string]any{"module_id": proMod})
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	proJob := decode[client.Job](t, res)
	require.Equal(t, "succeeded", proJob.Status)
	require.NotNil(t, proJob.StartedAt)
	proStarted := *proJob.StartedAt

	st, err := store.Open(context.Background(), p.common.DatabaseURL, 2)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	var startedBefore int
	require.NoError(t, st.DB().Get(&startedBefore,
		`SELECT count(*) FROM jobs WHERE module_id = $1 AND started_at IS NOT NULL AND started_at < $2`, freeMod, proStarted))
	t.Logf("free jobs started before the pro job: %d of %d", startedBefore, flood)
	require.Less(t, startedBefore, flood/2, "the pro job did not wait for the free flood")
}

// Within one tier, a job of an account with nothing running starts before
// the backlog of another account of the same tier drains: a delivery runs
// the oldest queued job of the tier's account with the fewest running jobs,
// not the job it was queued for.
func TestOneTenantsBacklogDoesNotHoldBackAnother(t *testing.T) {
	t.Parallel()
	p := startPlatformN(t, func(*config.Common) {}, 1)
	flooder, victim := p.account("pro"), p.account("pro")
	floodMod, victimMod := p.upload(flooder, fixtures.CPULoop), p.upload(victim, fixtures.Hello)

	// Jobs long enough that their doorbell entries are stale by the time
	// the worker is free again (the doorbell hands out the latest pro
	// entry first, which would favour the victim whatever the claim does).
	const flood = 8
	batch := make([]any, flood)
	for j := range batch {
		batch[j] = map[string]any{"module_id": floodMod, "args": []string{"2000000000"}, "timeout_ms": 30000} // seconds each
	}
	res := p.postJSON("/v1/jobs/batch", flooder, map[string]any{"jobs": batch})
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	res = p.postJSON("/v1/jobs?wait=60s", victim, map[string]any{"module_id": victimMod})
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	job := decode[client.Job](t, res)
	require.Equal(t, "succeeded", job.Status)
	require.NotNil(t, job.StartedAt)
	started := *job.StartedAt

	st, err := store.Open(context.Background(), p.common.DatabaseURL, 2)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	var startedBefore int
	require.NoError(t, st.DB().Get(&startedBefore,
		`SELECT count(*) FROM jobs WHERE module_id = $1 AND started_at IS NOT NULL AND started_at < $2`, floodMod, started))
	t.Logf("flood jobs started before the victim's: %d of %d", startedBefore, flood)
	require.Less(t, startedBefore, flood/2, "the victim's job waited for the other tenant's backlog")
}
