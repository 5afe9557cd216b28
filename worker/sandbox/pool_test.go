package sandbox_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/platformtest/testmain"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/worker/executor"
	"github.com/wasmwizard/wasmwizard/worker/sandbox"
)

// The test binary doubles as the sandbox child.
func TestMain(m *testing.M) { testmain.Main(m) }

func newPool(t *testing.T, size int) *sandbox.Pool {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	// Compiling a 2.2 MB module takes ~1 s, but ~36 s in a race-instrumented child.
	// The interruptible engine (jobs that collect files) compiles the 2.8 MB
	// filetool module in over a minute under the race detector.
	p, err := sandbox.New(sandbox.Config{Command: []string{exe}, Size: size, CacheDir: t.TempDir(), MemoryLimitMB: 1536,
		PrecompileTimeout: 2 * time.Minute, CompileTimeout: 5 * time.Minute})
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

func modulePath(t *testing.T, fixture string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), fixture+".wasm")
	require.NoError(t, os.WriteFile(path, fixtures.Bytes(fixture), 0o600))
	return path
}

func request(t *testing.T, fixture string) executor.Request {
	return executor.Request{ModuleKey: fixture, ModulePath: modulePath(t, fixture), Function: "_start",
		Timeout: 5 * time.Second, MemoryLimitMB: 64, MaxOutputBytes: 1 << 20}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestRunsJobsInChildren(t *testing.T) {
	t.Parallel()
	p := newPool(t, 2)
	for range 3 {
		res, err := p.Execute(context.Background(), request(t, fixtures.Hello))
		require.NoError(t, err)
		require.Equal(t, jobstate.Succeeded, res.Status, "%+v", res)
		require.Equal(t, "hello, world\n", string(res.Stdout))
	}
	req := request(t, fixtures.Echo)
	req.Args, req.Env, req.Stdin = []string{"x"}, map[string]string{"GREETING": "g"}, []byte("in")
	res, err := p.Execute(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, "x\nGREETING=g\nin", string(res.Stdout))
	require.Equal(t, "echo done\n", string(res.Stderr))
}

func TestTimeoutKillsTheChild(t *testing.T) {
	t.Parallel()
	p := newPool(t, 1)
	before := p.PIDs()
	require.Len(t, before, 1)
	req := request(t, fixtures.Loop)
	req.Timeout = 100 * time.Millisecond
	res, err := p.Execute(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, jobstate.TimedOut, res.Status)
	require.False(t, alive(before[0]), "the child that ran the loop is gone")

	// The pool replaced it and keeps working.
	res, err = p.Execute(context.Background(), request(t, fixtures.Hello))
	require.NoError(t, err)
	require.Equal(t, jobstate.Succeeded, res.Status)
	require.NotEqual(t, before, p.PIDs())
}

func TestCancelKillsTheChild(t *testing.T) {
	t.Parallel()
	p := newPool(t, 1)
	before := p.PIDs()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := request(t, fixtures.TalkLoop)
	col := newCollector("partial err\n")
	req.Output = col.hook
	go func() {
		select {
		case <-col.seen: // the guest runs in the child, and spins now
		case <-ctx.Done():
		}
		cancel()
	}()
	res, err := p.Execute(ctx, req)
	require.NoError(t, err)
	require.Equal(t, jobstate.Cancelled, res.Status)
	require.False(t, alive(before[0]))
}

func TestACrashedChildEndsItsJobAndIsReplaced(t *testing.T) {
	t.Parallel()
	p := newPool(t, 1)
	pid := p.PIDs()[0]
	req := request(t, fixtures.TalkLoop)
	col := newCollector("partial err\n")
	req.Output = col.hook
	ran := make(chan struct{})
	defer close(ran)
	go func() {
		select {
		case <-col.seen: // the guest runs in the child, and spins now
			_ = syscall.Kill(pid, syscall.SIGKILL)
		case <-ran:
		}
	}()
	res, err := p.Execute(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, jobstate.Failed, res.Status)
	require.Equal(t, executor.CodeSandboxCrashed, res.ErrorCode)

	res, err = p.Execute(context.Background(), request(t, fixtures.Hello))
	require.NoError(t, err)
	require.Equal(t, jobstate.Succeeded, res.Status)
}

func TestCompileOnlyWarmsTheCache(t *testing.T) {
	t.Parallel()
	p := newPool(t, 1)
	path := modulePath(t, fixtures.GoHello)
	require.NoError(t, p.Compile(context.Background(), "gohello", path))
	res, err := p.Execute(context.Background(), executor.Request{ModuleKey: "gohello", ModulePath: path,
		Function: "_start", Timeout: 5 * time.Second, MemoryLimitMB: 64, MaxOutputBytes: 100})
	require.NoError(t, err)
	require.Equal(t, "hello from Go\n", string(res.Stdout))
	require.Error(t, p.Compile(context.Background(), "junk", modulePath(t, fixtures.Hello)+"-missing"))
	require.Len(t, p.PIDs(), 1, "a missing module file does not cost a child")
}

// A worker restart (a new pool on the same cache directory) runs a large
// module from wazero's on-disk cache: nothing is compiled again, so nothing
// new is written to the cache.
func TestCompiledCodeSurvivesARestart(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	require.NoError(t, err)
	cache := t.TempDir()
	path := modulePath(t, fixtures.GoHello) // 2.2 MB
	req := executor.Request{ModuleKey: "gohello", ModulePath: path, Function: "_start",
		Timeout: 2 * time.Minute, MemoryLimitMB: 64, MaxOutputBytes: 100}

	first, err := sandbox.New(sandbox.Config{Command: []string{exe}, Size: 1, CacheDir: cache})
	require.NoError(t, err)
	res, err := first.Execute(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, jobstate.Succeeded, res.Status)
	require.Positive(t, res.CompileTime, "the first run compiled")
	res, err = first.Execute(context.Background(), req)
	require.NoError(t, err)
	require.Zero(t, res.CompileTime, "the second run found it in the child's cache")
	first.Close()
	before := snapshot(t, cache)
	require.NotEmpty(t, before)

	second, err := sandbox.New(sandbox.Config{Command: []string{exe}, Size: 1, CacheDir: cache})
	require.NoError(t, err)
	t.Cleanup(second.Close)
	res, err = second.Execute(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, "hello from Go\n", string(res.Stdout))
	require.Equal(t, before, snapshot(t, cache), "the restarted worker compiled nothing")
}

func snapshot(t *testing.T, dir string) map[string]time.Time {
	t.Helper()
	files := map[string]time.Time{}
	require.NoError(t, filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			files[path] = info.ModTime()
		}
		return err
	}))
	return files
}

func TestHealthyReportsChildrenThatCannotStart(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	require.NoError(t, err)
	// The child starts only while the marker file exists.
	marker := filepath.Join(t.TempDir(), "may-start")
	require.NoError(t, os.WriteFile(marker, nil, 0o600))
	p, err := sandbox.New(sandbox.Config{Size: 1, CacheDir: t.TempDir(),
		Command: []string{"/bin/sh", "-c", `test -e "$0" && exec "$1"`, marker, exe}})
	require.NoError(t, err)
	t.Cleanup(p.Close)
	require.NoError(t, p.Healthy())

	require.NoError(t, os.Remove(marker))
	require.NoError(t, syscall.Kill(p.PIDs()[0], syscall.SIGKILL))
	res, err := p.Execute(context.Background(), request(t, fixtures.Hello))
	require.NoError(t, err)
	require.Equal(t, executor.CodeSandboxCrashed, res.ErrorCode)
	require.Eventually(t, func() bool { return p.Healthy() != nil }, 30*time.Second, 20*time.Millisecond,
		"replacements that cannot start make the pool unhealthy")
	require.ErrorContains(t, p.Healthy(), "could not be started")

	require.NoError(t, os.WriteFile(marker, nil, 0o600))
	require.Eventually(t, func() bool { return p.Healthy() == nil }, 30*time.Second, 20*time.Millisecond,
		"a replacement that starts makes it healthy again")
	res, err = p.Execute(context.Background(), request(t, fixtures.Hello))
	require.NoError(t, err)
	require.Equal(t, jobstate.Succeeded, res.Status)

	p.Close()
	require.Error(t, p.Healthy())
}

// requirePartialOutput requires res to hold what fixtures.TalkLoop writes
// before it spins.
func requirePartialOutput(t *testing.T, res executor.Result) {
	t.Helper()
	require.Equal(t, "partial out\n", string(res.Stdout))
	require.Equal(t, "partial err\n", string(res.Stderr))
}

// collector records what an Output hook receives and signals when a
// stream has received want.
type collector struct {
	mu     sync.Mutex
	chunks []string
	out    [3][]byte
	seen   chan struct{}
	want   string
}

func newCollector(want string) *collector {
	return &collector{seen: make(chan struct{}), want: want}
}

func (c *collector) hook(s executor.Stream, chunk []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.chunks = append(c.chunks, s.String()+":"+string(chunk))
	c.out[s] = append(c.out[s], chunk...)
	if c.want != "" && strings.Contains(string(c.out[executor.StreamStderr]), c.want) {
		close(c.seen)
		c.want = ""
	}
}

// wait waits until the guest's output reached the hook, while the guest
// spins (it makes no host call after its writes).
func (c *collector) wait(t *testing.T) {
	t.Helper()
	select {
	case <-c.seen:
	case <-time.After(30 * time.Second):
		t.Fatal("the guest's output did not reach the Output hook")
	}
}

func TestATimedOutJobKeepsItsOutput(t *testing.T) {
	t.Parallel()
	p := newPool(t, 1)
	req := request(t, fixtures.TalkLoop)
	req.Timeout = 300 * time.Millisecond
	col := newCollector("")
	req.Output = col.hook
	res, err := p.Execute(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, jobstate.TimedOut, res.Status)
	requirePartialOutput(t, res)
	require.Equal(t, []string{"stdout:partial out\n", "stderr:partial err\n"}, col.chunks)
}

// The output reaches the hook while the guest still spins; the cancel that
// follows keeps it.
func TestACancelledJobKeepsItsOutput(t *testing.T) {
	t.Parallel()
	p := newPool(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	res := interruptedTalkLoop(ctx, t, p, cancel)
	require.Equal(t, jobstate.Cancelled, res.Status)
	requirePartialOutput(t, res)
}

func TestACrashedJobKeepsItsOutput(t *testing.T) {
	t.Parallel()
	p := newPool(t, 1)
	pid := p.PIDs()[0]
	res := interruptedTalkLoop(context.Background(), t, p, func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	require.Equal(t, executor.CodeSandboxCrashed, res.ErrorCode)
	requirePartialOutput(t, res)
}

// interruptedTalkLoop runs fixtures.TalkLoop on p under ctx and calls
// interrupt once its output has reached the Output hook, while it spins.
func interruptedTalkLoop(ctx context.Context, t *testing.T, p *sandbox.Pool, interrupt func()) executor.Result {
	t.Helper()
	req := request(t, fixtures.TalkLoop)
	req.Timeout = time.Minute
	col := newCollector("partial err\n")
	req.Output = col.hook
	go func() {
		col.wait(t)
		interrupt()
	}()
	res, err := p.Execute(ctx, req)
	require.NoError(t, err)
	return res
}

// Output past the ring's size (the child waits for the worker to drain it)
// arrives whole and in order up to the cap, exact to the byte.
func TestStreamedOutputIsCappedExactly(t *testing.T) {
	t.Parallel()
	p := newPool(t, 1)
	for _, tc := range []struct {
		limit int
		cut   bool
	}{{1 << 20, false}, {1<<20 - 1, true}, {0, true}, {777, true}} {
		req := request(t, fixtures.Spam)
		req.MaxOutputBytes = tc.limit
		col := newCollector("")
		req.Output = col.hook
		res, err := p.Execute(context.Background(), req)
		require.NoError(t, err)
		require.Equal(t, jobstate.Succeeded, res.Status, "%+v", res.ErrorMessage)
		require.Equal(t, strings.Repeat("x", tc.limit), string(res.Stdout), "limit %d", tc.limit)
		require.Equal(t, tc.cut, res.StdoutTruncated, "limit %d", tc.limit)
		require.Equal(t, res.Stdout, col.out[executor.StreamStdout], "the hook saw what the result holds")
	}

	// 3 MiB of a 4 GiB flood: twelve times the ring.
	req := request(t, fixtures.Flood)
	req.MaxOutputBytes = 3 << 20
	req.Timeout = time.Minute
	col := newCollector("")
	req.Output = col.hook
	res, err := p.Execute(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, jobstate.Succeeded, res.Status, res.ErrorMessage)
	require.Len(t, res.Stdout, 3<<20)
	require.True(t, res.StdoutTruncated)
	require.Equal(t, res.Stdout, col.out[executor.StreamStdout])
}

func TestStreamedOutputKeepsTheOrderOfWrites(t *testing.T) {
	t.Parallel()
	p := newPool(t, 1)
	req := request(t, fixtures.Echo)
	req.Args, req.Stdin = []string{"a", "b"}, []byte("stdin")
	col := newCollector("")
	req.Output = col.hook
	res, err := p.Execute(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, "a b\nGREETING=\nstdin", string(res.Stdout))
	require.Equal(t, "echo done\n", string(res.Stderr))
	// One chunk per write of the guest, in the order written.
	require.Equal(t, []string{"stdout:a", "stdout: ", "stdout:b", "stdout:\n", "stdout:GREETING=", "stdout:\n",
		"stdout:stdin", "stderr:echo done\n"}, col.chunks)
}
