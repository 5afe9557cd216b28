// Package app wires the worker binary and serves its health and metrics
// endpoint.
//
// It wires configuration, logging, Postgres, Redis, the asynq servers of the
// job runner and of the webhook sender, the doorbell, the reconciler and the
// heartbeat. Run is what main calls; Start is what tests call.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/wasmwizard/wasmwizard/shared/boot"
	"github.com/wasmwizard/wasmwizard/shared/config"
	"github.com/wasmwizard/wasmwizard/shared/deliveryqueue"
	"github.com/wasmwizard/wasmwizard/shared/doorbell"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/livestream"
	"github.com/wasmwizard/wasmwizard/shared/redisconn"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/telemetry"
	"github.com/wasmwizard/wasmwizard/shared/webhook"
	"github.com/wasmwizard/wasmwizard/worker/delivery"
	"github.com/wasmwizard/wasmwizard/worker/executor"
	"github.com/wasmwizard/wasmwizard/worker/jobrunner"
	"github.com/wasmwizard/wasmwizard/worker/liveness"
	"github.com/wasmwizard/wasmwizard/worker/livepub"
	"github.com/wasmwizard/wasmwizard/worker/modstore"
	"github.com/wasmwizard/wasmwizard/worker/reconciler"
	"github.com/wasmwizard/wasmwizard/worker/sandbox"
	"github.com/wasmwizard/wasmwizard/worker/slots"
)

// Version is set at build time.
var Version = "dev"

const usage = `usage: wasmwizard-worker [serve]

Runs a worker: takes jobs from the queue and executes them. Configuration
comes from WIZARD_* environment variables (see docs/CONFIGURATION.md).
`

// Run is the worker binary's main: it returns the process exit code.
func Run(ctx context.Context, args []string, getenv config.Getenv, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] != "serve" {
		if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			fmt.Fprint(stdout, usage)
			return 0
		}
		fmt.Fprintf(stderr, "unknown command %q\n%s", args[0], usage)
		return 2
	}
	cfg, log, ok := boot.Setup(getenv, config.LoadWorker, stderr)
	if !ok {
		return 2
	}
	defer func() { _ = log.Sync() }()
	// Connections, sandbox pipes and module files are all descriptors.
	stopDebug, ok := boot.Prepare(ctx, cfg.PprofAddr, log)
	if !ok {
		return 1
	}
	defer stopDebug()
	w, err := Start(ctx, cfg, log)
	if err != nil {
		log.Error("worker failed to start", zap.Error(err))
		return 1
	}
	log.Info("worker started", zap.String("addr", w.Addr()), zap.Int("concurrency", cfg.Concurrency),
		zap.String("queue", w.queue), zap.Bool("tracing", cfg.Tracing.On()), zap.String("version", Version))
	<-ctx.Done()
	log.Info("shutting down", zap.Duration("grace", cfg.ShutdownTimeout))
	w.Shutdown()
	return 0
}

// Worker is a running worker.
type Worker struct {
	cfg    config.Worker
	log    *zap.Logger
	store  *store.Store
	rdb    redis.UniversalClient
	srv    *jobServer
	http   *http.Server
	ln     net.Listener
	queue  string
	hooks  *asynq.Server
	pool   *sandbox.Pool
	runner *jobrunner.Runner
	bell   *doorbell.Listener
	slots  *slots.Slots // nil without the doorbell
	beat   *liveness.Heartbeat
	ID     string

	// stopReconciler and stopSweeper stop their loops and wait for them.
	stopReconciler func()
	stopSweeper    func()
	// undo stops and closes what Start started, last first: all of it when
	// a step of Start fails, and what Shutdown's own order leaves.
	undo cleanup
}

// cleanup is a stack of functions that undo what was set up.
type cleanup []func()

func (c *cleanup) push(f func()) { *c = append(*c, f) }

// run calls the functions, last pushed first, and empties the stack.
func (c *cleanup) run() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
	*c = nil
}

// goUntil runs loop in a goroutine of its own, with a context that ends
// only when the returned stop is called (not with ctx). stop waits for loop
// to return; calling it again does nothing more.
func goUntil(ctx context.Context, loop func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		loop(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// Start connects to Postgres and Redis and starts processing jobs and
// serving health and metrics on cfg.HTTPAddr. If a step fails, what the
// steps before it started is stopped again.
func Start(ctx context.Context, cfg config.Worker, log *zap.Logger) (_ *Worker, err error) {
	// The worker holds database credentials; its sandbox children, running
	// as the same user, must not be able to read its memory or environment.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		log.Warn("could not make the worker non-dumpable", zap.Error(err))
	}
	var undo cleanup
	defer func() {
		if err != nil {
			undo.run()
		}
	}()
	st, err := store.Open(ctx, cfg.DatabaseURL, cfg.DBMaxOpenConns)
	if err != nil {
		return nil, err
	}
	undo.push(func() { _ = st.Close() })
	rdb, err := redisconn.Connect(ctx, cfg.RedisURL, log)
	if err != nil {
		return nil, err
	}
	undo.push(func() { _ = rdb.Close() })

	cacheDir := filepath.Join(cfg.DataDir, "wazero-cache")
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("WIZARD_DATA_DIR: create %s: %w", cacheDir, err)
	}

	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = config.DefaultHeartbeatInterval
	}
	if cfg.Lease <= 0 {
		cfg.Lease = config.DefaultLease
	}
	tracer, stopTracing, err := telemetry.ProviderFor(ctx, cfg.TracerProvider, cfg.Tracing, "wasmwizard-worker", Version)
	if err != nil {
		return nil, err
	}
	undo.push(func() {
		// The spans not yet exported.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stopTracing(ctx)
	})
	w := &Worker{cfg: cfg, log: log, store: st, rdb: rdb, queue: tasks.Queue(cfg.QueueNamespace), ID: workerID()}
	// The worker registers before it takes a job: every job it claims is
	// then recovered early should its heartbeat stop.
	host, _ := os.Hostname()
	info := store.WorkerInfo{ID: w.ID, Host: host, PID: os.Getpid(), Version: Version, Concurrency: cfg.Concurrency}
	w.beat = &liveness.Heartbeat{Interval: cfg.HeartbeatInterval, Lease: cfg.Lease, Log: log.Named("heartbeat"),
		Beat: func(ctx context.Context) error { return st.Heartbeat(ctx, info) }}
	if err := w.beat.Start(ctx); err != nil {
		return nil, fmt.Errorf("register the worker: %w", err)
	}
	undo.push(goUntil(ctx, w.beat.Run))
	if cfg.ModuleCacheBytes <= 0 { // a Worker built in code without config.LoadWorker
		cfg.ModuleCacheBytes = config.DefaultModuleCacheBytes
	}
	if cfg.CompileCacheBytes <= 0 {
		cfg.CompileCacheBytes = config.DefaultCompileCacheBytes
	}
	mods, err := modstore.NewBounded(filepath.Join(cfg.DataDir, "modules"), st.ModuleContent, cfg.ModuleCacheBytes)
	if err != nil {
		return nil, fmt.Errorf("WIZARD_DATA_DIR: %w", err)
	}
	// Module asset trees' tars, streamed from Postgres to disk once per
	// worker; the sandbox children parse them from there.
	assets, err := modstore.NewStreamed(filepath.Join(cfg.DataDir, "assets"), ".tar", st.WriteBlobTo, cfg.ModuleCacheBytes)
	if err != nil {
		return nil, fmt.Errorf("WIZARD_DATA_DIR: %w", err)
	}
	webhookQueue := tasks.WebhookQueue(cfg.QueueNamespace)
	deliveries := &deliveryqueue.Queue{Client: asynq.NewClientFromRedisClient(rdb), Inspector: asynq.NewInspectorFromRedisClient(rdb),
		Name: webhookQueue}
	runs := asynq.NewClientFromRedisClient(rdb)
	var bell *doorbell.Bell // rings for woken jobs, as the API does for new ones
	if !cfg.DisableDoorbell {
		bell = doorbell.NewBell(rdb, w.queue, time.Second)
	}
	deps := jobrunner.Deps{Store: st, Modules: mods, Assets: assets, WorkerID: w.ID, Log: log, Tracer: tracer,
		Wake: func(ctx context.Context, waiting store.QueuedRef, after uuid.UUID) error {
			task, err := tasks.NewWakeRun(waiting.ID, after, waiting.Queue, time.Duration(waiting.TimeoutMS)*time.Millisecond)
			if err != nil {
				return err
			}
			if _, err := runs.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
				return err
			}
			if bell != nil {
				// A hint for an idle worker (else the job starts at its
				// next poll); the task above guarantees the run.
				_ = bell.Ring(ctx, waiting.ID, 1)
			}
			return nil
		},
		Finished: func(ctx context.Context, job store.Job) {
			// The first attempt of the job's delivery, if it has a webhook
			// URL: it leaves at once.
			if err := deliveries.EnsureForJob(ctx, st, job); err != nil { // the reconciler's sweep sends it later
				log.Warn("webhook delivery not queued", zap.String("job_id", job.ID.String()), zap.Error(err))
			}
		}}
	switch cfg.Executor {
	case "inprocess":
		deps.Executor = executor.NewInProcess(cacheDir)
	default:
		w.pool, err = sandbox.New(sandbox.Config{
			Command: cfg.SandboxCommand, Size: cfg.Concurrency, CacheDir: cacheDir,
			MemoryLimitMB: cfg.SandboxMemoryMB, CompiledModules: cfg.CompiledModules, AssetCacheMB: cfg.AssetCacheMB,
			CompileTimeout: cfg.CompileTimeout, PrecompileTimeout: cfg.PrecompileTimeout, Log: log.Named("sandbox"),
		})
		if err != nil {
			return nil, err
		}
		undo.push(w.pool.Close)
		deps.Executor, deps.Compiler = w.pool, w.pool
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewDBStatsCollector(st.DB().DB, "wasmwizard"))
	telemetry.RegisterBuildInfo(reg, "worker", Version)
	telemetry.RegisterDependencies(reg, time.Second, map[string]telemetry.Ping{
		"postgres": st.Ping, "redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() }})
	rdb.AddHook(telemetry.RedisErrors(reg))
	m := newMetrics(reg)
	compiledBytes := cacheMetrics(reg, mods)
	deps.Observer = m
	if !cfg.DisableLiveOutput {
		pub := livepub.New(livepub.Config{Redis: rdb, Queue: w.queue, BufferBytes: cfg.LiveBufferBytes,
			Log: log.Named("live"), Registry: reg})
		deps.Live = func(id uuid.UUID, attempt int) (func(executor.Stream, []byte), func(jobstate.Status)) {
			run := pub.Start(id, attempt)
			return func(s executor.Stream, chunk []byte) {
				kind := livestream.Stdout
				if s == executor.StreamStderr {
					kind = livestream.Stderr
				}
				run.Output(kind, chunk)
			}, run.Finish
		}
	}

	runner := jobrunner.New(deps)
	w.runner = runner
	m.slots(reg, cfg.Concurrency, runner.Running)
	mux := asynq.NewServeMux()
	var runJobs asynq.Handler = runner
	if !cfg.DisableDoorbell {
		// asynq's deliveries and the doorbell's runs share the slots.
		w.slots = slots.New(slots.Config{Slots: cfg.Concurrency})
		w.bell = doorbell.Listen(doorbell.Config{Redis: rdb, Queue: w.queue, Slots: w.slots,
			Runner: runner, Log: log.Named("doorbell")})
		runJobs = w.slots.Track(runner)
		undo.push(func() { w.stopBell(0) })
		// The doorbell's cancel channel reaches every run of this worker
		// (Runner.Cancel), which fair claims need.
		runner.EnableFairClaims()
	}
	mux.Handle(tasks.TypeRunJob, runJobs)
	mux.HandleFunc(tasks.TypeCompileModule, runner.ProcessCompile)
	mux.HandleFunc(tasks.TypePrefetchAssets, runner.ProcessPrefetchAssets)
	queueConfig := func(queues map[string]int, health func(error)) *asynq.Server {
		return asynq.NewServerFromRedisClient(rdb, asynq.Config{
			Concurrency:         cfg.Concurrency,
			Queues:              queues,
			HealthCheckFunc:     health,
			HealthCheckInterval: cfg.HeartbeatInterval,
			TaskCheckInterval:   cfg.PollInterval,
			ShutdownTimeout:     cfg.ShutdownTimeout,
			Logger:              log.Named("asynq").Sugar(),
			LogLevel:            asynq.WarnLevel,
			// A job that failed for a platform reason is retried soon; the job
			// itself is still queued in Postgres. A job busy elsewhere is looked
			// at again every 5 s until its claim expires, without using retries.
			RetryDelayFunc: func(n int, err error, _ *asynq.Task) time.Duration {
				if errors.Is(err, store.ErrJobBusy) {
					return 5 * time.Second
				}
				if errors.Is(err, slots.ErrNoSlot) {
					return time.Second
				}
				return min(time.Duration(n+1)*time.Second, 30*time.Second)
			},
			IsFailure: func(err error) bool { return jobrunner.IsFailure(err) && !errors.Is(err, slots.ErrNoSlot) },
		})
	}
	w.srv = &jobServer{build: queueConfig, handler: mux, store: st, namespace: cfg.QueueNamespace, log: log.Named("queues")}
	if err := w.srv.start(ctx); err != nil {
		return nil, fmt.Errorf("start asynq server: %w", err)
	}
	undo.push(w.srv.shutdown)

	// Webhook deliveries on an asynq server of their own: a slow receiver
	// holds a delivery slot, never a job slot, and one account holds at
	// most WIZARD_WEBHOOK_ACCOUNT_CONCURRENCY of them across the workers.
	sender := delivery.New(delivery.Config{Store: st,
		Policy: webhook.Policy{AllowPrivate: cfg.WebhookAllowPrivate, AllowHTTP: cfg.WebhookAllowHTTP},
		Log:    log.Named("webhooks"), Obs: m, Tasks: deliveries,
		Slots:  delivery.NewAccountSlots(rdb, cfg.QueueNamespace, cfg.WebhookAccountConcurrency, delivery.SlotLease),
		Tracer: tracer,
	})
	hooks := asynq.NewServeMux()
	hooks.Handle(tasks.TypeDeliverWebhook, sender)
	w.hooks = asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:       cfg.WebhookConcurrency,
		Queues:            map[string]int{webhookQueue: 1},
		TaskCheckInterval: max(cfg.PollInterval, 100*time.Millisecond),
		ShutdownTimeout:   20 * time.Second,
		Logger:            log.Named("asynq-webhooks").Sugar(),
		LogLevel:          asynq.WarnLevel,
		RetryDelayFunc:    delivery.RetryDelay,
		IsFailure:         delivery.IsFailure,
	})
	if err := w.hooks.Start(hooks); err != nil {
		return nil, fmt.Errorf("start webhook server: %w", err)
	}
	undo.push(w.hooks.Shutdown)

	w.stopReconciler = func() {}
	if cfg.ReconcileInterval > 0 {
		rec := reconciler.New(reconciler.Config{
			Interval: cfg.ReconcileInterval, QueuedAfter: cfg.ReconcileQueuedAfter,
			RunningGrace: cfg.ReconcileRunningGrace, Lease: cfg.Lease,
			MaxAttempts: cfg.MaxAttempts, Retention: cfg.Retention,
			EnqueueDelivery: func(ctx context.Context, d store.Delivery) (bool, error) {
				// The task of an overdue delivery's next attempt: left alone
				// when it waits, replaced when asynq archived it, added when
				// lost.
				return deliveries.Ensure(ctx, d, time.Time{}, false)
			},
			DeliveryLate: cfg.WebhookSweepAfter,
			Observe:      m.ReconcilerPass,
		}, st, asynq.NewClientFromRedisClient(rdb), asynq.NewInspectorFromRedisClient(rdb), log.Named("reconciler"))
		w.stopReconciler = goUntil(ctx, rec.Run)
		undo.push(w.stopReconciler)
	}

	w.ln, err = (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("WIZARD_WORKER_HTTP_ADDR: listen on %s: %w", cfg.HTTPAddr, err)
	}
	hm := http.NewServeMux()
	hm.Handle("GET /healthz", liveness.Handler(w.checks(), log.Named("healthz")))
	hm.HandleFunc("GET /readyz", w.readyz)
	hm.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	// Its routes take no body: a request is read within 10 s, whatever it
	// announces, and idle connections go after 2 minutes, so no client
	// holds one of the worker's descriptors for long.
	w.http = &http.Server{Handler: closeOnBody(hm), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		IdleTimeout: 2 * time.Minute}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := w.http.Serve(w.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health server stopped", zap.Error(err))
		}
	}()
	undo.push(func() {
		_ = w.http.Close() // its listener too
		<-served
	})
	// The local module store and the compilation cache stay within their
	// bounds.
	w.stopSweeper = goUntil(ctx, func(ctx context.Context) {
		sweepCaches(ctx, mods, st.GoneModules, cacheDir, cfg.CompileCacheBytes, compiledBytes, log.Named("caches"))
	})
	undo.push(w.stopSweeper)
	w.undo = undo
	return w, nil
}

// checks are what /healthz answers from: the parts without which this
// process takes no jobs, or takes jobs it cannot run, and that a restart may
// mend. Unreachable dependencies are /readyz's.
func (w *Worker) checks() []liveness.Check {
	cs := []liveness.Check{
		{Name: "queue_server", Fn: func() error { return w.srv.healthy(w.cfg.Lease) }},
		{Name: "heartbeat", Fn: w.beat.Check},
	}
	if w.pool != nil {
		cs = append(cs, liveness.Check{Name: "sandbox", Fn: w.pool.Healthy})
	}
	return cs
}

// closeOnBody answers a request that announces a body with "Connection:
// close": the worker's routes read none, and net/http would otherwise wait
// for the body before answering, to reuse the connection.
func closeOnBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			rw.Header().Set("Connection", "close")
		}
		h.ServeHTTP(rw, r)
	})
}

// Addr is the address the health and metrics server listens on.
func (w *Worker) Addr() string { return w.ln.Addr().String() }

func (w *Worker) readyz(rw http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	rw.Header().Set("Content-Type", "application/json")
	if err := w.store.Ping(ctx); err != nil {
		rw.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(rw, `{"status":"unavailable","postgres":"down"}`)
		return
	}
	if err := w.rdb.Ping(ctx).Err(); err != nil {
		rw.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(rw, `{"status":"unavailable","redis":"down"}`)
		return
	}
	_, _ = io.WriteString(rw, `{"status":"ok"}`)
}

// Shutdown stops taking tasks, lets running jobs finish within the configured
// grace period (asynq hands unfinished ones back to the queue) and closes
// connections.
func (w *Worker) Shutdown() {
	w.stopSweeper()
	w.stopReconciler()
	bellDone := make(chan struct{})
	go func() { w.stopBell(w.cfg.ShutdownTimeout); close(bellDone) }()
	w.srv.shutdown()
	w.hooks.Shutdown()
	<-bellDone
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w.runner.Wait(ctx)
	// Whatever is still running under this worker's name is now abandoned:
	// the reconciler takes it back at once.
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := w.store.StopWorker(sctx, w.ID); err != nil {
		w.log.Warn("could not mark the worker stopped; its jobs, if any, are recovered once its lease runs out", zap.Error(err))
	}
	_ = w.http.Shutdown(ctx)
	// The rest, last started first: the servers above find themselves
	// stopped already; then the sandbox pool, the heartbeat, tracing, Redis
	// and Postgres.
	w.undo.run()
}

// stopBell stops the doorbell, letting its running jobs finish within grace;
// asynq's deliveries that wait for a slot are handed back.
func (w *Worker) stopBell(grace time.Duration) {
	if w.bell != nil {
		w.slots.Close()
		w.bell.Shutdown(grace)
	}
}

func workerID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

type metrics struct {
	deliveries *prometheus.CounterVec
	webhooks   *prometheus.HistogramVec
	finished   *prometheus.CounterVec
	run        *prometheus.HistogramVec
	compile    prometheus.Histogram
	recoveries *prometheus.CounterVec
	passes     *prometheus.CounterVec
}

// runBuckets are wasmwizard_job_run_seconds's buckets: from a millisecond
// up to the largest timeout a tier may have (store.MaxTimeoutMS, an hour),
// so that a percentile of long runs is never just "over the last bucket".
var runBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 2700,
	float64(store.MaxTimeoutMS) / 1000}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmwizard_job_deliveries_total",
			Help: "Deliveries of jobs to this worker by source (asynq, doorbell) and what the claim found (claimed, already_finished, busy, gone, error).",
		}, []string{"source", "outcome"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmwizard_jobs_finished_total", Help: "Jobs this worker finished, by final status and error code (sandbox_crashed, timeout, memory_limit, ...).",
		}, []string{"status", "error_code"}),
		run: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wasmwizard_job_run_seconds", Help: "Time from the start of a job's execution to its end.",
			Buckets: runBuckets,
		}, []string{"status"}),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmwizard_reconciler_recoveries_total",
			Help: "What this worker's reconciler repaired, by kind: reenqueued (a queued job's lost task), requeued (a lost worker's job queued again), failed_worker_lost (a lost worker's job out of attempts), webhook_swept (an overdue delivery queued again).",
		}, []string{"kind"}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmwizard_reconciler_passes_total",
			Help: "Reconciler passes this worker ran, by pass (full, lost_workers) and result (ok, error).",
		}, []string{"pass", "result"}),
	}
	for _, k := range []string{"reenqueued", "requeued", "failed_worker_lost", "webhook_swept"} {
		m.recoveries.WithLabelValues(k)
	}
	for _, p := range []string{"full", "lost_workers"} {
		m.passes.WithLabelValues(p, "ok")
		m.passes.WithLabelValues(p, "error")
	}
	m.compile = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "wasmwizard_module_compile_seconds", Help: "Compilations a job had to wait for (cache misses in the sandbox child).",
		Buckets: []float64{.001, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	})
	m.webhooks = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "wasmwizard_webhook_attempts_seconds", Help: "Webhook delivery attempts by outcome (delivered, pending = will retry, failed) and how long the receiver took.",
		Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 15},
	}, []string{"outcome"})
	for _, o := range []store.DeliveryStatus{store.DeliveryDelivered, store.DeliveryPending, store.DeliveryFailed} {
		m.webhooks.WithLabelValues(string(o))
	}
	reg.MustRegister(m.deliveries, m.finished, m.run, m.compile, m.webhooks, m.recoveries, m.passes)
	return m
}

// slots registers the worker's sandbox slots: how many it has and how many
// run a claimed job.
func (m *metrics) slots(reg prometheus.Registerer, total int, busy func() int) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "wasmwizard_worker_slots", Help: "Jobs this worker runs at once (WIZARD_WORKER_CONCURRENCY).",
	}, func() float64 { return float64(total) }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "wasmwizard_worker_busy_slots", Help: "Slots of this worker running a claimed job now.",
	}, func() float64 { return float64(busy()) }))
}

func (m *metrics) JobDelivered(source, outcome string) {
	m.deliveries.WithLabelValues(source, outcome).Inc()
}

func (m *metrics) JobFinished(status jobstate.Status, errorCode string, run, compile time.Duration) {
	m.finished.WithLabelValues(string(status), errorCode).Inc()
	if compile > 0 {
		m.compile.Observe(compile.Seconds())
	}
	m.run.WithLabelValues(string(status)).Observe(run.Seconds())
}

func (m *metrics) Delivered(outcome store.DeliveryStatus, d time.Duration) {
	m.webhooks.WithLabelValues(string(outcome)).Observe(d.Seconds())
}

// ReconcilerPass counts what a reconciler pass did.
func (m *metrics) ReconcilerPass(pass string, st reconciler.Stats, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.passes.WithLabelValues(pass, result).Inc()
	m.recoveries.WithLabelValues("reenqueued").Add(float64(st.Reenqueued))
	m.recoveries.WithLabelValues("requeued").Add(float64(st.Requeued))
	m.recoveries.WithLabelValues("failed_worker_lost").Add(float64(st.FailedLost))
	m.recoveries.WithLabelValues("webhook_swept").Add(float64(st.Deliveries))
}
