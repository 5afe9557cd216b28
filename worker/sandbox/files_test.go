package sandbox_test

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
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/worker/executor"
)

// assetTar writes a tar of files to disk and returns it as an asset.
func assetTar(t *testing.T, mount string, files map[string]string) executor.Asset {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, content := range files {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte(content))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	sum := sha256.Sum256(buf.Bytes())
	path := filepath.Join(t.TempDir(), hex.EncodeToString(sum[:])+".tar")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
	return executor.Asset{Mount: mount, SHA256: hex.EncodeToString(sum[:]), TarPath: path}
}

func fileJob(t *testing.T, files *executor.Files, args ...string) executor.Request {
	req := request(t, fixtures.FileTool)
	req.Args, req.Files, req.Timeout = args, files, 2*time.Minute
	return req
}

// The wiring of a job's files through the sandbox child: inputs, modes,
// the asset tree, the byte cap (exact, and the job goes on), preopens and
// artifacts.
func TestJobFilesInTheSandbox(t *testing.T) {
	t.Parallel()
	if raceEnabled {
		// A race-instrumented child takes minutes to compile the 2.8 MB Go
		// fixture (twice: the interruptible engine too) on a loaded machine.
		// Under -race the WASI testsuite run through the platform (platformtest)
		// covers inputs and preopens in the sandbox with small modules.
		t.Skip("the Go fixture compiles too slowly under the race detector")
	}
	p := newPool(t, 1)
	ctx := context.Background()
	share := assetTar(t, "/share", map[string]string{"lib/a.txt": "asset A"})
	files := func() *executor.Files {
		return &executor.Files{
			Inputs: []executor.Input{{Path: "/in/ro.txt", Mode: "ro", Content: []byte("read only")},
				{Path: "/in/rw.txt", Mode: "rw", Content: []byte("writable")}},
			Assets: []executor.Asset{share}, MaxFSBytes: 2500, MaxArtifactBytes: 1 << 20,
		}
	}

	t.Run("inputs, modes, asset tree, ENOSPC exact", func(t *testing.T) {
		res, err := p.Execute(ctx, fileJob(t, files(),
			"cat", "/in/ro.txt", "cat", "/in/rw.txt", "cat", "/share/lib/a.txt",
			"write", "/in/ro.txt", "1", "write", "/in/rw.txt", "3", "write", "/share/lib/a.txt", "1",
			"write", "/share/new", "1", "mkdir", "/tmp", "fill", "/tmp/f", "rm", "/tmp/f", "write", "/tmp/g", "10", "ls", "/in"))
		require.NoError(t, err)
		require.Equal(t, jobstate.Succeeded, res.Status, "%s %s", res.ErrorMessage, res.Stderr)
		require.Equal(t, strings.Join([]string{
			"cat /in/ro.txt: read only",
			"cat /in/rw.txt: writable",
			"cat /share/lib/a.txt: asset A",
			"write /in/ro.txt: EACCES",
			"write /in/rw.txt: ok",
			"write /share/lib/a.txt: EROFS",
			"write /share/new: EROFS",
			"mkdir /tmp: ok",
			// 3 bytes of /in/rw.txt are charged: 2497 left, to the byte.
			// wazero v1.12 has no ENOSPC: the guest sees EIO.
			"fill /tmp/f: 2497 EIO",
			"rm /tmp/f: ok",
			"write /tmp/g: ok",
			"ls /in: ro.txt,rw.txt ok",
		}, "\n")+"\n", string(res.Stdout))
	})

	t.Run("preopens exactly as named", func(t *testing.T) {
		f := files()
		f.Preopens = []string{"/in"}
		res, err := p.Execute(ctx, fileJob(t, f, "cat", "/in/ro.txt", "cat", "/share/lib/a.txt"))
		require.NoError(t, err)
		// No preopen holds /share: Go's wasip1 runtime answers EBADF.
		require.Equal(t, "cat /in/ro.txt: read only\ncat /share/lib/a.txt: EBADF\n", string(res.Stdout))
	})

	t.Run("artifacts, truncated exactly to the byte", func(t *testing.T) {
		for _, tc := range []struct {
			limit int64
			want  []string
			cut   bool
		}{{149, []string{"/out/a", "/out/b"}, false}, {148, []string{"/out/a"}, true}, {49, []string{"/out/b"}, true}, {0, nil, true}} {
			f := files()
			f.Collect, f.MaxArtifactBytes = []string{"/out/**"}, tc.limit
			res, err := p.Execute(ctx, fileJob(t, f, "mkdir", "/out", "write", "/out/a", "100", "write", "/out/b", "49", "write", "/other", "5"))
			require.NoError(t, err)
			require.Equal(t, jobstate.Succeeded, res.Status, res.ErrorMessage)
			var got []string
			for _, a := range res.Artifacts {
				got = append(got, a.Path)
				require.Equal(t, strings.Repeat("x", map[string]int{"/out/a": 100, "/out/b": 49}[a.Path]), string(a.Content))
			}
			require.Equal(t, tc.want, got, "limit %d", tc.limit)
			require.Equal(t, tc.cut, res.ArtifactsTruncated, "limit %d", tc.limit)
		}
	})

	t.Run("a timed-out job keeps its artifacts and output", func(t *testing.T) {
		f := files()
		f.Collect = []string{"/out/*"}
		// Warm: the first job that collects compiles the module for the
		// interruptible engine.
		res, err := p.Execute(ctx, fileJob(t, f, "mkdir", "/out", "write", "/out/warm", "1"))
		require.NoError(t, err)
		require.Equal(t, jobstate.Succeeded, res.Status, res.ErrorMessage)

		req := fileJob(t, files(), "mkdir", "/out", "write", "/out/a.txt", "7", "spin")
		req.Files.Collect = []string{"/out/*"}
		req.Timeout = 500 * time.Millisecond
		res, err = p.Execute(ctx, req)
		require.NoError(t, err)
		require.Equal(t, jobstate.TimedOut, res.Status, res.ErrorMessage)
		require.Equal(t, "mkdir /out: ok\nwrite /out/a.txt: ok\n", string(res.Stdout))
		require.Len(t, res.Artifacts, 1)
		require.Equal(t, executor.Artifact{Path: "/out/a.txt", Content: []byte("xxxxxxx")}, res.Artifacts[0])
		require.Contains(t, res.ErrorMessage, "timeout of 500ms")
	})

	t.Run("a cancelled job keeps its artifacts", func(t *testing.T) {
		req := fileJob(t, files(), "mkdir", "/out", "write", "/out/c.txt", "3", "spin")
		req.Files.Collect = []string{"/out/*"}
		col := newCollector("")
		wrote := make(chan struct{})
		req.Output = func(s executor.Stream, chunk []byte) {
			col.hook(s, chunk)
			if strings.Contains(string(chunk), "write /out/c.txt") {
				close(wrote)
			}
		}
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			<-wrote
			cancel()
		}()
		res, err := p.Execute(cctx, req)
		require.NoError(t, err)
		require.Equal(t, jobstate.Cancelled, res.Status, res.ErrorMessage)
		require.Equal(t, []executor.Artifact{{Path: "/out/c.txt", Content: []byte("xxx")}}, res.Artifacts)
	})
}
