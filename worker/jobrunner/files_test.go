package jobrunner_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/worker/executor"
	"github.com/wasmwizard/wasmwizard/worker/jobrunner"
	"github.com/wasmwizard/wasmwizard/worker/modstore"
)

// A job with input files, a module asset tree and collect patterns, through
// the store: the guest sees its files, and a timed-out run's artifacts are
// stored with the job.
func TestJobFilesThroughTheStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, a := testenv.StoreWithAccount(t)
	actor := store.Actor{Name: "t"}
	m := testenv.Module(t, st, a.ID, "m", fixtures.Bytes(fixtures.FileTool))

	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "lib/a.txt", Mode: 0o644, Size: 7, Typeflag: tar.TypeReg}))
	_, err := tw.Write([]byte("asset A"))
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	sum, err := st.PutBlob(ctx, a.ID, tarBuf.Bytes())
	require.NoError(t, err)
	h := sha256.Sum256(tarBuf.Bytes())
	require.Equal(t, hex.EncodeToString(h[:]), sum)
	_, _, err = st.PutModuleAsset(ctx, actor, a.ID, m.ID, store.ModuleAsset{Mount: "/share", SHA256: sum, SizeBytes: 7, Files: 1}, 1<<20)
	require.NoError(t, err)

	j, err := st.CreateJob(ctx, actor, store.Job{
		AccountID: a.ID, ModuleID: m.ID, ModuleSHA256: m.SHA256, Queue: "q", Function: "_start",
		Args: store.JSON[[]string]{V: []string{"cat", "/in/x.txt", "cat", "/share/lib/a.txt", "mkdir", "/out",
			"write", "/out/r.txt", "5", "write", "/out/s.txt", "6", "spin"}},
		TimeoutMS: 3000, MemoryLimitMB: 64, MaxOutputBytes: 1000,
		Files:   []store.JobInput{{Path: "/in/x.txt", Mode: "ro", Content: []byte("input X")}},
		Collect: []string{"/out/*"}, MaxFSBytes: 1 << 20, MaxArtifactBytes: 5,
	})
	require.NoError(t, err)
	require.Equal(t, 1, j.InputCount)
	require.Equal(t, 1, j.AssetCount)

	mods, err := modstore.New(t.TempDir(), st.ModuleContent)
	require.NoError(t, err)
	assets, err := modstore.NewStreamed(t.TempDir(), ".tar", st.WriteBlobTo, 1<<30)
	require.NoError(t, err)
	r := jobrunner.New(jobrunner.Deps{Store: st, Executor: executor.NewInProcess(""), Modules: mods, Assets: assets,
		WorkerID: "test-worker", Log: zap.NewNop()})
	process(t, r, j)

	got, err := st.GetJob(ctx, a.ID, j.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.TimedOut, got.Status)
	require.Equal(t, "cat /in/x.txt: input X\ncat /share/lib/a.txt: asset A\nmkdir /out: ok\nwrite /out/r.txt: ok\nwrite /out/s.txt: ok\n",
		string(got.Stdout))
	require.True(t, got.ArtifactsTruncated, "/out/s.txt did not fit in 5 bytes")
	arts, err := st.JobArtifacts(ctx, a.ID, j.ID)
	require.NoError(t, err)
	require.Len(t, arts, 1)
	require.Equal(t, "/out/r.txt", arts[0].Path)
	var content bytes.Buffer
	_, err = st.WriteBlobTo(ctx, arts[0].SHA256, &content)
	require.NoError(t, err)
	require.Equal(t, "xxxxx", content.String())

	// The prefetch task brings a tree onto the disk.
	pt, err := tasks.NewPrefetchAssets(sum, "q")
	require.NoError(t, err)
	require.NoError(t, r.ProcessPrefetchAssets(ctx, pt))
	p, err := assets.Path(ctx, h[:])
	require.NoError(t, err)
	require.FileExists(t, p)
}
