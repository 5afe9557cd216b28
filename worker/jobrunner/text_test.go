package jobrunner_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/worker/executor"
	"github.com/wasmwizard/wasmwizard/worker/jobrunner"
)

// A trap's stack trace names the guest's functions, and a function's debug
// name may hold a NUL, which Postgres cannot store: the message is cleaned
// and the job ends failed/trap at its first attempt.
func TestTrapWithANULInAFunctionNameEndsFailedOnce(t *testing.T) {
	t.Parallel()
	st, j, r := setupWith(t, fixtures.TrapNamed("a\x00b"), 5*time.Second, executor.NewInProcess(""))
	process(t, r, j)
	got := requireStatus(t, st, j, jobstate.Failed)
	require.Equal(t, executor.CodeTrap, *got.ErrorCode)
	require.Contains(t, *got.ErrorMessage, "a\uFFFDb")
	require.Equal(t, 1, got.Attempts)
}

// fixedResult is an executor whose every run ends with res.
type fixedResult struct{ res executor.Result }

func (f fixedResult) Execute(context.Context, executor.Request) (executor.Result, error) {
	return f.res, nil
}

// A result the database refuses (here a return value jsonb cannot hold)
// cannot be written by trying again: the job ends failed/result_rejected
// at once instead of running again until it is declared worker_lost.
func TestRefusedResultEndsTheJobFailed(t *testing.T) {
	t.Parallel()
	zero := 0
	st, j, r := setupWith(t, fixtures.Bytes(fixtures.Hello), 5*time.Second, fixedResult{executor.Result{Outcome: jobstate.Outcome{
		Status: jobstate.Succeeded, ExitCode: &zero, ReturnValues: []json.RawMessage{json.RawMessage(`"\u0000"`)},
	}}})
	process(t, r, j)
	got := requireStatus(t, st, j, jobstate.Failed)
	require.Equal(t, jobrunner.CodeResultRejected, *got.ErrorCode)
	require.Equal(t, 1, got.Attempts)
}
