package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/platformtest/testmain"
	"github.com/wasmwizard/wasmwizard/shared/config"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/worker/executor"
)

func TestMain(m *testing.M) { testmain.Main(m) }

// startWorker starts a worker whose sandbox children start only while the
// returned marker file exists.
func startWorker(t *testing.T) (*Worker, string) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	marker := filepath.Join(t.TempDir(), "may-start")
	require.NoError(t, os.WriteFile(marker, nil, 0o600))
	w, err := Start(context.Background(), config.Worker{
		Common: config.Common{DatabaseURL: testenv.DB(t), RedisURL: testenv.RedisURL(),
			QueueNamespace: testenv.Namespace(t), DBMaxOpenConns: 4},
		HTTPAddr: "127.0.0.1:0", Concurrency: 1, DataDir: t.TempDir(), PollInterval: 50 * time.Millisecond,
		ShutdownTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond, Lease: time.Second,
		SandboxCommand: []string{"/bin/sh", "-c", `test -e "$0" && exec "$1"`, marker, exe},
	}, zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(w.Shutdown)
	return w, marker
}

// healthz returns /healthz's status code and failing checks.
func healthz(t *testing.T, w *Worker) (int, map[string]string) {
	t.Helper()
	res, err := http.Get("http://" + w.Addr() + "/healthz")
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var body struct{ Checks map[string]string }
	require.NoError(t, json.Unmarshal(b, &body), "%s", b)
	return res.StatusCode, body.Checks
}

func TestHealthzFailsWhenTheQueueServerStops(t *testing.T) {
	t.Parallel()
	w, _ := startWorker(t)
	code, _ := healthz(t, w)
	require.Equal(t, http.StatusOK, code)

	w.srv.shutdown()
	code, checks := healthz(t, w)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, checks, "queue_server")
}

func TestHealthzFailsWhenTheHeartbeatFails(t *testing.T) {
	t.Parallel()
	w, _ := startWorker(t)
	// Its row registered: the reconciler sees it alive.
	ws, err := w.store.Workers(context.Background())
	require.NoError(t, err)
	require.Len(t, ws, 1)
	require.Equal(t, w.ID, ws[0].ID)

	code, _ := healthz(t, w)
	require.Equal(t, http.StatusOK, code)

	// Beats fail (its database connections are gone) for longer than the
	// lease.
	require.NoError(t, w.store.Close())
	require.Eventually(t, func() bool {
		code, checks := healthz(t, w)
		_, ok := checks["heartbeat"]
		return code == http.StatusServiceUnavailable && ok
	}, 30*time.Second, 50*time.Millisecond)
}

func TestHealthzFailsWhenSandboxChildrenCannotStart(t *testing.T) {
	t.Parallel()
	w, marker := startWorker(t)
	require.NoError(t, os.Remove(marker))
	for _, pid := range w.pool.PIDs() {
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	}
	mod := filepath.Join(t.TempDir(), "hello.wasm")
	require.NoError(t, os.WriteFile(mod, fixtures.Bytes(fixtures.Hello), 0o600))
	res, err := w.pool.Execute(context.Background(), executor.Request{ModuleKey: "hello", ModulePath: mod,
		Function: "_start", Timeout: 5 * time.Second, MemoryLimitMB: 64, MaxOutputBytes: 1 << 10})
	require.NoError(t, err)
	require.Equal(t, executor.CodeSandboxCrashed, res.ErrorCode)
	require.Eventually(t, func() bool {
		code, checks := healthz(t, w)
		_, ok := checks["sandbox"]
		return code == http.StatusServiceUnavailable && ok
	}, 30*time.Second, 50*time.Millisecond)

	require.NoError(t, os.WriteFile(marker, nil, 0o600))
	require.Eventually(t, func() bool {
		code, _ := healthz(t, w)
		return code == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)
}

// A worker registers before it takes jobs and marks itself stopped when it
// shuts down, so the reconciler need not wait for its lease.
func TestWorkerRegistersAndStops(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testenv.DB(t)
	st := testenv.OpenStore(t, dbURL, 2)
	w, err := Start(ctx, config.Worker{
		Common: config.Common{DatabaseURL: dbURL, RedisURL: testenv.RedisURL(),
			QueueNamespace: testenv.Namespace(t), DBMaxOpenConns: 4},
		HTTPAddr: "127.0.0.1:0", Concurrency: 1, DataDir: t.TempDir(), ShutdownTimeout: time.Second,
		Executor: "inprocess",
	}, zap.NewNop())
	require.NoError(t, err)
	ws, err := st.Workers(ctx)
	require.NoError(t, err)
	require.Len(t, ws, 1)
	require.Equal(t, w.ID, ws[0].ID)
	require.Nil(t, ws[0].StoppedAt)

	w.Shutdown()
	ws, err = st.Workers(ctx)
	require.NoError(t, err)
	require.Len(t, ws, 1)
	require.NotNil(t, ws[0].StoppedAt)
}
