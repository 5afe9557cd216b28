package platformtest

import (
	"bytes"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// repoRoot is the repository's top directory (tests run in their package's).
const repoRoot = ".."

// promtool finds Prometheus's promtool: $PROMTOOL, the copy scripts/promtool.sh
// installs under .cache/tools, or the PATH. make test installs it first.
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL"); p != "" {
		return p
	}
	if p, err := filepath.Abs(filepath.Join(repoRoot, ".cache", "tools", "promtool")); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("promtool")
	require.NoError(t, err, "promtool is missing: run scripts/promtool.sh (make test does)")
	return p
}

// runPromtool runs promtool with args (and stdin) and fails the test with its
// output unless it succeeds.
func runPromtool(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

func scrape(t *testing.T, url string) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	require.Equal(t, http.StatusOK, res.StatusCode)
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	require.NoError(t, err)
	return body, fams
}

// sample returns the value of the family's sample with these labels (a
// gauge, counter or untyped value) and whether there is one.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		default:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// TestMetricsExposition scrapes a real API and worker after a job ran: both
// expositions pass promtool's lint, and the metrics operators rely on are
// there with the values they should have.
func TestMetricsExposition(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("pro")
	job := p.run(key, fixtures.Hello, nil)
	require.Equal(t, "succeeded", job.Status)

	apiBody, api := scrape(t, p.baseURL+"/metrics")
	workerBody, worker := scrape(t, p.workerURL+"/metrics")
	runPromtool(t, apiBody, "check", "metrics")
	runPromtool(t, workerBody, "check", "metrics")
	checkQueriesUseExportedMetrics(t, api, worker)

	for component, fams := range map[string]map[string]*dto.MetricFamily{"api": api, "worker": worker} {
		v, ok := sample(fams, "wasmwizard_build_info", map[string]string{"component": component})
		require.True(t, ok, "%s: wasmwizard_build_info", component)
		require.InDelta(t, 1, v, 0)
		for _, dep := range []string{"postgres", "redis"} {
			v, ok = sample(fams, "wasmwizard_dependency_up", map[string]string{"dependency": dep})
			require.True(t, ok, "%s: %s up", component, dep)
			require.InDelta(t, 1, v, 0, "%s: %s up", component, dep)
		}
		_, ok = sample(fams, "wasmwizard_redis_errors_total", map[string]string{"kind": "network"})
		require.True(t, ok, "%s: redis errors", component)
		require.NotNil(t, fams["go_sql_open_connections"], "%s: the pool's stats", component)
	}

	// Every tier's queue has an age, 0 when nothing is queued.
	for _, tier := range []string{"free", "basic", "pro"} {
		v, ok := sample(api, "wasmwizard_queue_oldest_job_age_seconds", map[string]string{"queue": p.common.QueueNamespace + "jobs:" + tier})
		require.True(t, ok, "queue age of %s", tier)
		require.GreaterOrEqual(t, v, 0.0)
	}

	v, ok := sample(worker, "wasmwizard_worker_slots", nil)
	require.True(t, ok)
	require.InDelta(t, 2, v, 0, "the worker's concurrency")
	_, ok = sample(worker, "wasmwizard_worker_busy_slots", nil)
	require.True(t, ok)
	v, ok = sample(worker, "wasmwizard_jobs_finished_total", map[string]string{"status": "succeeded"})
	require.True(t, ok)
	require.InDelta(t, 1, v, 0)
	// The run-time buckets reach the largest timeout a tier may have.
	var top float64
	for _, m := range worker["wasmwizard_job_run_seconds"].GetMetric() {
		for _, b := range m.GetHistogram().GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) {
				top = max(top, b.GetUpperBound())
			}
		}
	}
	require.InDelta(t, 3600, top, 0)
	for _, kind := range []string{"reenqueued", "requeued", "failed_worker_lost", "webhook_swept"} {
		_, ok = sample(worker, "wasmwizard_reconciler_recoveries_total", map[string]string{"kind": kind})
		require.True(t, ok, kind)
	}
}

// TestQueueAgeGrowsWithAWaitingJob: with no worker, a submitted job waits,
// and its queue's age is read from Postgres.
func TestQueueAgeGrowsWithAWaitingJob(t *testing.T) {
	t.Parallel()
	p := startAPI(t, nil)
	key := p.account("basic")
	p.submit(key, map[string]any{"module_id": p.upload(key, fixtures.Hello)})
	_, api := scrape(t, p.baseURL+"/metrics")
	v, ok := sample(api, "wasmwizard_queue_oldest_job_age_seconds", map[string]string{"queue": p.common.QueueNamespace + "jobs:basic"})
	require.True(t, ok)
	require.Greater(t, v, 0.0, "the job has waited since its insert")
	v, ok = sample(api, "wasmwizard_queue_oldest_job_age_seconds", map[string]string{"queue": p.common.QueueNamespace + "jobs:pro"})
	require.True(t, ok)
	require.InDelta(t, 0, v, 0, "nothing is queued for pro")
}
