package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/jobview"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/telemetry"
	"github.com/wasmwizard/wasmwizard/shared/webhook"
)

// Request limits that do not depend on the tier.
const (
	maxArgs          = 256
	maxArgBytes      = 4096
	maxEnv           = 128
	maxEnvBytes      = 4096
	maxStdinBytes    = 1 << 20
	maxParams        = 64
	maxMetadata      = 32
	maxMetadataKey   = 64
	maxMetadataValue = 512
	maxWebhookURL    = 2048
	maxFunction      = 1024
)

// jobRequest is the body of POST /v1/jobs.
type jobRequest struct {
	ModuleID       string            `json:"module_id"`
	Function       string            `json:"function"`
	Args           []string          `json:"args"`
	Env            map[string]string `json:"env"`
	Stdin          *string           `json:"stdin"`
	StdinBase64    *string           `json:"stdin_base64"`
	Params         []json.RawMessage `json:"params"`
	TimeoutMS      *int              `json:"timeout_ms"`
	MemoryLimitMB  *int              `json:"memory_limit_mb"`
	MaxOutputBytes *int              `json:"max_output_bytes"`
	Deterministic  bool              `json:"deterministic"`
	WebhookURL     *string           `json:"webhook_url"`
	Metadata       map[string]string `json:"metadata"`
	// Files (omitted when absent, so that the hash of a request without
	// them is what it was before they existed).
	Files    []fileRequest `json:"files,omitempty"`
	Preopens []string      `json:"preopens,omitempty"`
	Collect  []string      `json:"collect,omitempty"`
}

// Idempotency-Key limits.
const maxIdempotencyKey = 255

// idempotencyKey reads the Idempotency-Key header: empty when absent.
func idempotencyKey(c echo.Context) (string, error) {
	k := c.Request().Header.Get("Idempotency-Key")
	if k == "" {
		return "", nil
	}
	if len(k) > maxIdempotencyKey || strings.IndexFunc(k, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 || !utf8.ValidString(k) {
		return "", apperr.Validation(apperr.FieldError{Field: "Idempotency-Key",
			Message: fmt.Sprintf("must be 1 to %d characters without control characters", maxIdempotencyKey)})
	}
	return k, nil
}

// requestHash identifies a job request for Idempotency-Key: the hash of its
// decoded fields re-encoded (so key order and spacing do not matter).
func requestHash(req jobRequest) []byte {
	// Files count by their decoded bytes' hash (however they were sent);
	// an empty preopens list differs from an absent one.
	req.Files = hashedFiles(req.Files)
	if req.Preopens != nil && len(req.Preopens) == 0 {
		req.Preopens = []string{""}
	}
	b, err := json.Marshal(req)
	if err != nil {
		// Every field of jobRequest is encodable.
		panic(fmt.Sprintf("encode job request: %v", err))
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

func (s *Server) createJob(c echo.Context) error {
	wait, err := parseWait(c.QueryParam("wait"))
	if err != nil {
		return err
	}
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	p := principal(c)
	var req jobRequest
	if mt, params, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType)); mt == "multipart/form-data" {
		if req, err = readMultipartJob(c, p.Tier, params["boundary"]); err != nil {
			return err
		}
	} else if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if errs := decodeFiles(&req); len(errs) > 0 {
		return apperr.Validation(errs...)
	}
	ctx := c.Request().Context()
	var hash []byte
	if key != "" {
		// A replay answers what the first request got, even if the module
		// has been deleted since; only new jobs are validated.
		hash = requestHash(req)
		job, found, err := s.store.IdempotentJob(ctx, p.AccountID, key, hash)
		if err != nil {
			return err
		}
		if found {
			return s.answerJob(c, job, wait, true)
		}
	}
	j, err := s.buildJob(ctx, p, req)
	if err != nil {
		return err
	}
	j.Watched = wait > 0 // its end is announced to this request without a second write
	if err := s.admitRuns(ctx, c.Response().Header(), p, 1); err != nil {
		return err
	}
	job, replayed, err := s.submit(ctx, actorOf(c), j, key, hash)
	if err != nil {
		return err
	}
	return s.answerJob(c, job, wait, replayed)
}

// answerJob answers a submitted job: 201, or 200 with Idempotent-Replayed
// when an Idempotency-Key found an earlier job; after waiting for it to
// finish when the client asked to.
func (s *Server) answerJob(c echo.Context, job store.Job, wait time.Duration, replayed bool) error {
	if wait > 0 {
		var err error
		if job, err = s.awaitJob(c.Request().Context(), job.AccountID, job.ID, wait); err != nil {
			return err
		}
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/jobs/"+job.ID.String())
	status := http.StatusCreated
	if replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
		status = http.StatusOK
	}
	return s.writeJob(c, status, job)
}

// submit makes the job durable in Postgres, then puts it on the queue. If the
// enqueue fails the job is deleted again and the caller answers 503: a client
// is never told about a job that will not run, and never left with one it
// was not told about (see docs/ARCHITECTURE.md). With an Idempotency-Key
// (key != ""), a concurrent request that took the key first wins: its job is
// returned with replayed == true and nothing is enqueued.
func (s *Server) submit(ctx context.Context, actor store.Actor, j store.Job, key string, hash []byte) (store.Job, bool, error) {
	var job store.Job
	var err error
	if tp := telemetry.Traceparent(ctx); tp != "" {
		j.Traceparent = &tp // the worker's spans join the submit's trace
	}
	if key != "" {
		var replayed bool
		job, replayed, err = s.store.CreateJobIdempotent(ctx, actor, j, key, hash)
		if err != nil || replayed {
			return job, replayed, err
		}
	} else if job, err = s.store.CreateJob(ctx, actor, j); err != nil {
		return store.Job{}, false, err
	}
	err = s.enqueue(ctx, job)
	if err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if derr := s.store.DeleteQueuedJob(dctx, job.ID); derr != nil {
			s.log.Error("enqueue failed and the job could not be withdrawn; the reconciler will run it",
				zap.String("job_id", job.ID.String()), zap.Error(derr))
		}
		return store.Job{}, false, apperr.Wrap(err, apperr.Unavailable, "the job queue is unavailable; the job was not accepted, retry later")
	}
	s.ring(ctx, job, j.QueueWeight)
	return job, false, nil
}

// enqueue puts the job's task on its queue; a task already there is fine.
func (s *Server) enqueue(ctx context.Context, job store.Job) error {
	if s.tracer != nil {
		var span trace.Span
		ctx, span = s.tracer.Start(ctx, "job.enqueue", trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("job_id", job.ID.String()), attribute.String("queue", job.Queue)))
		defer span.End()
	}
	task, err := tasks.NewRunJob(job.ID, job.Queue, time.Duration(job.TimeoutMS)*time.Millisecond, telemetry.Traceparent(ctx))
	if err != nil {
		return err
	}
	ectx, cancel := context.WithTimeout(ctx, s.enqueueTimeout)
	defer cancel()
	_, err = s.enqueuer.EnqueueContext(ectx, task)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil // already queued: exactly what we want
	}
	if err != nil {
		trace.SpanFromContext(ctx).SetStatus(codes.Error, err.Error())
	}
	return err
}

// ring rings the doorbell for the job, so that an idle worker starts it at
// once (see shared/doorbell). It is only a hint: failures are ignored.
func (s *Server) ring(ctx context.Context, job store.Job, weight int) {
	if s.bell == nil {
		return
	}
	if err := s.bell.Ring(ctx, job.ID, weight); err != nil {
		s.log.Debug("doorbell not rung", zap.String("job_id", job.ID.String()), zap.Error(err))
	}
}

// maxBatch bounds POST /v1/jobs/batch.
const maxBatch = 100

type batchRequest struct {
	Jobs []json.RawMessage `json:"jobs"`
}

type batchItem struct {
	Job   *jobView `json:"job,omitempty"`
	Error *Problem `json:"error,omitempty"`
}

// createJobs accepts up to maxBatch job requests, each validated and
// submitted on its own: the answer lists a Job or a problem per request, in
// request order.
func (s *Server) createJobs(c echo.Context) error {
	if c.Request().Header.Get("Idempotency-Key") != "" {
		return apperr.Validation(apperr.FieldError{Field: "Idempotency-Key",
			Message: "is not supported on batches; submit jobs one by one to use it"})
	}
	var req batchRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if len(req.Jobs) == 0 || len(req.Jobs) > maxBatch {
		return apperr.Validation(apperr.FieldError{Field: "jobs",
			Message: fmt.Sprintf("must hold 1 to %d job requests, got %d", maxBatch, len(req.Jobs))})
	}
	// Every distinct webhook host of the batch is resolved once, all at the
	// same time, under one deadline; the jobs are then validated against
	// the answers.
	ctx := withCheckedWebhooks(c.Request().Context(), s.webhooks, req.Jobs)
	p := principal(c)
	actor := actorOf(c)
	out := make([]batchItem, len(req.Jobs))
	for i, raw := range req.Jobs {
		job, err := s.submitRaw(ctx, c.Response().Header(), p, actor, raw)
		if err != nil {
			prob := problemFor(err, requestID(c))
			if prob.Status >= 500 {
				s.log.Error("batch job failed", zap.String("request_id", prob.RequestID), zap.Int("index", i), zap.Error(err))
			}
			out[i].Error = &prob
			continue
		}
		v := viewJob(job)
		out[i].Job = &v
	}
	return c.JSON(http.StatusCreated, dataView[batchItem]{Data: out})
}

func (s *Server) submitRaw(ctx context.Context, h http.Header, p store.Principal, actor store.Actor, raw json.RawMessage) (store.Job, error) {
	var req jobRequest
	if err := decodeJSONBytes(raw, &req); err != nil {
		return store.Job{}, err
	}
	if errs := decodeFiles(&req); len(errs) > 0 {
		return store.Job{}, apperr.Validation(errs...)
	}
	j, err := s.buildJob(ctx, p, req)
	if err != nil {
		return store.Job{}, err
	}
	if err := s.admitRuns(ctx, h, p, 1); err != nil {
		return store.Job{}, err
	}
	job, _, err := s.submit(ctx, actor, j, "", nil)
	return job, err
}

// buildJob validates a request against the module and the caller's tier and
// returns the job to insert. Every invalid field is reported at once.
func (s *Server) buildJob(ctx context.Context, p store.Principal, req jobRequest) (store.Job, error) {
	var errs []apperr.FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, apperr.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	t := p.Tier
	j := store.Job{
		AccountID:      p.AccountID,
		Queue:          tasks.TierQueue(strings.TrimSuffix(s.queue, tasks.JobsQueue), t.Name),
		QueueWeight:    t.QueueWeight,
		Function:       req.Function,
		TimeoutMS:      t.DefaultTimeoutMS,
		MemoryLimitMB:  t.DefaultMemoryMB,
		MaxOutputBytes: t.DefaultOutputBytes,
		Deterministic:  req.Deterministic,
	}
	if j.Function == "" {
		j.Function = "_start"
	}
	if len(j.Function) > maxFunction || !store.ValidText(j.Function) {
		bad("function", "must be UTF-8 without NUL, at most %d bytes", maxFunction)
	}
	moduleID, err := uuid.Parse(req.ModuleID)
	if req.ModuleID == "" {
		bad("module_id", "is required")
	} else if err != nil {
		bad("module_id", "is not a module ID")
	}

	j.Args.V = req.Args
	if j.Args.V == nil {
		j.Args.V = []string{}
	}
	if len(req.Args) > maxArgs {
		bad("args", "has %d entries, at most %d are allowed", len(req.Args), maxArgs)
	}
	for i, a := range req.Args {
		if len(a) > maxArgBytes || strings.IndexByte(a, 0) >= 0 || !utf8.ValidString(a) {
			bad(fmt.Sprintf("args[%d]", i), "must be UTF-8 without NUL, at most %d bytes", maxArgBytes)
		}
	}
	j.Env.V = req.Env
	if j.Env.V == nil {
		j.Env.V = map[string]string{}
	}
	if len(req.Env) > maxEnv {
		bad("env", "has %d entries, at most %d are allowed", len(req.Env), maxEnv)
	}
	for k, v := range req.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || !store.ValidText(v) || !utf8.ValidString(k) || len(k)+len(v) > maxEnvBytes {
			bad("env."+printable(k), "names must be non-empty without '=' or NUL, values without NUL, name and value together at most %d bytes", maxEnvBytes)
		}
	}
	switch {
	case req.Stdin != nil && req.StdinBase64 != nil:
		bad("stdin_base64", "send either stdin or stdin_base64, not both")
	case req.Stdin != nil:
		j.Stdin = []byte(*req.Stdin)
	case req.StdinBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*req.StdinBase64)
		if err != nil {
			bad("stdin_base64", "is not valid base64")
		}
		j.Stdin = b
	}
	if len(j.Stdin) > maxStdinBytes {
		bad("stdin", "is %d bytes, at most %d are allowed", len(j.Stdin), maxStdinBytes)
	}
	j.Params.V = req.Params
	if j.Params.V == nil {
		j.Params.V = []json.RawMessage{}
	}
	if len(req.Params) > maxParams {
		bad("params", "has %d entries, at most %d are allowed", len(req.Params), maxParams)
	}
	for i, raw := range req.Params {
		if s := strings.TrimSpace(string(raw)); s == "" || (s[0] != '"' && s[0] != '-' && (s[0] < '0' || s[0] > '9')) || !validParam(raw) {
			bad(fmt.Sprintf("params[%d]", i), "must be a number or a string holding a number")
		}
	}
	limit := func(field string, v *int, def, max int, unit string) int {
		if v == nil {
			return def
		}
		if *v < 1 || *v > max {
			bad(field, "must be from 1 to %d %s on the %s tier", max, unit, t.Name)
		}
		return *v
	}
	j.TimeoutMS = limit("timeout_ms", req.TimeoutMS, t.DefaultTimeoutMS, t.MaxTimeoutMS, "ms")
	j.MemoryLimitMB = limit("memory_limit_mb", req.MemoryLimitMB, t.DefaultMemoryMB, t.MaxMemoryMB, "MiB")
	j.MaxOutputBytes = limit("max_output_bytes", req.MaxOutputBytes, t.DefaultOutputBytes, t.MaxOutputBytes, "bytes")
	if req.WebhookURL != nil {
		u := strings.TrimSpace(*req.WebhookURL)
		switch {
		case len(u) > maxWebhookURL:
			bad("webhook_url", "is longer than %d bytes", maxWebhookURL)
		case !store.ValidText(u):
			bad("webhook_url", "must be UTF-8 without NUL")
		default:
			if err := s.checkWebhookURL(ctx, u); err != nil {
				bad("webhook_url", "%s", strings.TrimPrefix(err.Error(), webhook.ErrForbidden.Error()+": "))
			}
		}
		j.WebhookURL = &u
	}
	j.Metadata.V = req.Metadata
	if j.Metadata.V == nil {
		j.Metadata.V = map[string]string{}
	}
	if len(req.Metadata) > maxMetadata {
		bad("metadata", "has %d keys, at most %d are allowed", len(req.Metadata), maxMetadata)
	}
	for k, v := range req.Metadata {
		if k == "" || len(k) > maxMetadataKey || len(v) > maxMetadataValue || !store.ValidText(k) || !store.ValidText(v) {
			bad("metadata."+printable(k), "keys must be 1 to %d bytes, values at most %d bytes, both UTF-8 without NUL", maxMetadataKey, maxMetadataValue)
		}
	}
	tooLarge := buildFiles(req, t, &j, bad)
	if len(errs) > 0 {
		return store.Job{}, apperr.Validation(errs...)
	}
	if tooLarge != nil {
		return store.Job{}, tooLarge
	}

	m, err := s.module(ctx, p.AccountID, moduleID)
	if err != nil {
		return store.Job{}, err
	}
	j.ModuleID, j.ModuleSHA256 = m.ID, m.SHA256
	fn, ok := findExport(m, j.Function)
	switch {
	case !ok && j.Function == "_start":
		bad("function", "the module does not export _start (it is not a WASI command); name one of its exported functions")
	case !ok:
		bad("function", "the module does not export a function %q", j.Function)
	case j.Function == "_start" && len(req.Params) > 0:
		bad("params", "are passed to exported functions, not to _start; use args for a WASI command")
	case j.Function != "_start" && len(req.Params) != len(fn.Params):
		bad("params", "%s takes %d params, got %d", j.Function, len(fn.Params), len(req.Params))
	}
	if len(errs) > 0 {
		return store.Job{}, apperr.Validation(errs...)
	}
	return j, nil
}

// checkedWebhooksKey holds the verdicts on a batch's webhook URLs.
type checkedWebhooksKey struct{}

// withCheckedWebhooks checks the webhook URLs of a batch's job requests
// together (webhook.Policy.CheckURLs) and keeps the verdicts in the context
// for checkWebhookURL. A request that does not decode is skipped here and
// refused by its own validation.
func withCheckedWebhooks(ctx context.Context, policy webhook.Policy, jobs []json.RawMessage) context.Context {
	var urls []string
	for _, raw := range jobs {
		var r struct {
			WebhookURL *string `json:"webhook_url"`
		}
		if json.Unmarshal(raw, &r) != nil || r.WebhookURL == nil {
			continue
		}
		if u := strings.TrimSpace(*r.WebhookURL); len(u) <= maxWebhookURL {
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 {
		return ctx
	}
	return context.WithValue(ctx, checkedWebhooksKey{}, policy.CheckURLs(ctx, urls))
}

// checkWebhookURL checks a job's webhook URL, with the batch's verdict when
// there is one.
func (s *Server) checkWebhookURL(ctx context.Context, u string) error {
	if checked, ok := ctx.Value(checkedWebhooksKey{}).(map[string]error); ok {
		if err, ok := checked[u]; ok {
			return err
		}
	}
	return s.webhooks.CheckURL(ctx, u)
}

// validParam reports whether a param can be stored (params are jsonb): a
// string param must not hold NUL.
func validParam(raw json.RawMessage) bool {
	var str string
	if json.Unmarshal(raw, &str) != nil {
		return true // a number
	}
	return store.ValidText(str)
}

// printable makes a client's key fit to name a field in a problem (which
// is JSON, and may be logged): NUL and bytes that are not UTF-8 become
// U+FFFD.
func printable(k string) string { return store.CleanText(k, 0) }

type exportedFunc struct{ Params []string }

func findExport(m store.Module, name string) (exportedFunc, bool) {
	for _, e := range m.Exports.V {
		if e.Name == name && e.Kind == "function" {
			return exportedFunc{Params: e.Params}, true
		}
	}
	return exportedFunc{}, false
}

func (s *Server) getJob(c echo.Context) error {
	id, err := pathID(c, "job")
	if err != nil {
		return err
	}
	wait, err := parseWait(c.QueryParam("wait"))
	if err != nil {
		return err
	}
	j, err := s.awaitJob(c.Request().Context(), principal(c).AccountID, id, wait)
	if err != nil {
		return err
	}
	return s.writeJob(c, http.StatusOK, j)
}

// Cancelling a running job: how long the request waits for the worker to
// stop it, and how often the interruption is sent again meanwhile (it
// travels over Redis pub/sub, which does not redeliver).
const (
	cancelWait   = 10 * time.Second
	cancelResend = time.Second
)

// cancelJob cancels a queued job at once (and drops its task) or interrupts
// a running one and waits for its worker to end it. 200 with the cancelled
// Job; 409 if the job was already terminal, or finished otherwise before the
// interruption reached it; 202 with the still running Job if its worker has
// not stopped it within cancelWait (the request is recorded, the job will
// not be run again).
func (s *Server) cancelJob(c echo.Context) error {
	id, err := pathID(c, "job")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	p := principal(c)
	j, err := s.store.CancelJob(ctx, actorOf(c), p.AccountID, id)
	if err != nil {
		return err
	}
	if j.Status == jobstate.Cancelled {
		// The job was queued: its task is dropped (a worker that already
		// took it finds the job terminal and skips it).
		if s.tasks != nil {
			if err := s.tasks.DeleteTask(j.Queue, j.ID.String()); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				s.log.Debug("cancelled job's task not deleted", zap.String("job_id", j.ID.String()), zap.Error(err))
			}
		}
		s.sendWebhook(ctx, j)
		return c.JSON(http.StatusOK, viewJob(j))
	}
	deadline := time.Now().Add(cancelWait)
	for {
		// asynq's cancellation reaches a run asynq delivered; the doorbell's
		// channel reaches a run a worker took from the doorbell.
		if s.tasks != nil {
			if err := s.tasks.CancelProcessing(j.ID.String()); err != nil {
				s.log.Warn("could not send the cancellation", zap.String("job_id", j.ID.String()), zap.Error(err))
			}
		}
		if s.bell != nil {
			if err := s.bell.Cancel(ctx, j.ID); err != nil {
				s.log.Warn("could not send the cancellation", zap.String("job_id", j.ID.String()), zap.Error(err))
			}
		}
		left := time.Until(deadline)
		if j, err = s.awaitJob(ctx, p.AccountID, id, min(cancelResend, max(left, 0))); err != nil {
			return err
		}
		switch {
		case j.Status == jobstate.Cancelled:
			return s.writeJob(c, http.StatusOK, j)
		case j.Status.Terminal():
			return apperr.New(apperr.Conflict, "job %s finished (%s) before the cancellation reached it", id, j.Status)
		case left <= cancelResend || ctx.Err() != nil || s.watcher == nil:
			return c.JSON(http.StatusAccepted, viewJob(j))
		}
	}
}

func (s *Server) listJobs(c echo.Context) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	var f store.JobFilter
	var errs []apperr.FieldError
	if st := c.QueryParam("status"); st != "" {
		if !jobstate.Status(st).Valid() {
			errs = append(errs, apperr.FieldError{Field: "status", Message: "must be one of queued, running, succeeded, failed, timed_out, cancelled"})
		}
		f.Status = jobstate.Status(st)
	}
	if m := c.QueryParam("module_id"); m != "" {
		id, err := uuid.Parse(m)
		if err != nil {
			errs = append(errs, apperr.FieldError{Field: "module_id", Message: "is not a module ID"})
		}
		f.ModuleID = id
	}
	errs = append(errs, createdRange(c, &f.CreatedAfter, &f.CreatedBefore)...)
	if len(errs) > 0 {
		return apperr.Validation(errs...)
	}
	page, err := s.store.ListJobs(c.Request().Context(), principal(c).AccountID, f, c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	// List items are summaries: no outputs (see jobview.Summary).
	return c.JSON(http.StatusOK, viewPage(page, jobview.Summary))
}

// ownJobID is the job ID of the path, once the job is known to be the
// caller's (another account's job is not_found, like one that does not
// exist).
func (s *Server) ownJobID(c echo.Context) (uuid.UUID, error) {
	id, err := pathID(c, "job")
	if err != nil {
		return uuid.Nil, err
	}
	if err := s.store.JobExists(c.Request().Context(), principal(c).AccountID, id); err != nil {
		return uuid.Nil, err
	}
	return id, nil
}

func (s *Server) jobEvents(c echo.Context) error {
	id, err := s.ownJobID(c)
	if err != nil {
		return err
	}
	events, err := s.store.JobEvents(c.Request().Context(), principal(c).AccountID, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, dataView[eventView]{Data: viewAll(events, viewEvent)})
}
