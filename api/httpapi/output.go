package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/jobview"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// A job's outputs larger than store.OutputInline are not read with the
// job: they are read from Postgres and written out outputPiece bytes at a
// time (twice: once to choose text or base64, once to write). One such
// answer holds about outputCost bytes of memory however large the outputs
// are (the piece, its hex-encoded form on the wire from Postgres, its
// decoded and copied forms, and the escaped text), reserved from a
// process-wide budget of outputBudget bytes while it is written: however
// many clients read their largest jobs at once, at most outputBudget /
// outputCost answers are in flight, and the others wait for a share (at
// most outputWait, then 503 with Retry-After). A client that takes longer
// than outputWriteTimeout to accept a write is cut off, so slow readers
// cannot hold the budget.
const (
	outputPiece        = 1 << 20
	outputCost         = 6 << 20
	outputBudget       = 64 << 20
	outputWait         = 30 * time.Second
	outputWriteTimeout = 30 * time.Second
)

// newOutputBudget returns the budget of outputBudget bytes.
func newOutputBudget() *semaphore.Weighted { return semaphore.NewWeighted(outputBudget) }

// dbOutput is one of a job's outputs in Postgres, read a piece at a time.
type dbOutput struct {
	ctx       context.Context
	store     *store.Store
	accountID uuid.UUID
	id        uuid.UUID
	stream    string
	size      int64
}

func (o *dbOutput) Size() int64 { return o.size }

func (o *dbOutput) ReadAt(p []byte, off int64) (int, error) {
	b, err := o.store.ReadOutput(o.ctx, o.accountID, o.id, o.stream, off, len(p))
	n := copy(p, b)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

// outputs returns a finished job's outputs, from memory when they were
// read with it, else from Postgres.
func (s *Server) outputs(ctx context.Context, j store.Job) (stdout, stderr jobview.Output) {
	stdout, stderr = bytes.NewReader(j.Stdout), bytes.NewReader(j.Stderr)
	if int64(len(j.Stdout)) < j.StdoutBytes {
		stdout = &dbOutput{ctx: ctx, store: s.store, accountID: j.AccountID, id: j.ID, stream: "stdout", size: j.StdoutBytes}
	}
	if int64(len(j.Stderr)) < j.StderrBytes {
		stderr = &dbOutput{ctx: ctx, store: s.store, accountID: j.AccountID, id: j.ID, stream: "stderr", size: j.StderrBytes}
	}
	return stdout, stderr
}

// reserveOutput takes an answer's share of the output budget for a job
// whose outputs were not read with it; release gives it back.
func (s *Server) reserveOutput(ctx context.Context, j store.Job) (release func(), err error) {
	if !j.Status.Terminal() || j.OutputsLoaded() {
		return func() {}, nil
	}
	actx, cancel := context.WithTimeout(ctx, s.outputWait)
	defer cancel()
	if err := s.outputBudget.Acquire(actx, outputCost); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, apperr.New(apperr.Unavailable, "too many large job outputs are being read right now; retry shortly")
	}
	return func() { s.outputBudget.Release(outputCost) }, nil
}

// writeJob answers a Job read with store.GetJobView (or any store.Job):
// small outputs from memory, large ones from Postgres a piece at a time
// within the output budget (see outputPiece).
func (s *Server) writeJob(c echo.Context, status int, j store.Job) error {
	ctx := c.Request().Context()
	release, err := s.reserveOutput(ctx, j)
	if err != nil {
		return err
	}
	defer release()
	if err := s.store.LoadArtifacts(ctx, &j); err != nil {
		return err
	}
	w := s.answerWriter(c, status)
	if j.OutputsLoaded() || !j.Status.Terminal() {
		return jobview.Encode(w, j)
	}
	stdout, stderr := s.outputs(ctx, j)
	return s.abortOnError(c, jobview.EncodeOutputs(w, j, stdout, stderr, outputPiece))
}

// answerWriter sends a JSON answer's headers and returns its body's writer,
// which gives the client outputWriteTimeout for each write.
func (s *Server) answerWriter(c echo.Context, status int) io.Writer {
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	c.Response().WriteHeader(status)
	return deadlineWriter{w: c.Response(), rc: http.NewResponseController(c.Response())}
}

type deadlineWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (d deadlineWriter) Write(p []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(outputWriteTimeout)) // unsupported in tests' recorders
	return d.w.Write(p)
}

// abortOnError ends an answer that failed after its headers were sent
// (the job was deleted while its output was being written, the database
// failed, the client went away): the connection is closed, so the client
// sees a broken answer rather than a short one.
func (s *Server) abortOnError(c echo.Context, err error) error {
	if err == nil {
		return nil
	}
	if !errors.Is(err, context.Canceled) {
		s.log.Warn("answer aborted while writing a job's output", zap.String("request_id", requestID(c)), zap.Error(err))
	}
	panic(http.ErrAbortHandler)
}

// jsonSerializer is Echo's JSON encoding without HTML escaping: answers
// are JSON for programs, not HTML, and escaping would make each '<', '>'
// and '&' of a guest's output six bytes long.
type jsonSerializer struct{ echo.DefaultJSONSerializer }

func (jsonSerializer) Serialize(c echo.Context, i any, indent string) error {
	enc := json.NewEncoder(c.Response())
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	return enc.Encode(i)
}

var _ echo.JSONSerializer = jsonSerializer{}
