package app

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/config"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
)

// A step of Start that fails stops what the steps before it started: here
// the last one, the health listener, finds its port taken after Postgres,
// Redis, the heartbeat, the sandbox pool, the job and webhook servers, the
// doorbell and the reconciler are running.
func TestAFailedStartLeavesNothingRunning(t *testing.T) {
	// Not parallel: it compares the process's goroutines before and after.
	exe, err := os.Executable()
	require.NoError(t, err)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = taken.Close() })
	dbURL, ns := testenv.DB(t), testenv.Namespace(t)
	start := func(adjust func(*config.Worker)) error {
		cfg := config.Worker{
			Common:   config.Common{DatabaseURL: dbURL, RedisURL: testenv.RedisURL(), QueueNamespace: ns, DBMaxOpenConns: 4},
			HTTPAddr: taken.Addr().String(), Concurrency: 1, DataDir: t.TempDir(), ShutdownTimeout: time.Second,
			ReconcileInterval: time.Second, HeartbeatInterval: 100 * time.Millisecond, Lease: time.Second,
			SandboxCommand: []string{exe},
		}
		adjust(&cfg)
		w, err := Start(context.Background(), cfg, zap.NewNop())
		if err == nil {
			w.Shutdown()
		}
		return err
	}
	// A first start sets up what the process keeps for good (go-redis's and
	// net/http's shared state); the second must add nothing.
	require.ErrorContains(t, start(func(*config.Worker) {}), "WIZARD_WORKER_HTTP_ADDR")
	before := testenv.Goroutines()
	require.ErrorContains(t, start(func(*config.Worker) {}), "address already in use")
	testenv.NoGoroutinesLeft(t, before)

	// An earlier step: the data directory cannot be made.
	notADir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notADir, nil, 0o600))
	require.ErrorContains(t, start(func(c *config.Worker) { c.DataDir = notADir }), "WIZARD_DATA_DIR")
	testenv.NoGoroutinesLeft(t, before)
}
