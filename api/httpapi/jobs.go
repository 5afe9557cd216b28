package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
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
}

func (s *Server) createJob(c echo.Context) error {
	var req jobRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	p := principal(c)
	j, err := s.buildJob(ctx, p, req)
	if err != nil {
		return err
	}
	job, err := s.submit(ctx, actorOf(c), j)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/jobs/"+job.ID.String())
	return c.JSON(http.StatusCreated, viewJob(job))
}

// submit makes the job durable in Postgres, then puts it on the queue. If the
// enqueue fails the job is deleted again and the caller answers 503: a client
// is never told about a job that will not run, and never left with one it
// was not told about (see docs/ARCHITECTURE.md).
func (s *Server) submit(ctx context.Context, actor store.Actor, j store.Job) (store.Job, error) {
	job, err := s.store.CreateJob(ctx, actor, j)
	if err != nil {
		return store.Job{}, err
	}
	task, err := tasks.NewRunJob(job.ID, job.Queue, time.Duration(job.TimeoutMS)*time.Millisecond)
	if err == nil {
		ectx, cancel := context.WithTimeout(ctx, s.enqueueTimeout)
		_, err = s.enqueuer.EnqueueContext(ectx, task)
		cancel()
		if errors.Is(err, asynq.ErrTaskIDConflict) {
			err = nil // already queued: exactly what we want
		}
	}
	if err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if derr := s.store.DeleteQueuedJob(dctx, job.ID); derr != nil {
			s.log.Error("enqueue failed and the job could not be withdrawn; the reconciler will run it",
				zap.String("job_id", job.ID.String()), zap.Error(derr))
		}
		return store.Job{}, apperr.Wrap(err, apperr.Unavailable, "the job queue is unavailable; the job was not accepted, retry later")
	}
	return job, nil
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
		Queue:          s.queue,
		Function:       req.Function,
		TimeoutMS:      t.DefaultTimeoutMS,
		MemoryLimitMB:  t.DefaultMemoryMB,
		MaxOutputBytes: t.DefaultOutputBytes,
		Deterministic:  req.Deterministic,
	}
	if j.Function == "" {
		j.Function = "_start"
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
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.IndexByte(v, 0) >= 0 || len(k)+len(v) > maxEnvBytes {
			bad("env."+k, "names must be non-empty without '=' or NUL, values without NUL, name and value together at most %d bytes", maxEnvBytes)
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
		if s := strings.TrimSpace(string(raw)); s == "" || (s[0] != '"' && s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
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
		default:
			if err := s.webhooks.CheckURL(ctx, u); err != nil {
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
		if k == "" || len(k) > maxMetadataKey || len(v) > maxMetadataValue {
			bad("metadata."+k, "keys must be 1 to %d bytes, values at most %d bytes", maxMetadataKey, maxMetadataValue)
		}
	}
	if len(errs) > 0 {
		return store.Job{}, apperr.Validation(errs...)
	}

	m, err := s.store.GetModule(ctx, p.AccountID, moduleID)
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
	j, err := s.store.GetJob(c.Request().Context(), principal(c).AccountID, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewJob(j))
}

func (s *Server) listJobs(c echo.Context) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	var f store.JobFilter
	var errs []apperr.FieldError
	if st := c.QueryParam("status"); st != "" {
		if !store.ValidStatus(st) {
			errs = append(errs, apperr.FieldError{Field: "status", Message: "must be one of queued, running, succeeded, failed, timed_out, cancelled"})
		}
		f.Status = st
	}
	if m := c.QueryParam("module_id"); m != "" {
		id, err := uuid.Parse(m)
		if err != nil {
			errs = append(errs, apperr.FieldError{Field: "module_id", Message: "is not a module ID"})
		}
		f.ModuleID = id
	}
	for _, q := range []struct {
		name string
		dst  *time.Time
	}{{"created_after", &f.CreatedAfter}, {"created_before", &f.CreatedBefore}} {
		if v := c.QueryParam(q.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				errs = append(errs, apperr.FieldError{Field: q.name, Message: "must be an RFC 3339 time such as 2026-01-02T15:04:05Z"})
			}
			*q.dst = t
		}
	}
	if len(errs) > 0 {
		return apperr.Validation(errs...)
	}
	page, err := s.store.ListJobs(c.Request().Context(), principal(c).AccountID, f, c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewPage(page, viewJob))
}

func (s *Server) jobEvents(c echo.Context) error {
	id, err := pathID(c, "job")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	accountID := principal(c).AccountID
	if _, err := s.store.GetJob(ctx, accountID, id); err != nil {
		return err
	}
	events, err := s.store.JobEvents(ctx, accountID, id)
	if err != nil {
		return err
	}
	out := make([]eventView, len(events))
	for i, e := range events {
		out[i] = viewEvent(e)
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out})
}
