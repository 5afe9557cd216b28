package executor_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/worker/executor"
)

func run(t *testing.T, fixture string, mod func(*executor.Request)) executor.Result {
	t.Helper()
	req := executor.Request{
		ModuleKey: fixture, Module: fixtures.Bytes(fixture), Function: "_start",
		Timeout: 5 * time.Second, MemoryLimitMB: 64, MaxOutputBytes: 1 << 20,
	}
	if mod != nil {
		mod(&req)
	}
	res, err := executor.NewInProcess("").Execute(context.Background(), req)
	require.NoError(t, err)
	return res
}

func TestOutcomes(t *testing.T) {
	t.Parallel()
	res := run(t, fixtures.Hello, nil)
	require.Equal(t, jobstate.Succeeded, res.Status)
	require.Equal(t, 0, *res.ExitCode)

	res = run(t, fixtures.Exit3, nil)
	require.Equal(t, jobstate.Failed, res.Status)
	require.Equal(t, executor.CodeExitNonzero, res.ErrorCode)
	require.Equal(t, 3, *res.ExitCode)

	res = run(t, fixtures.Loop, func(r *executor.Request) { r.Timeout = 50 * time.Millisecond })
	require.Equal(t, jobstate.TimedOut, res.Status)

	res = run(t, fixtures.Grow, func(r *executor.Request) { r.MemoryLimitMB = 4 })
	require.Equal(t, jobstate.Failed, res.Status)
	require.Equal(t, executor.CodeMemoryLimit, res.ErrorCode, "the guest aborted after a refused memory.grow")
	require.Contains(t, res.ErrorMessage, "unreachable")
	require.LessOrEqual(t, res.MemoryPeakBytes, int64(4<<20))

	res = run(t, fixtures.BigMem, nil)
	require.Equal(t, executor.CodeMemoryLimit, res.ErrorCode)

	res = run(t, fixtures.Reactor, func(r *executor.Request) { r.Function = "nope" })
	require.Equal(t, executor.CodeBadFunction, res.ErrorCode)

	res = run(t, fixtures.Reactor, func(r *executor.Request) {
		r.Function, r.Params = "half", []json.RawMessage{json.RawMessage("3")}
	})
	require.Equal(t, jobstate.Succeeded, res.Status)
	require.JSONEq(t, "[1.5]", mustJSON(t, res.ReturnValues))
}

func TestCancellationIsNotATimeout(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res, err := executor.NewInProcess("").Execute(ctx, executor.Request{
		Module: fixtures.Bytes(fixtures.Loop), Function: "_start", Timeout: time.Minute, MemoryLimitMB: 1, MaxOutputBytes: 10,
	})
	require.NoError(t, err)
	require.Equal(t, jobstate.Cancelled, res.Status)
}

func TestParamsAndResults(t *testing.T) {
	t.Parallel()
	types := []api.ValueType{api.ValueTypeI32, api.ValueTypeI64, api.ValueTypeF32, api.ValueTypeF64}
	vals, err := executor.EncodeParams(types, []json.RawMessage{
		json.RawMessage(`-7`), json.RawMessage(`"9007199254740993"`), json.RawMessage(`1.5`), json.RawMessage(`"2.25"`),
	})
	require.NoError(t, err)
	out := executor.DecodeResults(types, vals)
	require.JSONEq(t, `[-7, "9007199254740993", 1.5, 2.25]`, mustJSON(t, out))

	for _, bad := range [][]json.RawMessage{
		{json.RawMessage(`1`)}, // too few
		{json.RawMessage(`1.5`), json.RawMessage(`1`), json.RawMessage(`1`), json.RawMessage(`1`)},        // i32 not integral
		{json.RawMessage(`4294967296`), json.RawMessage(`1`), json.RawMessage(`1`), json.RawMessage(`1`)}, // i32 overflow
		{json.RawMessage(`true`), json.RawMessage(`1`), json.RawMessage(`1`), json.RawMessage(`1`)},       // not a number
		{json.RawMessage(`"x"`), json.RawMessage(`1`), json.RawMessage(`1`), json.RawMessage(`1`)},        // not a number
		{json.RawMessage(`1`), json.RawMessage(`1e30`), json.RawMessage(`1`), json.RawMessage(`1`)},       // i64 not integral
	} {
		_, err := executor.EncodeParams(types, bad)
		require.Error(t, err, "%s", bad)
	}
	nan := executor.DecodeResults([]api.ValueType{api.ValueTypeF64}, []uint64{api.EncodeF64(nanValue())})
	require.JSONEq(t, `["NaN"]`, mustJSON(t, nan))
}

func FuzzEncodeParams(f *testing.F) {
	f.Add([]byte(`7`), []byte(`"8"`))
	f.Add([]byte(`-1e3`), []byte(`null`))
	types := []api.ValueType{api.ValueTypeI32, api.ValueTypeF64}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		vals, err := executor.EncodeParams(types, []json.RawMessage{a, b})
		if err != nil {
			return
		}
		out := executor.DecodeResults(types, vals)
		if _, err := json.Marshal(out); err != nil {
			t.Fatalf("results are not JSON: %v", err)
		}
	})
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// A guest never sees what an earlier guest left in memory: the engine keeps
// its guest-memory mapping between runs and must hand it back zeroed, both
// when it clears a small memory in place and when a large one goes back to
// the OS.
func TestGuestMemoryIsZeroedBetweenRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	engine, err := executor.NewEngine(ctx, executor.EngineConfig{})
	require.NoError(t, err)
	defer func() { _ = engine.Close(ctx) }()
	cm, err := engine.Compile(ctx, fixtures.Residue, func() ([]byte, error) { return fixtures.Bytes(fixtures.Residue), nil })
	require.NoError(t, err)
	for i, pages := range []int{1, 1, 40, 40, 1, 40, 3, 64, 2} { // 64 KiB to 4 MiB, either side of the in-place limit
		res := engine.Run(ctx, cm, executor.Request{Function: "fill", Params: []json.RawMessage{json.RawMessage(strconv.Itoa(pages))},
			MemoryLimitMB: 8, MaxOutputBytes: 1 << 10})
		require.Equal(t, jobstate.Succeeded, res.Status, "run %d: %s", i, res.ErrorMessage)
		require.Equal(t, "[0]", mustJSON(t, res.ReturnValues), "run %d (%d pages) found another run's bytes", i, pages)
		require.EqualValues(t, pages<<16, res.MemoryPeakBytes)
	}
	// A larger limit than the kept mapping gets a new, zeroed mapping.
	res := engine.Run(ctx, cm, executor.Request{Function: "fill", Params: []json.RawMessage{json.RawMessage("200")},
		MemoryLimitMB: 16, MaxOutputBytes: 1 << 10})
	require.Equal(t, "[0]", mustJSON(t, res.ReturnValues))
}

func TestInProcessOutputHook(t *testing.T) {
	t.Parallel()
	var chunks []string
	var total int
	hook := func(s executor.Stream, chunk []byte) {
		chunks = append(chunks, s.String()+":"+string(chunk))
		total += len(chunk)
	}
	// In order, one chunk per write.
	res := run(t, fixtures.Echo, func(r *executor.Request) { r.Args, r.Output = []string{"a"}, hook })
	require.Equal(t, []string{"stdout:a", "stdout:\n", "stdout:GREETING=", "stdout:\n", "stderr:echo done\n"}, chunks)
	require.Equal(t, "a\nGREETING=\n", string(res.Stdout))

	// The cap bounds what the hook gets, exact to the byte.
	chunks, total = nil, 0
	res = run(t, fixtures.Spam, func(r *executor.Request) { r.MaxOutputBytes, r.Output = 1000, hook })
	require.Equal(t, 1000, total)
	require.Len(t, res.Stdout, 1000)
	require.True(t, res.StdoutTruncated)

	// StreamOnly keeps no copy.
	total = 0
	res = run(t, fixtures.Spam, func(r *executor.Request) { r.Output, r.StreamOnly = hook, true })
	require.Equal(t, 1<<20, total)
	require.Empty(t, res.Stdout)
	require.False(t, res.StdoutTruncated)

	// A timed-out run keeps what it wrote.
	chunks = nil
	res = run(t, fixtures.TalkLoop, func(r *executor.Request) { r.Timeout, r.Output = 100*time.Millisecond, hook })
	require.Equal(t, jobstate.TimedOut, res.Status)
	require.Equal(t, "partial out\n", string(res.Stdout))
	require.Equal(t, "partial err\n", string(res.Stderr))
	require.Equal(t, []string{"stdout:partial out\n", "stderr:partial err\n"}, chunks)
}
