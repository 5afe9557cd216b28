package platformtest

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/shared/config"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// With a thousand free jobs queued ahead of it, a pro job starts long before
// the free queue drains: jobs wait in one queue per tier, weighted by the
// tier's queue_weight (pro 6, free 1).
func TestProJobsAreNotStarvedByAFreeFlood(t *testing.T) {
	t.Parallel()
	c := startContest(t, "free", "pro")

	const flood = 1000
	for i := 0; i < flood; i += 100 {
		c.flood(100, map[string]any{"module_id": c.floodMod, "args": []string{"20000000"}}) // ≈ 25 ms each
	}
	startedBefore := c.startedBefore()
	t.Logf("free jobs started before the pro job: %d of %d", startedBefore, flood)
	require.Less(t, startedBefore, flood/2, "the pro job did not wait for the free flood")
}

// Within one tier, a job of an account with nothing running starts before
// the backlog of another account of the same tier drains: a delivery runs
// the oldest queued job of the tier's account with the fewest running jobs,
// not the job it was queued for.
func TestOneTenantsBacklogDoesNotHoldBackAnother(t *testing.T) {
	t.Parallel()
	c := startContest(t, "pro", "pro")

	// Jobs long enough that their doorbell entries are stale by the time
	// the worker is free again (the doorbell hands out the latest pro
	// entry first, which would favour the victim whatever the claim does).
	const flood = 8
	c.flood(flood, map[string]any{"module_id": c.floodMod, "args": []string{"2000000000"}, "timeout_ms": 30000}) // seconds each
	startedBefore := c.startedBefore()
	t.Logf("flood jobs started before the victim's: %d of %d", startedBefore, flood)
	require.Less(t, startedBefore, flood/2, "the victim's job waited for the other tenant's backlog")
}

// contest is a platform whose worker runs one job at a time, and two
// accounts on it: the flooder's with the CPU loop module, the other's with
// hello.
type contest struct {
	*platform
	flooder, floodMod string
	other, otherMod   string
}

func startContest(t *testing.T, floodTier, otherTier string) contest {
	t.Helper()
	c := contest{platform: startPlatformN(t, func(*config.Common) {}, 1)}
	c.flooder, c.other = c.account(floodTier), c.account(otherTier)
	c.floodMod, c.otherMod = c.upload(c.flooder, fixtures.CPULoop), c.upload(c.other, fixtures.Hello)
	return c
}

// startedBefore runs a job of the other account's module, waiting up to a
// minute, requires it to succeed, and returns how many of the flooder's jobs
// started before it.
func (c contest) startedBefore() int {
	c.t.Helper()
	res := c.postJSON("/v1/jobs?wait=60s", c.other, map[string]any{"module_id": c.otherMod})
	require.Equal(c.t, http.StatusCreated, res.Status, "%s", res.Body)
	job := decode[client.Job](c.t, res)
	require.Equal(c.t, "succeeded", job.Status)
	require.NotNil(c.t, job.StartedAt)
	var n int
	require.NoError(c.t, c.storeOf().DB().Get(&n,
		`SELECT count(*) FROM jobs WHERE module_id = $1 AND started_at IS NOT NULL AND started_at < $2`, c.floodMod, *job.StartedAt))
	return n
}

// flood queues n copies of job for the flooder in one batch.
func (c contest) flood(n int, job map[string]any) {
	c.t.Helper()
	batch := make([]any, n)
	for j := range batch {
		batch[j] = job
	}
	res := c.postJSON("/v1/jobs/batch", c.flooder, map[string]any{"jobs": batch})
	require.Equal(c.t, http.StatusCreated, res.Status, "%s", res.Body)
}
