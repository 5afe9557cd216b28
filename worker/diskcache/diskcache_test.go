package diskcache_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/worker/diskcache"
)

func write(t *testing.T, path string, size int, used time.Time) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, make([]byte, size), 0o600))
	require.NoError(t, os.Chtimes(path, used, used))
}

func TestTrimRemovesTheLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Now()
	sub := filepath.Join(dir, "wazero-v1-amd64-linux")
	write(t, filepath.Join(sub, "old"), 100, now.Add(-3*time.Hour))
	write(t, filepath.Join(sub, "older"), 100, now.Add(-4*time.Hour))
	write(t, filepath.Join(sub, "recent"), 100, now.Add(-time.Minute))
	write(t, filepath.Join(sub, "new"), 100, now)
	// A temporary file being written stays; one a crash left goes.
	write(t, filepath.Join(sub, "new.123.tmp"), 10, now)
	write(t, filepath.Join(sub, "lost.456.tmp"), 10, now.Add(-2*diskcache.TmpAge))
	// Reading an entry (a newer access time) keeps it.
	require.NoError(t, os.Chtimes(filepath.Join(sub, "older"), now.Add(-time.Second), now.Add(-4*time.Hour)))

	res, err := diskcache.Trim(dir, 250, now)
	require.NoError(t, err)
	require.Equal(t, 3, res.Removed)
	require.Equal(t, int64(210), res.Bytes)
	for name, kept := range map[string]bool{"old": false, "older": true, "recent": false, "new": true,
		"new.123.tmp": true, "lost.456.tmp": false} {
		_, err := os.Stat(filepath.Join(sub, name))
		require.Equal(t, kept, err == nil, name)
	}
	res, err = diskcache.Trim(dir, 1<<20, now)
	require.NoError(t, err)
	require.Zero(t, res.Removed)
}

// Trimming wazero's cache under a runtime that uses it only costs a
// compilation: the module compiles again and its entry comes back.
func TestTrimUnderWazero(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	compile := func() {
		cache, err := wazero.NewCompilationCacheWithDir(dir)
		require.NoError(t, err)
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache))
		defer func() { _ = rt.Close(ctx) }()
		_, err = rt.CompileModule(ctx, fixtures.Bytes(fixtures.Reactor))
		require.NoError(t, err)
	}
	compile()
	res, err := diskcache.Trim(dir, 1<<30, time.Now())
	require.NoError(t, err)
	require.Equal(t, 1, res.Files)
	res, err = diskcache.Trim(dir, 0, time.Now())
	require.NoError(t, err)
	require.Equal(t, 1, res.Removed)
	compile()
	res, err = diskcache.Trim(dir, 1<<30, time.Now())
	require.NoError(t, err)
	require.Equal(t, 1, res.Files)
}
