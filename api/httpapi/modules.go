package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
)

const (
	maxModuleName = 200
	pagesPerMiB   = 16
)

// createModule accepts a module as the raw body (application/wasm) or as the
// "module" part of a multipart form, refusing it past the tier's size limit
// while it streams in.
func (s *Server) createModule(c echo.Context) error {
	p := principal(c)
	r := c.Request()
	if err := s.admitUpload(r.Context(), c.Response().Header(), p); err != nil {
		return err
	}
	limit := p.Tier.MaxModuleBytes
	if err := capModuleBody(r, limit, formRoom); err != nil {
		return err
	}
	name := c.QueryParam("name")
	mediaType, params, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if err != nil {
		mediaType = ""
	}
	var content []byte
	switch mediaType {
	case "application/wasm":
		content, err = readCapped(r.Body, limit)
	case "multipart/form-data":
		var texts map[string][]byte
		content, texts, err = readModuleForm(multipart.NewReader(r.Body, params["boundary"]), "module", limit,
			map[string]int64{"name": maxModuleName})
		if b, ok := texts["name"]; ok {
			name = string(b)
		}
	default:
		return apperr.New(apperr.UnsupportedMediaType,
			"send the module as Content-Type application/wasm or as the 'module' part of multipart/form-data")
	}
	if err != nil {
		return err
	}
	if len(name) > maxModuleName || !store.ValidText(name) {
		return apperr.Validation(apperr.FieldError{Field: "name", Message: "must be valid UTF-8 without NUL, of at most 200 bytes"})
	}
	m, created, err := s.ingestModule(r.Context(), actorOf(c), p, name, content)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		s.precompile(r.Context(), m.SHA256)
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/modules/"+m.ID.String())
	return c.JSON(status, viewModule(m))
}

func (s *Server) getModule(c echo.Context) error {
	id, err := pathID(c, "module")
	if err != nil {
		return err
	}
	m, err := s.store.GetModule(c.Request().Context(), principal(c).AccountID, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewModule(m))
}

func (s *Server) listModules(c echo.Context) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	if raw, ok := c.QueryParams()["sha256"]; ok {
		return s.listModuleBySHA256(c, raw)
	}
	page, err := s.store.ListModules(c.Request().Context(), principal(c).AccountID, c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewPage(page, viewModule))
}

// listModuleBySHA256 answers GET /v1/modules?sha256=<hex>: a page of the
// one live module of the caller with those bytes, or an empty page. It lets
// a client upload a module only when the platform lacks it.
func (s *Server) listModuleBySHA256(c echo.Context, raw []string) error {
	var sum []byte
	if len(raw) == 1 && len(raw[0]) == 2*sha256.Size && strings.ToLower(raw[0]) == raw[0] {
		sum, _ = hex.DecodeString(raw[0])
	}
	if len(sum) != sha256.Size {
		return apperr.Validation(apperr.FieldError{Field: "sha256", Message: "must be 64 lowercase hexadecimal digits"})
	}
	out := listView[moduleView]{Data: []moduleView{}}
	m, err := s.store.ModuleBySHA256(c.Request().Context(), principal(c).AccountID, sum)
	switch {
	case err == nil:
		out.Data = append(out.Data, viewModule(m))
	case apperr.CodeOf(err) != apperr.NotFound:
		return err
	}
	return c.JSON(http.StatusOK, out)
}

func actorOf(c echo.Context) store.Actor {
	if p, ok := c.Get(ctxPrincipal).(store.Principal); ok {
		return store.Actor{Name: "key:" + p.KeyID.String(), RequestID: requestID(c)}
	}
	return store.Actor{Name: "admin", RequestID: requestID(c)}
}

// precompile asks a worker to compile a new module before its first run. It
// is an optimisation: a failure is logged and the upload still succeeds.
func (s *Server) precompile(ctx context.Context, sum []byte) {
	task, err := tasks.NewCompileModule(sum, s.queue)
	s.enqueueHint(ctx, task, err, "pre-compile not enqueued")
}

// enqueueHint enqueues task (built with err) for an optimisation the
// request does not wait for: within the enqueue timeout, even if the
// request ends; a failure, or the task already queued, is only logged.
func (s *Server) enqueueHint(ctx context.Context, task *asynq.Task, err error, failed string) {
	if err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.enqueueTimeout)
		defer cancel()
		_, err = s.enqueuer.EnqueueContext(ctx, task)
	}
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		s.log.Info(failed, zap.Error(err))
	}
}

// deleteModule soft-deletes a module: 204. Its queued jobs end failed with
// module_deleted (their tasks are dropped; a worker that already took one
// finds the job terminal); running jobs finish.
func (s *Server) deleteModule(c echo.Context) error {
	id, err := pathID(c, "module")
	if err != nil {
		return err
	}
	failed, err := s.store.DeleteModule(c.Request().Context(), actorOf(c), principal(c).AccountID, id)
	if err != nil {
		return err
	}
	s.modules.Remove(moduleKey{principal(c).AccountID, id})
	if s.tasks != nil {
		// The jobs' tasks wait in the account's tier queue (a worker that
		// meets one anyway finds the job terminal and skips it).
		queue := tasks.TierQueue(strings.TrimSuffix(s.queue, tasks.JobsQueue), principal(c).Tier.Name)
		for _, jid := range failed {
			_ = s.tasks.DeleteTask(queue, jid.String())
		}
	}
	return c.NoContent(http.StatusNoContent)
}

// moduleKey names a module as its account sees it.
type moduleKey struct{ account, id uuid.UUID }

// moduleCacheTTL bounds how long a replica may validate jobs against a
// module it read earlier. Modules never change, except that they can be
// deleted; a job for a module deleted on another replica is still refused,
// because the job's insert checks the module row itself.
const moduleCacheTTL = time.Minute

// module returns one of the account's modules for validating a job, from a
// per-process cache: the profile of POST /v1/jobs showed the module read
// (and the decoding of its exports) as a fifth of the API's CPU.
func (s *Server) module(ctx context.Context, account, id uuid.UUID) (store.Module, error) {
	key := moduleKey{account, id}
	if m, ok := s.modules.Get(key); ok {
		return m, nil
	}
	m, err := s.store.GetModule(ctx, account, id)
	if err != nil {
		return store.Module{}, err
	}
	s.modules.Add(key, m)
	return m, nil
}
