package httpapi

import (
	"context"
	"encoding/json"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/semaphore"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/jobview"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// Reading a job's large outputs (more than store.OutputInline bytes) costs
// the API memory while they are read from Postgres and written out: the
// bytes travel hex-encoded (twice their size), are decoded and copied once
// by database/sql, and stay until the answer is written. That is
// outputCost bytes per output byte, reserved from a process-wide budget of
// outputBudget bytes for as long as the answer is being written: however
// many clients read their largest jobs at once, the outputs in flight stay
// within the budget, and the others wait (at most outputWait, then 503).
const (
	outputBudget = 128 << 20
	outputCost   = 4
	outputWait   = 30 * time.Second
)

// newOutputBudget returns the budget of outputBudget bytes.
func newOutputBudget() *semaphore.Weighted { return semaphore.NewWeighted(outputBudget) }

// outputWeight is what reading outputs of n bytes reserves: a read larger
// than the whole budget takes all of it (and runs alone).
func outputWeight(n int64) int64 { return min(outputCost*n, outputBudget) }

// loadOutputs reads the outputs of a job read with store.GetJobView when
// they were too large to come with it, within the output budget. release
// must be called once the answer is written.
func (s *Server) loadOutputs(ctx context.Context, j *store.Job) (release func(), err error) {
	if !store.Terminal(j.Status) || j.OutputsLoaded() {
		return func() {}, nil
	}
	w := outputWeight(j.StdoutBytes + j.StderrBytes)
	actx, cancel := context.WithTimeout(ctx, s.outputWait)
	defer cancel()
	if err := s.outputs.Acquire(actx, w); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, apperr.New(apperr.Unavailable, "too many large job outputs are being read right now; retry shortly")
	}
	if err := s.store.LoadOutputs(ctx, j); err != nil {
		s.outputs.Release(w)
		return nil, err
	}
	return func() { s.outputs.Release(w) }, nil
}

// writeJob answers a Job read with store.GetJobView (or any store.Job): its
// outputs are read within the output budget and written from their bytes
// (jobview.Encode), so no encoded copy of them is made.
func (s *Server) writeJob(c echo.Context, status int, j store.Job) error {
	release, err := s.loadOutputs(c.Request().Context(), &j)
	if err != nil {
		return err
	}
	defer release()
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	c.Response().WriteHeader(status)
	return jobview.Encode(c.Response(), j)
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
