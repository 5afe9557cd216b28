package executor_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/worker/executor"
)

func writeTar(t *testing.T, files map[string]string) (sum, path string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "./lib/", Mode: 0o755, Typeflag: tar.TypeDir}))
	for name, content := range files {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte(content))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	h := sha256.Sum256(buf.Bytes())
	sum = hex.EncodeToString(h[:])
	path = filepath.Join(t.TempDir(), sum+".tar")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
	return sum, path
}

// Two jobs on one engine mount one parsed tree: the cache parses the tar
// once and hands the same *Tree to both.
func TestTwoJobsShareOneParsedAssetTree(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sum, path := writeTar(t, map[string]string{"lib/a.txt": "asset A"})
	trees := executor.NewTreeCache(1 << 20)
	engine, err := executor.NewEngine(ctx, executor.EngineConfig{Trees: trees})
	require.NoError(t, err)
	t.Cleanup(func() { _ = engine.Close(ctx) })
	cm, err := engine.Compile(ctx, "filetool", func() ([]byte, error) { return fixtures.Bytes(fixtures.FileTool), nil })
	require.NoError(t, err)
	for range 2 {
		res := engine.Run(ctx, cm, executor.Request{Function: "_start", MemoryLimitMB: 64, MaxOutputBytes: 1000,
			Args:  []string{"cat", "/share/lib/a.txt"},
			Files: &executor.Files{Assets: []executor.Asset{{Mount: "/share", SHA256: sum, TarPath: path}}}})
		require.Equal(t, jobstate.Succeeded, res.Status, res.ErrorMessage)
		require.Equal(t, "cat /share/lib/a.txt: asset A\n", string(res.Stdout))
	}
	require.Equal(t, 1, trees.Parses(), "the second job found the tree parsed")
	a, err := trees.Get(sum, path)
	require.NoError(t, err)
	b, err := trees.Get(sum, "/nonexistent") // a hit does not read the file
	require.NoError(t, err)
	require.Same(t, a, b)
}

func TestTreeCacheChecksAndBounds(t *testing.T) {
	t.Parallel()
	sum, path := writeTar(t, map[string]string{"a": "0123456789"})
	_, err := executor.NewTreeCache(9).Get(sum, path)
	require.ErrorContains(t, err, "more than 9 bytes", "a tree larger than the cache is refused")
	wrong := strings.Repeat("0", 64)
	if wrong == sum {
		wrong = strings.Repeat("1", 64)
	}
	_, err = executor.NewTreeCache(1<<20).Get(wrong, path)
	require.ErrorContains(t, err, "hash", "the file must have the hash it is named by")

	// Past its bound, the least recently used tree goes.
	c := executor.NewTreeCache(25)
	s2, p2 := writeTar(t, map[string]string{"b": "0123456789"})
	s3, p3 := writeTar(t, map[string]string{"c": "0123456789"})
	for _, k := range [][2]string{{sum, path}, {s2, p2}, {sum, path}, {s3, p3}} {
		_, err := c.Get(k[0], k[1])
		require.NoError(t, err)
	}
	require.Equal(t, 3, c.Parses())
	_, err = c.Get(sum, path) // kept: used after s2
	require.NoError(t, err)
	require.Equal(t, 3, c.Parses())
	_, err = c.Get(s2, p2) // dropped
	require.NoError(t, err)
	require.Equal(t, 4, c.Parses())
}
