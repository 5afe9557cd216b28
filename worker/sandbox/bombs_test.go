package sandbox_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/worker/executor"
	"github.com/wasmwizard/wasmwizard/worker/sandbox"
)

// slowToCompile is 237 KB that wazero's optimizing compiler takes ~45 s
// (and over a GB) to compile: 1,000 locals live across 20,000 blocks.
func slowToCompile(t *testing.T) (key, path string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "slow.wasm")
	require.NoError(t, os.WriteFile(path, fixtures.LocalsTimesBlocks(1000, 20000), 0o600))
	return "slow-" + t.Name(), path
}

func shapeRequest(t *testing.T, name string, bin []byte) executor.Request {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".wasm")
	require.NoError(t, os.WriteFile(path, bin, 0o600))
	return executor.Request{ModuleKey: name + "-" + t.Name(), ModulePath: path, Function: "_start",
		Timeout: 5 * time.Second, MemoryLimitMB: 64, MaxOutputBytes: 100}
}

// requireFailed requires res to be a failure with the error code code and
// a message that contains msg.
func requireFailed(t *testing.T, res executor.Result, code, msg string) {
	t.Helper()
	require.Equal(t, jobstate.Failed, res.Status, "%+v", res)
	require.Equal(t, code, res.ErrorCode, "%+v", res)
	require.Contains(t, res.ErrorMessage, msg)
}

// Compilation counts against the job's timeout: a job with a 1 s timeout
// on a module that takes 45 s to compile ends timed_out after 1 s (it used
// to hold its child for the whole compile timeout, then run). The
// compilation goes on in the background up to the pre-compile budget, the
// child is then killed and replaced, and the next job on the module fails
// at once without compiling it again.
func TestSlowCompileEndsWithinTheJobsTimeout(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	require.NoError(t, err)
	p, err := sandbox.New(sandbox.Config{Command: []string{exe}, Size: 1, CacheDir: t.TempDir(), MemoryLimitMB: 1536,
		PrecompileTimeout: 3 * time.Second})
	require.NoError(t, err)
	t.Cleanup(p.Close)
	key, path := slowToCompile(t)
	before := p.PIDs()
	req := executor.Request{ModuleKey: key, ModulePath: path, Function: "_start",
		Timeout: time.Second, MemoryLimitMB: 64, MaxOutputBytes: 100}
	res, err := p.Execute(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, jobstate.TimedOut, res.Status, "%+v", res)
	require.Equal(t, executor.CodeTimeout, res.ErrorCode)
	require.Contains(t, res.ErrorMessage, "compiling the module took longer than the job's timeout of 1s")

	// The compilation went on while no job needed the child, up to the
	// pre-compile budget (3 s), then the child was killed and replaced.
	require.Eventually(t, func() bool { return !alive(before[0]) && p.Idle() == 1 }, time.Minute, 10*time.Millisecond)
	after := p.PIDs()
	res, err = p.Execute(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, jobstate.TimedOut, res.Status)
	require.Equal(t, after, p.PIDs(), "the module was not compiled again")
	require.NoError(t, p.Compile(context.Background(), "hello", modulePath(t, fixtures.Hello)))
	require.Error(t, p.Compile(context.Background(), key, path), "nor pre-compiled")
}

// A pre-compile runs only on an idle child and gives it up to a job that
// needs it: a job on a one-child pool does not wait for the 45 s compile.
func TestPrecompileYieldsToJobs(t *testing.T) {
	t.Parallel()
	p := newPool(t, 1)
	key, path := slowToCompile(t)
	done := make(chan error, 1)
	go func() { done <- p.Compile(context.Background(), key, path) }()
	require.Eventually(t, func() bool { return p.Idle() == 0 }, 10*time.Second, time.Millisecond)

	res, err := p.Execute(context.Background(), request(t, fixtures.Hello))
	require.NoError(t, err)
	require.Equal(t, jobstate.Succeeded, res.Status, "%+v", res)
	require.NoError(t, <-done, "a pre-compile that gave its child up is not a failure")

	// With no idle child, a pre-compile is skipped at once.
	busy := request(t, fixtures.Loop)
	busy.Timeout = 300 * time.Millisecond
	go func() { _, _ = p.Execute(context.Background(), busy) }()
	require.Eventually(t, func() bool { return p.Idle() == 0 }, 10*time.Second, time.Millisecond)
	require.NoError(t, p.Compile(context.Background(), key, path))
}

// A job of the module a pre-compile is compiling waits for it instead of
// taking the child from it and compiling the module again: the pre-compile
// completes in its child, which then runs the job.
func TestAJobWaitsForThePrecompileOfItsModule(t *testing.T) {
	t.Parallel()
	p := newPool(t, 1)
	path := filepath.Join(t.TempDir(), "slowish.wasm")
	require.NoError(t, os.WriteFile(path, fixtures.LocalsTimesBlocks(1000, 2000), 0o600)) // seconds to compile
	key := "slowish-" + t.Name()
	pids := p.PIDs()
	done := make(chan error, 1)
	go func() { done <- p.Compile(context.Background(), key, path) }()
	require.Eventually(t, func() bool { return p.Idle() == 0 }, 10*time.Second, time.Millisecond)

	res, err := p.Execute(context.Background(), executor.Request{ModuleKey: key, ModulePath: path, Function: "_start",
		Timeout: 5 * time.Minute, MemoryLimitMB: 64, MaxOutputBytes: 100})
	require.NoError(t, err)
	require.Equal(t, jobstate.Succeeded, res.Status, "%+v", res)
	require.Positive(t, res.CompileTime, "the wait counts as compiling")
	require.NoError(t, <-done)
	require.Equal(t, pids, p.PIDs(), "the pre-compile's child was not taken from it")
}

// A pre-compile of a module that a job is compiling now is skipped (the
// job's compilation fills the on-disk cache) instead of compiling it a
// second time on another child.
func TestAPrecompileSkipsAModuleAJobIsCompiling(t *testing.T) {
	t.Parallel()
	p := newPool(t, 2)
	key, path := slowToCompile(t)
	jobDone := make(chan executor.Result, 1)
	go func() {
		res, _ := p.Execute(context.Background(), executor.Request{ModuleKey: key, ModulePath: path, Function: "_start",
			Timeout: 3 * time.Second, MemoryLimitMB: 64, MaxOutputBytes: 100})
		jobDone <- res
	}()
	require.Eventually(t, func() bool { return p.Idle() == 1 }, 10*time.Second, time.Millisecond)
	compiled := make(chan error, 1)
	go func() { compiled <- p.Compile(context.Background(), key, path) }()
	select {
	case err := <-compiled:
		require.NoError(t, err)
		require.Equal(t, 1, p.Idle(), "the idle child was left idle")
	case res := <-jobDone:
		t.Fatalf("the pre-compile compiled beside the job, which ended first: %+v", res)
	}
	require.Equal(t, jobstate.TimedOut, (<-jobDone).Status)
}

// A module that needs more memory to compile than a child has ends its
// job failed with a clear message (not sandbox_crashed, not retried), and
// is not compiled again.
func TestCompileOutOfMemoryEndsTheJob(t *testing.T) {
	t.Parallel()
	if raceEnabled {
		t.Skip("a race-instrumented child needs more than 256 MiB for its shadow memory")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	p, err := sandbox.New(sandbox.Config{Command: []string{exe}, Size: 1, CacheDir: t.TempDir(), MemoryLimitMB: 256})
	require.NoError(t, err)
	t.Cleanup(p.Close)
	// 7 MiB of straight-line code: far more than 256 MiB to compile.
	req := shapeRequest(t, "straight", fixtures.StraightLine(7<<20/3))
	req.Timeout = time.Minute
	res, err := p.Execute(context.Background(), req)
	require.NoError(t, err)
	requireFailed(t, res, executor.CodeInstantiate, "compiling the module needs more memory than the sandbox's limit of 256 MiB")

	require.Eventually(t, func() bool { return p.Idle() == 1 }, 30*time.Second, 10*time.Millisecond)
	after := p.PIDs()
	res, err = p.Execute(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, executor.CodeInstantiate, res.ErrorCode)
	require.Equal(t, after, p.PIDs(), "the module was not compiled again")
}

// The worker bounds a module's counts before compiling it, as the upload
// check does (modules uploaded before a limit existed reach it too): the
// 2^30-locals module fails its job at once instead of exhausting the child.
// Shapes within the limits compile and run.
func TestWorkerPrechecksModules(t *testing.T) {
	t.Parallel()
	p := newPool(t, 1)
	res, err := p.Execute(context.Background(), shapeRequest(t, "locals", fixtures.LocalsBomb(1<<30)))
	require.NoError(t, err)
	requireFailed(t, res, executor.CodeInstantiate, "outside the platform's limits")

	for name, bin := range map[string][]byte{
		"nesting":  fixtures.NestedBlocks(1000),
		"br_table": fixtures.WideBrTable(100, 10_000),
		"straight": fixtures.StraightLine(100_000),
		"locals":   fixtures.LocalsBomb(10_000),
	} {
		res, err := p.Execute(context.Background(), shapeRequest(t, name, bin))
		require.NoError(t, err)
		require.Equal(t, jobstate.Succeeded, res.Status, "%s: %+v", name, res)
	}
}

// A table declared without a maximum could grow by 150M ref.func entries
// (1.2 GB in wazero) in a 128 MiB job: tables are capped (1M elements in
// all, wasmmeta.TableElementsCap), so table.grow returns -1 and the guest
// gives up, as it would at its memory limit.
func TestTablesCannotEscapeTheMemoryLimit(t *testing.T) {
	t.Parallel()
	p := newPool(t, 1)
	req := request(t, fixtures.TableGrow)
	req.MemoryLimitMB = 128
	res, err := p.Execute(context.Background(), req)
	require.NoError(t, err)
	requireFailed(t, res, executor.CodeTrap, "unreachable")
}

// Tables past the allowance count against the job's memory limit: a table
// declaring 10M elements (80 MiB) does not fit a 64 MiB job.
func TestLargeTablesCountAgainstTheMemoryLimit(t *testing.T) {
	t.Parallel()
	p := newPool(t, 1)
	// (module (table 10000000 funcref))
	bin := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x04, 0x07, 0x01, 0x70, 0x00, 0x80, 0xad, 0xe2, 0x04}
	res, err := p.Execute(context.Background(), shapeRequest(t, "bigtable", bin))
	require.NoError(t, err)
	requireFailed(t, res, executor.CodeMemoryLimit, "the module's tables need 77 MiB")
}

// A legitimate module that compiles for longer than its first job's
// timeout is compiled anyway, in the background, so that its next job
// runs warm.
func TestACompilationCutShortByItsJobServesTheNext(t *testing.T) {
	t.Parallel()
	p := newPool(t, 1)
	req := request(t, fixtures.GoHello) // ~1 s to compile
	req.ModuleKey += "-" + t.Name()
	req.Timeout = 50 * time.Millisecond
	res, err := p.Execute(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, jobstate.TimedOut, res.Status, "%+v", res)
	require.Contains(t, res.ErrorMessage, "compiling the module took longer")

	require.Eventually(t, func() bool { return p.Idle() == 1 }, 2*time.Minute, 10*time.Millisecond)
	req.Timeout = 10 * time.Second
	res, err = p.Execute(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, jobstate.Succeeded, res.Status, "%+v", res)
	require.Equal(t, "hello from Go\n", string(res.Stdout))
}

// Children run with one processor: a job runs on one goroutine, and more
// processors only add threads to wake (docs/BENCHMARKS.md, "The sandbox
// child, before and after").
func TestChildrenRunWithOneProcessor(t *testing.T) {
	t.Parallel()
	pids := newPool(t, 1).PIDs()
	require.Len(t, pids, 1)
	environ, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pids[0]), "environ"))
	require.NoError(t, err)
	require.Contains(t, strings.Split(string(environ), "\x00"), "GOMAXPROCS=1")
}
