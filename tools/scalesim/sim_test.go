package scalesim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/scaling"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/tools/scalesim"
)

var (
	burst    = flag.Int("scalesim.burst", 300, "jobs in the burst (make scaling-sim: 2000)")
	sleepMS  = flag.Int("scalesim.sleep", 400, "milliseconds each job sleeps (holding a sandbox slot)")
	maxRep   = flag.Int("scalesim.max", 6, "maximum worker replicas (the chart's maxReplicaCount is for a cluster, not this machine)")
	slots    = flag.Int("scalesim.slots", 2, "WIZARD_WORKER_CONCURRENCY of each worker")
	factor   = flag.Float64("scalesim.factor", 15, "time compression: the chart's windows and periods, and the HPA's 15 s sync, are divided by this")
	svgOut   = flag.String("scalesim.svg", "", "write the timeline as an SVG to this file (docs/scaling-timeline.svg)")
	binDir   = flag.String("scalesim.bin", "", "directory holding wasmwizard-api and wasmwizard-worker (default: build them)")
	logLevel = flag.String("scalesim.loglevel", "warn", "WIZARD_LOG_LEVEL of the processes")
)

const (
	adminToken   = "scalesim-admin-token-0123456789"
	metricsToken = "scalesim-metrics-token-0123456789"
	hpaSync      = 15 * time.Second // the HPA controller's default sync period
	trickleMS    = 1500             // jobs arriving while the fleet shrinks
)

// TestScalingSimulation runs the real API and worker binaries and a
// controller that applies the Kubernetes HPA rule, with the chart's KEDA
// values, to GET /v1/admin/scaling, starting and SIGTERM-ing worker
// processes. A burst across the three default tiers and one created
// through the admin API must finish, every job exactly once, with a
// scale-up within two syncs, no job cut off by a scale-down, and a return
// to the minimum after the scale-down stabilization window.
func TestScalingSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and runs for about a minute")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	keda, err := scalesim.ChartKEDA("../../charts/wasmwizard/values.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, keda.MinReplicaCount, int32(1))
	require.Equal(t, "desired_workers", keda.ValueLocation)
	behavior := keda.Behavior.Scale(*factor)
	sync := time.Duration(float64(hpaSync) / *factor)
	hpa := scalesim.NewHPA(keda.MinReplicaCount, int32(*maxRep), keda.TargetValue, behavior)
	t.Logf("chart: min %d, target %v, fallback %d after %d failures; simulated: max %d, sync %s, scale-down window %ds, up %+v, down %+v",
		keda.MinReplicaCount, keda.TargetValue, keda.Fallback.Replicas, keda.Fallback.FailureThreshold, *maxRep, sync,
		*behavior.ScaleDown.StabilizationWindowSeconds, behavior.ScaleUp.Policies, behavior.ScaleDown.Policies)

	bins := binaries(t)
	dbURL := testenv.DB(t)
	ns := testenv.Namespace(t)
	st, err := store.Open(ctx, dbURL, 2)
	require.NoError(t, err)
	defer func() { _ = st.Close() }()
	// The simulation is about capacity, not the tiers' rate limits.
	_, err = st.DB().ExecContext(ctx, `UPDATE tiers SET runs_per_minute = 0, runs_per_day = 0, max_concurrent_runs = 0, reads_per_minute = 0`)
	require.NoError(t, err)

	scratch := t.TempDir()
	env := []string{
		"WIZARD_DATABASE_URL=" + dbURL, "WIZARD_REDIS_URL=" + testenv.RedisURL(), "WIZARD_QUEUE_NAMESPACE=" + ns,
		"WIZARD_LOG_FORMAT=json", "WIZARD_LOG_LEVEL=" + *logLevel,
		// Small pools: the Postgres of a test run is shared (at most 6 workers × 2 + 4 + 1).
		"WIZARD_DB_MAX_OPEN_CONNS=2",
		"PATH=" + os.Getenv("PATH"),
	}
	f := &fleet{t: t, st: st, bin: filepath.Join(bins, "wasmwizard-worker"), dir: scratch, env: append(append([]string{}, env...),
		fmt.Sprintf("WIZARD_WORKER_CONCURRENCY=%d", *slots), "WIZARD_WORKER_HTTP_ADDR=127.0.0.1:0",
		"WIZARD_WORKER_POLL_INTERVAL=200ms")}
	defer f.killAll()

	apiAddr := freeAddr(t)
	api := startProc(t, filepath.Join(bins, "wasmwizard-api"), filepath.Join(scratch, "api.log"), append(append([]string{}, env...),
		"WIZARD_HTTP_ADDR="+apiAddr, "WIZARD_ADMIN_TOKEN="+adminToken, "WIZARD_METRICS_TOKEN="+metricsToken,
		// A fresh read at each sync (the default 1 s would be most of one).
		"WIZARD_SCALING_CACHE_TTL=200ms", "WIZARD_DB_MAX_OPEN_CONNS=4"))
	defer api.kill()
	c := &client{base: "http://" + apiAddr, http: &http.Client{Timeout: 20 * time.Second}}
	require.NoError(t, c.waitReady(ctx, api), "the API did not become ready")

	// A tier created through the admin API: its queue must be counted and
	// served like the seeded ones.
	status, body := c.do(ctx, http.MethodPost, "/v1/admin/tiers", adminToken, "application/json", mustJSON(map[string]any{
		"name": "gold", "runs_per_minute": 0, "runs_per_day": 0, "max_concurrent_runs": 0,
		"default_timeout_ms": 5000, "max_timeout_ms": 5000, "default_memory_mb": 16, "max_memory_mb": 64,
		"max_module_bytes": 1 << 20, "queue_weight": 4, "reads_per_minute": 0}))
	require.Equal(t, http.StatusCreated, status, "%s", body)
	tiers := []string{"free", "basic", "pro", "gold"}
	keys, modules := map[string]string{}, map[string]string{}
	for _, tier := range tiers {
		acct, err := st.CreateAccount(ctx, store.Actor{Name: "scalesim"}, "sim-"+tier, tier)
		require.NoError(t, err)
		_, key, err := st.CreateKey(ctx, store.Actor{Name: "scalesim"}, acct.ID, "")
		require.NoError(t, err)
		keys[tier] = key
		status, body := c.do(ctx, http.MethodPost, "/v1/modules", key, "application/wasm", fixtures.Bytes(fixtures.Sleep))
		require.Equal(t, http.StatusCreated, status, "%s", body)
		var m struct{ ID string }
		require.NoError(t, json.Unmarshal(body, &m))
		modules[tier] = m.ID
	}

	// The fleet starts at the minimum; the controller runs from here.
	start := time.Now()
	f.scaleTo(int(keda.MinReplicaCount))
	ctl := &controller{c: c, hpa: hpa, fleet: f, keda: keda, sync: sync, start: start, replicas: keda.MinReplicaCount}
	ctlDone := make(chan struct{})
	ctlCtx, stopCtl := context.WithCancel(ctx)
	go func() { defer close(ctlDone); ctl.run(ctlCtx) }()
	defer func() { stopCtl(); <-ctlDone }()

	// Let the controller settle at the minimum for two syncs, then the burst.
	require.NoError(t, ctl.waitSyncs(ctx, 2))
	accepted := map[string]bool{}
	burstStart := time.Now()
	// Batches of at most 100 (the batch endpoint's limit), the tiers in
	// turn, every tier at least one batch.
	batch := min(100, (*burst+len(tiers)-1)/len(tiers))
	for sent := 0; sent < *burst; {
		n := min(batch, *burst-sent)
		tier := tiers[(sent/batch)%len(tiers)]
		c.submitSleeps(ctx, t, keys[tier], modules[tier], n, *sleepMS, "burst", accepted)
		sent += n
	}
	burstEnd := time.Now()
	t.Logf("burst of %d jobs over %d tiers submitted in %s", len(accepted), len(tiers), burstEnd.Sub(burstStart).Round(time.Millisecond))

	// Every job finishes.
	require.NoError(t, waitFor(ctx, 5*time.Minute, func() bool {
		var n int
		_ = st.DB().QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')`).Scan(&n)
		return n == 0
	}), "jobs still unfinished")
	allDone := time.Now()
	t.Logf("all jobs finished %s after the burst began", allDone.Sub(burstStart).Round(100*time.Millisecond))

	// The scale-down must not cut jobs off: while the fleet shrinks, keep
	// longer jobs arriving, so that the workers it SIGTERMs are running
	// some. They must finish there (or be handed back and finish once).
	trickleStart := time.Now()
	trickleFloor := keda.MinReplicaCount + 2
	for i := 0; ctl.current() > trickleFloor || ctl.peak() <= trickleFloor; i++ {
		require.Less(t, time.Since(trickleStart), 3*time.Minute, "the fleet did not shrink while the trickle ran")
		tier := tiers[i%len(tiers)]
		// slots jobs of 1.5 s per sync: about 1.5 workers' worth running.
		c.submitSleeps(ctx, t, keys[tier], modules[tier], *slots, trickleMS, "trickle", accepted)
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(sync):
		}
	}
	trickleEnd := time.Now()
	require.NoError(t, waitFor(ctx, 5*time.Minute, func() bool {
		var n int
		_ = st.DB().QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')`).Scan(&n)
		return n == 0
	}), "jobs still unfinished")
	lastDone := time.Now()
	t.Logf("trickle of %d-ms jobs for %s while the fleet shrank; %d jobs were running on workers when they got SIGTERM",
		trickleMS, trickleEnd.Sub(trickleStart).Round(100*time.Millisecond), f.runningAtTerm())

	// Back to the minimum: within the scale-down window, plus the syncs the
	// scale-down policies need from the peak, plus two.
	peak := ctl.peak()
	down := behavior.ScaleDown
	stepsNeeded := int64(0)
	for _, p := range down.Policies {
		if p.Type == "Pods" {
			steps := (int64(peak-keda.MinReplicaCount) + int64(p.Value) - 1) / int64(p.Value)
			stepsNeeded = max(stepsNeeded, steps*int64(time.Duration(p.PeriodSeconds)*time.Second/sync))
		}
	}
	windowSyncs := int64(time.Duration(*down.StabilizationWindowSeconds) * time.Second / sync)
	allowedSyncs := windowSyncs + stepsNeeded + 2
	doneSync := ctl.syncCount()
	require.NoError(t, waitFor(ctx, time.Duration(allowedSyncs+5)*sync*3, func() bool {
		return ctl.current() == keda.MinReplicaCount
	}), "replicas did not return to the minimum")
	minSync := ctl.firstSyncAtMinAfter(doneSync)
	stopCtl()
	<-ctlDone
	f.scaleTo(0)
	require.NoError(t, f.waitExited(ctx, 2*time.Minute))

	samples := ctl.samples()
	if *svgOut != "" {
		plain := make([]scalesim.Sample, len(samples))
		for i, s := range samples {
			plain[i] = s.Sample
		}
		var buf bytes.Buffer
		require.NoError(t, scalesim.WriteSVG(&buf, fmt.Sprintf("Scaling simulation: %d jobs of %d ms over 4 tiers, then %d of %d ms; %d slots per worker; time %gx",
			*burst, *sleepMS, len(accepted)-*burst, trickleMS, *slots, *factor), plain, []scalesim.Mark{
			{Seconds: burstStart.Sub(start).Seconds(), Label: "burst"},
			{Seconds: allDone.Sub(start).Seconds(), Label: "burst done"},
			{Seconds: trickleEnd.Sub(start).Seconds(), Label: "trickle ends"},
			{Seconds: lastDone.Sub(start).Seconds(), Label: "all done"},
		}))
		require.NoError(t, os.WriteFile(*svgOut, buf.Bytes(), 0o644)) //nolint:gosec // a document, world-readable
	}

	// Scale-up within two syncs of the first work.
	firstUp := -1
	firstAfterBurst := -1
	for i, s := range samples {
		if firstAfterBurst < 0 && s.at.After(burstStart) {
			firstAfterBurst = i
		}
		if firstAfterBurst >= 0 && s.Replicas > keda.MinReplicaCount {
			firstUp = i
			break
		}
	}
	require.GreaterOrEqual(t, firstUp, 0, "never scaled up")
	require.LessOrEqual(t, firstUp-firstAfterBurst+1, 2, "scale-up took more than two syncs after the burst began")

	// Never below the workers that running jobs occupy (the rule counts
	// running work; stabilization only delays a decrease).
	var maxQueuedGold int64
	for _, s := range samples {
		need := min(int32((s.Running+int64(*slots)-1)/int64(*slots)), int32(*maxRep))
		require.GreaterOrEqual(t, s.Replicas, need, "at %.1fs: %d replicas for %d running jobs", s.Seconds, s.Replicas, s.Running)
		maxQueuedGold = max(maxQueuedGold, s.gold)
	}
	require.Positive(t, maxQueuedGold, "the created tier's queue never showed work in /v1/admin/scaling")

	// Back at the minimum within the allowed syncs after all jobs finished.
	require.GreaterOrEqual(t, minSync, 0)
	require.LessOrEqual(t, int64(minSync-doneSync), allowedSyncs,
		"back to the minimum after %d syncs; the window (%d syncs) and the policies (%d syncs) allow %d", minSync-doneSync, windowSyncs, stepsNeeded, allowedSyncs)

	// Every job exactly once, none lost, none cut off by a scale-down.
	rows, err := st.DB().QueryContext(ctx, `
		SELECT j.id::text, j.status, coalesce(j.run_ms, 0),
			(SELECT count(*) FROM audit_events e WHERE e.job_id = j.id AND e.action = 'job.finished'),
			(SELECT count(*) FROM audit_events e WHERE e.job_id = j.id AND e.action = 'job.requeued')
		FROM jobs j`)
	require.NoError(t, err)
	defer func() { _ = rows.Close() }()
	seen, handedBack := 0, 0
	for rows.Next() {
		var id string
		var status jobstate.Status
		var runMS, finished, requeued int
		require.NoError(t, rows.Scan(&id, &status, &runMS, &finished, &requeued))
		require.True(t, accepted[id], "job %s exists but was not accepted", id)
		require.Equal(t, jobstate.Succeeded, status, "job %s", id)
		require.Equal(t, 1, finished, "job %s finished %d times", id, finished)
		require.GreaterOrEqual(t, runMS, *sleepMS, "job %s ran %d ms: it did not sleep", id, runMS)
		seen++
		handedBack += requeued
	}
	require.NoError(t, rows.Err())
	require.Equal(t, len(accepted), seen, "accepted jobs missing from the database")
	t.Logf("%d jobs finished once each (%d handed back by a stopping worker and run again); peak %d replicas; %d syncs; scale-up %d sync(s) after the burst; minimum again %d syncs after the last job (allowed %d)",
		seen, handedBack, peak, len(samples), firstUp-firstAfterBurst+1, minSync-doneSync, allowedSyncs)
	require.Zero(t, f.badExits(), "a worker exited uncleanly after SIGTERM (see the logs in %s)", scratch)
}

// binaries builds the API and worker binaries (or uses -scalesim.bin).
func binaries(t *testing.T) string {
	t.Helper()
	if *binDir != "" {
		return *binDir
	}
	dir := t.TempDir()
	for _, b := range []string{"api", "worker"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "wasmwizard-"+b), "./"+b) //nolint:gosec,noctx // fixed arguments
		cmd.Dir = "../.."
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go build ./%s: %s", b, out)
	}
	return dir
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProc(t *testing.T, bin, logPath string, env []string) *proc {
	t.Helper()
	logf, err := os.Create(logPath) //nolint:gosec // our own temporary directory
	require.NoError(t, err)
	cmd := exec.Command(bin, "serve") //nolint:gosec,noctx // stopped by signal
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	return p
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// fleet is the worker Deployment: replicas are processes; a scale-down
// SIGTERMs the newest, like a ReplicaSet removing its youngest pods.
type fleet struct {
	t   *testing.T
	st  *store.Store
	bin string
	dir string
	env []string

	mu          sync.Mutex
	n           int
	active      []*proc
	terminating []*proc
	atTerm      int // jobs running on workers when they got SIGTERM
}

func (f *fleet) scaleTo(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.active) < n {
		f.n++
		dataDir := filepath.Join(f.dir, fmt.Sprintf("worker-%d", f.n))
		p := startProc(f.t, f.bin, dataDir+".log", append(append([]string{}, f.env...), "WIZARD_DATA_DIR="+dataDir))
		f.active = append(f.active, p)
	}
	for len(f.active) > n {
		p := f.active[len(f.active)-1]
		f.active = f.active[:len(f.active)-1]
		var running int
		_ = f.st.DB().QueryRowContext(context.Background(), `
			SELECT count(*) FROM jobs j JOIN workers w ON w.id = j.worker_id
			WHERE j.status = 'running' AND w.pid = $1`, p.cmd.Process.Pid).Scan(&running)
		f.atTerm += running
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		f.terminating = append(f.terminating, p)
	}
}

func (f *fleet) waitExited(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	all := append([]*proc{}, f.terminating...)
	f.mu.Unlock()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for _, p := range all {
		select {
		case <-p.done:
		case <-timer.C:
			return errors.New("workers did not exit after SIGTERM")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (f *fleet) runningAtTerm() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.atTerm
}

func (f *fleet) badExits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range f.terminating {
		if p.exited() && p.err != nil {
			n++
		}
	}
	return n
}

func (f *fleet) killAll() {
	f.mu.Lock()
	all := append(append([]*proc{}, f.active...), f.terminating...)
	f.mu.Unlock()
	for _, p := range all {
		if !p.exited() {
			p.kill()
		}
	}
}

type sample struct {
	scalesim.Sample
	at   time.Time
	gold int64
}

// controller is KEDA plus the HPA: at each sync it reads the metric (KEDA's
// fallback after failureThreshold failed reads) and sets the replicas.
type controller struct {
	c     *client
	hpa   *scalesim.HPA
	fleet *fleet
	keda  scalesim.KEDA
	sync  time.Duration
	start time.Time

	mu       sync.Mutex
	replicas int32
	failures int
	hist     []sample
}

func (ctl *controller) run(ctx context.Context) {
	ticker := time.NewTicker(ctl.sync)
	defer ticker.Stop()
	for {
		ctl.once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (ctl *controller) once(ctx context.Context) {
	var f scaling.Figures
	status, body := ctl.c.do(ctx, http.MethodGet, "/v1/admin/scaling", metricsToken, "", nil)
	err := json.Unmarshal(body, &f)
	now := time.Now()
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	var value float64
	if status != http.StatusOK || err != nil {
		ctl.failures++
		if ctl.failures < ctl.keda.Fallback.FailureThreshold {
			return // the HPA keeps the replicas while KEDA reports an error
		}
		value = float64(ctl.keda.Fallback.Replicas) * ctl.keda.TargetValue
	} else {
		ctl.failures = 0
		value = float64(f.DesiredWorkers)
	}
	prev := ctl.replicas
	next := ctl.hpa.Desired(now, prev, value)
	if next != prev {
		ctl.fleet.scaleTo(int(next))
		ctl.hpa.Record(now, prev, next)
		ctl.replicas = next
	}
	var gold int64
	for q, v := range f.ByQueue {
		if strings.HasSuffix(q, "jobs:gold") {
			gold = v.Queued + v.Running
		}
	}
	ctl.hist = append(ctl.hist, sample{Sample: scalesim.Sample{Seconds: now.Sub(ctl.start).Seconds(), Replicas: next,
		Desired: f.DesiredWorkers, Queued: f.Queued, Running: f.Running}, at: now, gold: gold})
}

func (ctl *controller) waitSyncs(ctx context.Context, n int) error {
	first := ctl.syncCount()
	return waitFor(ctx, time.Duration(n+3)*ctl.sync*3, func() bool { return ctl.syncCount() >= first+n })
}

func (ctl *controller) syncCount() int {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	return len(ctl.hist)
}

func (ctl *controller) current() int32 {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	return ctl.replicas
}

func (ctl *controller) peak() int32 {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	var p int32
	for _, s := range ctl.hist {
		p = max(p, s.Replicas)
	}
	return p
}

// firstSyncAtMinAfter is the index of the first sync at or after i that
// left the replicas at the minimum (-1: none).
func (ctl *controller) firstSyncAtMinAfter(i int) int {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	for j := i; j < len(ctl.hist); j++ {
		if ctl.hist[j].Replicas == ctl.keda.MinReplicaCount {
			return j
		}
	}
	return -1
}

func (ctl *controller) samples() []sample {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	return append([]sample{}, ctl.hist...)
}

type client struct {
	base string
	http *http.Client
}

func (c *client) do(ctx context.Context, method, path, token, ctype string, body []byte) (int, []byte) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// submitSleeps submits, in one batch with key, n jobs that call the sleep
// fixture's sleep(ms) in module, and records the ids of the jobs accepted;
// what names the jobs in the failure message when one is refused.
func (c *client) submitSleeps(ctx context.Context, t *testing.T, key, module string, n, ms int, what string, accepted map[string]bool) {
	t.Helper()
	jobs := make([]map[string]any, n)
	for i := range jobs {
		jobs[i] = map[string]any{"module_id": module, "function": "sleep", "params": []any{ms}}
	}
	status, body := c.do(ctx, http.MethodPost, "/v1/jobs/batch", key, "application/json", mustJSON(map[string]any{"jobs": jobs}))
	require.Equal(t, http.StatusCreated, status, "%s", body)
	var res struct {
		Data []struct {
			Job *struct{ ID string } `json:"job"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &res))
	for _, d := range res.Data {
		require.NotNil(t, d.Job, "a job of the %s was refused: %s", what, body)
		accepted[d.Job.ID] = true
	}
}

func (c *client) waitReady(ctx context.Context, api *proc) error {
	return waitFor(ctx, time.Minute, func() bool {
		if api.exited() {
			return true
		}
		status, _ := c.do(ctx, http.MethodGet, "/readyz", "", "", nil)
		return status == http.StatusOK
	})
}

// waitFor checks cond every 100 ms until it holds or d passes.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return errors.New("timed out")
		case <-tick.C:
		}
	}
	return nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
