// Package jobrunner is the worker's asynq handler for job runs.
//
// It claims the job in Postgres, runs it through an Executor and writes the
// result with a conditional update, so a duplicate delivery never runs a
// finished job again or overwrites its result.
package jobrunner

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/telemetry"
	"github.com/wasmwizard/wasmwizard/worker/executor"
)

// writeTimeout bounds the result write, which must happen even when the
// task's context is already done.
const writeTimeout = 10 * time.Second

// Observer is told about every delivery and every finished run (metrics).
type Observer interface {
	// JobDelivered: a delivery of a job from source ("asynq" or "doorbell")
	// and what its claim found (see the Delivery* outcomes).
	JobDelivered(source, outcome string)
	JobFinished(status jobstate.Status, errorCode string, run, compile time.Duration)
}

// Outcomes of a delivery's claim, for Observer.JobDelivered.
const (
	DeliveryClaimed  = "claimed"
	DeliveryFinished = "already_finished" // a duplicate: the job ran already
	DeliveryBusy     = "busy"             // another attempt holds the job
	DeliveryAtLimit  = "at_limit"         // its account runs as many jobs as its tier allows
	DeliveryGone     = "gone"
	DeliveryError    = "error"
)

// Sources of deliveries, for Observer.JobDelivered.
const (
	SourceAsynq    = "asynq"
	SourceDoorbell = "doorbell"
)

// Modules gives the local file holding a module's bytes; the file stays
// until release is called.
type Modules interface {
	Acquire(ctx context.Context, sum []byte) (path string, release func(), err error)
}

// Compiler compiles a module ahead of its first run (the sandbox pool).
type Compiler interface {
	Compile(ctx context.Context, key, path string) error
}

// CodeResultRejected ends a job whose result the database refused (see
// run): it ran, but what it produced could not be stored.
const CodeResultRejected = "result_rejected"

// IsFailure is asynq's Config.IsFailure: a busy job is not a failure. A
// task whose job another worker holds a live claim on ends with an error
// wrapping store.ErrJobBusy; it is retried later without using up one of its
// retries.
func IsFailure(err error) bool { return !errors.Is(err, store.ErrJobBusy) }

// Runner handles tasks.TypeRunJob and tasks.TypeCompileModule.
type Runner struct {
	inflight sync.WaitGroup
	store    *store.Store
	exec     executor.Executor
	modules  Modules
	assets   Modules
	compiler Compiler
	workerID string
	log      *zap.Logger
	obs      Observer
	finished func(ctx context.Context, job store.Job)
	wake     func(ctx context.Context, waiting store.QueuedRef, after uuid.UUID) error
	output   func(jobID uuid.UUID) func(executor.Stream, []byte)
	live     func(jobID uuid.UUID, attempt int) (func(executor.Stream, []byte), func(jobstate.Status))
	tracer   trace.Tracer // nil: tracing off

	// fair: deliveries claim their queue's fairest job (EnableFairClaims).
	fair   bool
	mu     sync.Mutex
	active map[uuid.UUID]context.CancelFunc // by claimed job, for Cancel
}

// Deps is what a Runner is built from. Compiler, Observer and Finished may
// be nil.
type Deps struct {
	// Finished is called after a job's terminal result is written (the
	// worker queues its webhook delivery from here).
	Finished func(ctx context.Context, job store.Job)
	// Wake queues a delivery of job waiting, whose account's concurrency
	// slot job after gave back by finishing (see store.Finished.Waiting);
	// nil: none is queued, and the reconciler finds the job once it is
	// stale.
	Wake     func(ctx context.Context, waiting store.QueuedRef, after uuid.UUID) error
	Store    *store.Store
	Executor executor.Executor
	Modules  Modules
	// Assets gives the local file of a module asset tree's tar (by the
	// SHA-256 of the tar); nil refuses jobs whose module has assets (they
	// are handed back).
	Assets   Modules
	Compiler Compiler
	WorkerID string
	Log      *zap.Logger
	Observer Observer
	// Output, when set, is asked for each run's live-output hook
	// (executor.Request.Output): the guest's stdout and stderr as they are
	// written, in order, within the job's output limit, never after the
	// run returns. It may return nil for a job it does not want.
	Output func(jobID uuid.UUID) func(executor.Stream, []byte)
	// Live, when set, publishes each run's live output (worker/livepub):
	// it is called as the run starts with the job and its attempt, and
	// returns the run's output hook and finish, which the runner calls
	// once the run is over: with the job's terminal status once its result
	// is written, "queued" when the job is handed back, "" when neither
	// could be written. It takes precedence over Output.
	Live func(jobID uuid.UUID, attempt int) (output func(executor.Stream, []byte), finish func(status jobstate.Status))
	// Tracer makes the spans of each run (nil: none), in the trace of the
	// submit that created the job (its traceparent).
	Tracer trace.TracerProvider
}

// New returns a Runner.
func New(d Deps) *Runner {
	r := &Runner{store: d.Store, exec: d.Executor, modules: d.Modules, assets: d.Assets, compiler: d.Compiler,
		workerID: d.WorkerID, log: d.Log, obs: d.Observer, finished: d.Finished, wake: d.Wake, output: d.Output, live: d.Live,
		active: map[uuid.UUID]context.CancelFunc{}}
	if d.Tracer != nil {
		r.tracer = telemetry.Tracer(d.Tracer)
	}
	return r
}

// span starts a span when tracing is on; otherwise it returns ctx and its
// (non-recording) span, at no cost.
func (r *Runner) span(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if r.tracer == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	return r.tracer.Start(ctx, name, opts...)
}

// EnableFairClaims makes each delivery run its tier's fairest queued job
// (store.ClaimFairJob) rather than the job it names, so that one account's
// backlog does not hold back another account's jobs. It needs Cancel to be
// called for every client cancel (the doorbell's cancel channel does so):
// asynq's own cancellation only reaches the task a job came with, which may
// be another job's.
func (r *Runner) EnableFairClaims() { r.fair = true }

// Cancel interrupts the run of job id on this worker, if any, whichever
// delivery started it.
func (r *Runner) Cancel(id uuid.UUID) {
	r.mu.Lock()
	cancel := r.active[id]
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// runOfAnother is the context of a fair claim's run of another job than
// the delivering task's (delivered). A client's cancel of the delivered job
// reaches the task's context too (asynq cancels by task ID), and must not
// stop this run: when ctx ends, the run is stopped only if the delivered job
// was not the one cancelled (a shutdown, or the task's deadline). A cancel
// of the job this run claimed reaches it through Cancel.
func (r *Runner) runOfAnother(ctx context.Context, delivered uuid.UUID) (context.Context, func()) {
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopWatch := context.AfterFunc(ctx, func() {
		cctx, done := context.WithTimeout(context.Background(), writeTimeout)
		defer done()
		if requested, err := r.store.CancelRequested(cctx, delivered); err == nil && requested {
			return // meant for the delivered job, not this run
		}
		cancel()
	})
	return run, func() {
		stopWatch()
		cancel()
	}
}

// Running is how many claimed jobs this Runner is running now.
func (r *Runner) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.active)
}

// track registers the run of job id for Cancel until untrack is called.
func (r *Runner) track(ctx context.Context, id uuid.UUID) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.active[id]; dup {
		// A claim is exclusive, so this is a stale entry of an attempt
		// that is still returning; it ends with its own untrack.
		return ctx, cancel
	}
	r.active[id] = cancel
	return ctx, func() {
		r.mu.Lock()
		delete(r.active, id)
		r.mu.Unlock()
		cancel()
	}
}

// ProcessCompile handles tasks.TypeCompileModule: it brings the module into
// the local store and compiles it, so that its first run is warm. Failures
// are logged and not retried past the task's own few retries.
func (r *Runner) ProcessCompile(ctx context.Context, t *asynq.Task) error {
	sum, err := tasks.ParseCompileModule(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if r.compiler == nil {
		return nil
	}
	path, release, err := r.modules.Acquire(ctx, sum)
	if err != nil {
		return fmt.Errorf("pre-compile: %w", err)
	}
	defer release()
	if err := r.compiler.Compile(ctx, hex.EncodeToString(sum), path); err != nil {
		r.log.Info("pre-compile failed", zap.String("sha256", hex.EncodeToString(sum)), zap.Error(err))
	}
	return nil
}

// ProcessPrefetchAssets handles tasks.TypePrefetchAssets: it brings a new
// asset tree's tar onto this worker's disk, so that the module's next run
// does not fetch it. Failures are logged; a job fetches what it lacks.
func (r *Runner) ProcessPrefetchAssets(ctx context.Context, t *asynq.Task) error {
	sum, err := tasks.ParsePrefetchAssets(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if r.assets == nil {
		return nil
	}
	raw, _ := hex.DecodeString(sum) // checked by the parser
	_, release, err := r.assets.Acquire(ctx, raw)
	if err != nil {
		r.log.Info("asset prefetch failed", zap.String("sha256", sum), zap.Error(err))
		return fmt.Errorf("prefetch assets: %w", err)
	}
	release()
	return nil
}

// ProcessTask implements asynq.Handler.
func (r *Runner) ProcessTask(ctx context.Context, t *asynq.Task) error {
	r.inflight.Add(1)
	defer r.inflight.Done()
	p, err := tasks.ParseRunJob(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return r.run(ctx, p, SourceAsynq)
}

// Run runs job id taken from the doorbell; see run.
func (r *Runner) Run(ctx context.Context, id uuid.UUID) error {
	return r.run(ctx, tasks.RunJob{JobID: id}, SourceDoorbell)
}

// run runs job id: the work of a job:run delivery from source. It claims the job in Postgres first, so
// however many deliveries a job gets, one attempt runs at a time and a
// terminal job never runs again. An error wrapping store.ErrJobBusy means another
// attempt holds the job.
func (r *Runner) run(ctx context.Context, p tasks.RunJob, source string) error {
	log := r.log.With(zap.String("job_id", p.JobID.String()))
	start := time.Now()
	// The claim is not interrupted by the task's context: a claim that
	// committed while the context was cancelled (a client's cancel arrives
	// as soon as Postgres says running) must be seen, or the job would stay
	// running with nobody running it until the claim expires.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	claim := r.store.ClaimJob
	if r.fair {
		claim = r.store.ClaimFairJob
	}
	job, err := claim(cctx, p.JobID, r.workerID)
	cancel()
	claimed := time.Now()
	r.delivered(source, err)
	switch {
	case errors.Is(err, store.ErrJobTerminal):
		log.Debug("duplicate delivery of a finished job ignored")
		return nil
	case errors.Is(err, store.ErrJobGone):
		log.Info("task for a job that does not exist dropped")
		return nil
	case errors.Is(err, store.ErrJobBusy):
		// Another worker holds a live claim; try again after it expires.
		return fmt.Errorf("job %s: %w", p.JobID, store.ErrJobBusy)
	case errors.Is(err, store.ErrAccountAtLimit):
		// Nothing of the tier's can start now, and this job's account
		// runs all it may. The delivery is dropped and the job is marked
		// parked: when one of those runs ends, its worker queues a
		// delivery for a parked job (FinishRun's Waiting), and the
		// reconciler finds a job that waits longer (TouchStaleQueued).
		log.Debug("delivery dropped: the job's account is at its concurrency limit")
		return nil
	case err != nil:
		return r.giveUp(ctx, log, store.Job{ID: p.JobID}, fmt.Errorf("claim job: %w", err))
	}
	if job.ID != p.JobID {
		log = r.log.With(zap.String("job_id", job.ID.String()), zap.String("delivered_for", p.JobID.String()))
		var stop func()
		ctx, stop = r.runOfAnother(ctx, p.JobID)
		defer stop()
	}
	ctx, untrack := r.track(ctx, job.ID)
	defer untrack()
	ctx, span := r.runSpan(ctx, p, job, source, start, claimed)
	defer span.End()
	log = log.With(zap.String("account_id", job.AccountID.String()), zap.Int("attempt", job.Attempts))
	log = log.With(telemetry.LogFields(ctx)...)
	if job.CancelRequestedAt != nil {
		// Cancelled while an earlier attempt ran (and was lost): never run
		// it again.
		return r.cancelled(ctx, log, job, executor.Result{})
	}

	path, release, err := r.modules.Acquire(ctx, job.ModuleSHA256)
	if err != nil {
		return r.handBack(ctx, log, job, fmt.Errorf("load module: %w", err))
	}
	defer release()
	files, releaseFiles, err := r.files(ctx, job)
	if err != nil {
		return r.handBack(ctx, log, job, fmt.Errorf("load files: %w", err))
	}
	defer releaseFiles()
	var live func(executor.Stream, []byte)
	// liveEnd is what the run's live output ends with (see Deps.Live).
	var liveEnd jobstate.Status
	switch {
	case r.live != nil:
		var finish func(jobstate.Status)
		live, finish = r.live(job.ID, job.Attempts)
		defer func() { finish(liveEnd) }()
	case r.output != nil:
		live = r.output(job.ID)
	}
	ectx, espan := r.span(ctx, "sandbox.run")
	res, err := r.exec.Execute(ectx, executor.Request{
		ModuleKey:      hex.EncodeToString(job.ModuleSHA256),
		ModulePath:     path,
		Function:       job.Function,
		Args:           job.Args.V,
		Env:            job.Env.V,
		Stdin:          job.Stdin,
		Params:         job.Params.V,
		Timeout:        time.Duration(job.TimeoutMS) * time.Millisecond,
		MemoryLimitMB:  job.MemoryLimitMB,
		MaxOutputBytes: job.MaxOutputBytes,
		Deterministic:  job.Deterministic,
		Output:         live,
		Files:          files,
	})
	endRunSpan(espan, res, err)
	if err != nil {
		liveEnd = jobstate.Queued
		span.SetStatus(codes.Error, "execute: "+err.Error())
		return r.handBack(ctx, log, job, fmt.Errorf("execute: %w", err))
	}
	if res.Status == jobstate.Cancelled && ctx.Err() != nil {
		// Either a client cancelled the job (the API recorded it in Postgres,
		// then interrupted this task through asynq), or the worker is
		// shutting down (or asynq's deadline passed): then the run was
		// interrupted through no fault of the job's. Hand it back.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
		requested, err := r.store.CancelRequested(wctx, job.ID)
		cancel()
		if err != nil {
			log.Warn("could not tell a cancel from a shutdown; handing the job back", zap.Error(err))
		}
		if requested {
			liveEnd = jobstate.Cancelled
			return r.cancelled(ctx, log, job, res)
		}
		liveEnd = jobstate.Queued
		return r.handBack(ctx, log, job, ctx.Err())
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if err := r.saveArtifacts(wctx, job, res); err != nil {
		// The result stays unwritten: the attempt runs again once its
		// claim expires, like a lost result write.
		log.Error("could not store the job's artifacts", zap.Error(err))
		return fmt.Errorf("save artifacts: %w", err)
	}
	rctx, rspan := r.span(wctx, "job.result")
	fin, err := r.store.FinishRun(rctx, job.ID, job.Attempts, r.workerID, res.Outcome)
	if err != nil && store.Rejected(err) {
		// Postgres refuses this result's data: writing it again cannot
		// succeed, and leaving the job running would only run it again
		// until the reconciler gives up on it (worker_lost). End it failed
		// with a result that says so.
		log.Error("the job's result was refused by the database; the job ends failed with result_rejected",
			zap.String("status", string(res.Status)), zap.String("error_code", res.ErrorCode), zap.Error(err))
		res = executor.Result{Outcome: jobstate.Outcome{Status: jobstate.Failed, ErrorCode: CodeResultRejected,
			ErrorMessage:    fmt.Sprintf("the job ended (%s %s) but the platform could not store its result", res.Status, res.ErrorCode),
			MemoryPeakBytes: res.MemoryPeakBytes, RunTime: res.RunTime}, CompileTime: res.CompileTime}
		fin, err = r.store.FinishRun(rctx, job.ID, job.Attempts, r.workerID, res.Outcome)
	}
	ok := fin.Done
	if err != nil {
		rspan.SetStatus(codes.Error, err.Error())
	}
	rspan.SetAttributes(attribute.Bool("written", ok))
	rspan.End()
	span.SetAttributes(attribute.String("status", string(res.Status)), attribute.String("error_code", res.ErrorCode))
	if err != nil {
		span.SetStatus(codes.Error, "write result: "+err.Error())
		// The result is lost with this attempt; the job is still running in
		// Postgres and the retry takes it over once the claim expires.
		log.Error("could not write the job's result; it runs again once its claim expires", zap.Error(err))
		return fmt.Errorf("write result: %w", err)
	}
	if !ok {
		log.Info("result discarded: the job left this attempt meanwhile")
		return nil
	}
	liveEnd = res.Status
	r.wakeWaiting(wctx, log, job, fin)
	if r.finished != nil {
		r.finished(wctx, job)
	}
	if r.obs != nil {
		r.obs.JobFinished(res.Status, res.ErrorCode, res.RunTime, res.CompileTime)
	}
	log.Info("job finished", zap.String("status", string(res.Status)), zap.String("error_code", res.ErrorCode),
		zap.Duration("run", res.RunTime))
	return nil
}

// files gathers the job's filesystem: its input files (one query, only for
// a job that has some), its module's asset trees (their tars on local disk,
// held until release) and its preopens, collect patterns and limits.
func (r *Runner) files(ctx context.Context, job store.Job) (*executor.Files, func(), error) {
	f := &executor.Files{Preopens: job.Preopens, Collect: job.Collect, MaxFSBytes: job.MaxFSBytes,
		MaxArtifactBytes: job.MaxArtifactBytes}
	var releases []func()
	release := func() {
		for _, rel := range releases {
			rel()
		}
	}
	if job.InputCount > 0 {
		in, err := r.store.JobInputs(ctx, job.ID)
		if err != nil {
			return nil, release, err
		}
		for _, i := range in {
			f.Inputs = append(f.Inputs, executor.Input{Path: i.Path, Mode: i.Mode, Content: i.Content})
		}
	}
	if job.AssetCount > 0 {
		assets, err := r.store.ModuleAssets(ctx, job.ModuleID)
		if err != nil {
			return nil, release, err
		}
		if len(assets) > 0 && r.assets == nil {
			return nil, release, errors.New("this worker has no asset store")
		}
		for _, a := range assets {
			sum, err := hex.DecodeString(a.SHA256)
			if err != nil {
				return nil, release, fmt.Errorf("asset %s: %w", a.Mount, err)
			}
			path, rel, err := r.assets.Acquire(ctx, sum)
			if err != nil {
				return nil, release, fmt.Errorf("asset %s: %w", a.Mount, err)
			}
			releases = append(releases, rel)
			f.Assets = append(f.Assets, executor.Asset{Mount: a.Mount, SHA256: a.SHA256, TarPath: path})
		}
	}
	return f, release, nil
}

// saveArtifacts stores the run's artifacts before its result is written.
func (r *Runner) saveArtifacts(ctx context.Context, job store.Job, res executor.Result) error {
	if len(res.Artifacts) == 0 {
		return nil
	}
	files := make([]store.ArtifactFile, 0, len(res.Artifacts))
	for _, a := range res.Artifacts {
		files = append(files, store.ArtifactFile{Path: a.Path, Content: a.Content})
	}
	return r.store.SaveArtifacts(ctx, job.ID, files)
}

// runSpan starts the span of a claimed job's run ("job.run", from the
// delivery's start, with the claim as its first child) in the trace of the
// submit that created the job: the traceparent stored on the job, or the
// delivering task's when the job has none. A delivery whose fair claim ran
// another job links to its own job's trace.
func (r *Runner) runSpan(ctx context.Context, p tasks.RunJob, job store.Job, source string, start, claimed time.Time) (context.Context, trace.Span) {
	if r.tracer == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	tp := ""
	if job.Traceparent != nil {
		tp = *job.Traceparent
	} else if job.ID == p.JobID {
		tp = p.Traceparent
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(start),
		trace.WithAttributes(attribute.String("job_id", job.ID.String()), attribute.String("account_id", job.AccountID.String()),
			attribute.String("queue", job.Queue), attribute.Int("attempt", job.Attempts), attribute.String("source", source),
			attribute.String("worker_id", r.workerID))}
	if p.Traceparent != "" && p.Traceparent != tp {
		opts = append(opts, trace.WithLinks(trace.LinkFromContext(telemetry.WithTraceparent(context.Background(), p.Traceparent),
			attribute.String("delivered_for", p.JobID.String()))))
	}
	ctx, span := r.tracer.Start(telemetry.WithTraceparent(ctx, tp), "job.run", opts...)
	_, claim := r.tracer.Start(ctx, "job.claim", trace.WithTimestamp(start))
	claim.End(trace.WithTimestamp(claimed))
	return ctx, span
}

// endRunSpan ends the span of a sandbox run with what the run produced.
func endRunSpan(span trace.Span, res executor.Result, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	} else {
		span.SetAttributes(attribute.String("status", string(res.Status)), attribute.String("error_code", res.ErrorCode),
			attribute.Int64("run_ms", res.RunTime.Milliseconds()), attribute.Int64("compile_ms", res.CompileTime.Milliseconds()),
			attribute.Int64("memory_peak_bytes", res.MemoryPeakBytes))
	}
	span.End()
}

// Wait waits until no handler is running or ctx ends. asynq's Shutdown can
// return while a cancelled handler is still writing its hand-back; the
// worker waits for it before closing its database pool.
func (r *Runner) Wait(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		r.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// cancelled ends a claimed job as cancelled at its client's request,
// keeping the output the run (res, if it ran) wrote before it was stopped.
func (r *Runner) cancelled(ctx context.Context, log *zap.Logger, job store.Job, res executor.Result) error {
	run := res.RunTime
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if err := r.saveArtifacts(wctx, job, res); err != nil {
		return fmt.Errorf("save artifacts: %w", err)
	}
	fin, err := r.store.FinishRun(wctx, job.ID, job.Attempts, r.workerID, jobstate.Outcome{
		ArtifactsTruncated: res.ArtifactsTruncated,
		Status:             jobstate.Cancelled, ErrorCode: executor.CodeCancelled,
		ErrorMessage: "the job was cancelled while it ran", RunTime: run,
		Stdout: res.Stdout, Stderr: res.Stderr, StdoutTruncated: res.StdoutTruncated, StderrTruncated: res.StderrTruncated,
		MemoryPeakBytes: res.MemoryPeakBytes,
	})
	if err != nil {
		return fmt.Errorf("write cancellation: %w", err)
	}
	if fin.Done {
		r.wakeWaiting(wctx, log, job, fin)
		if r.finished != nil {
			r.finished(wctx, job)
		}
		if r.obs != nil {
			r.obs.JobFinished(jobstate.Cancelled, executor.CodeCancelled, run, 0)
		}
		log.Info("job cancelled")
	}
	return nil
}

// wakeWaiting queues a delivery for the job that waits for the concurrency
// slot the finished job gave back, if any (see Deps.Wake).
func (r *Runner) wakeWaiting(ctx context.Context, log *zap.Logger, job store.Job, fin store.Finished) {
	if fin.Waiting == nil || r.wake == nil {
		return
	}
	if err := r.wake(ctx, *fin.Waiting, job.ID); err != nil {
		log.Warn("the delivery of the account's next job was not queued; the reconciler finds it later",
			zap.String("waiting_job_id", fin.Waiting.ID.String()), zap.Error(err))
	}
}

// handBack returns a claimed job to the queue after a platform failure, so the
// next delivery can claim it at once.
func (r *Runner) handBack(ctx context.Context, log *zap.Logger, job store.Job, cause error) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if ctx.Err() != nil {
		// Interrupted before or while running: by a client's cancel (see
		// ProcessTask), or by a shutdown.
		if requested, err := r.store.CancelRequested(wctx, job.ID); err == nil && requested {
			return r.cancelled(ctx, log, job, executor.Result{})
		}
	}
	if _, err := r.store.ReleaseJob(wctx, job.ID, job.Attempts, r.workerID); err != nil {
		log.Warn("could not hand the job back", zap.Error(err))
	}
	return r.giveUp(ctx, log, job, cause)
}

// giveUp returns cause for asynq to retry, unless this was the last retry: then
// the job ends failed with code internal so that it does not stay queued.
func (r *Runner) giveUp(ctx context.Context, log *zap.Logger, job store.Job, cause error) error {
	n, ok1 := asynq.GetRetryCount(ctx)
	max, ok2 := asynq.GetMaxRetry(ctx)
	if !ok1 || !ok2 || n < max {
		log.Warn("job attempt failed; asynq will retry", zap.Error(cause))
		return cause
	}
	log.Error("job failed after its last retry", zap.Error(cause))
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if claimed, err := r.store.ClaimJob(wctx, job.ID, r.workerID); err == nil {
		_, _ = r.store.FinishJob(wctx, claimed.ID, claimed.Attempts, r.workerID, jobstate.Outcome{
			Status: jobstate.Failed, ErrorCode: "internal",
			ErrorMessage: "the platform could not run this job; it gave up after repeated errors",
		})
	}
	return cause
}

func (r *Runner) delivered(source string, claim error) {
	if r.obs == nil {
		return
	}
	outcome := DeliveryError
	switch {
	case claim == nil:
		outcome = DeliveryClaimed
	case errors.Is(claim, store.ErrJobTerminal):
		outcome = DeliveryFinished
	case errors.Is(claim, store.ErrJobBusy):
		outcome = DeliveryBusy
	case errors.Is(claim, store.ErrAccountAtLimit):
		outcome = DeliveryAtLimit
	case errors.Is(claim, store.ErrJobGone):
		outcome = DeliveryGone
	}
	r.obs.JobDelivered(source, outcome)
}
