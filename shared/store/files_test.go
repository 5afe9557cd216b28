package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// pattern returns n bytes that differ from chunk to chunk.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i/7) ^ seed
	}
	return b
}

func TestBlobsRoundTripAcrossChunks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	for _, n := range []int{0, 1, store.ChunkSize - 1, store.ChunkSize, store.ChunkSize + 1, 2*store.ChunkSize + 5} {
		content := pattern(n, byte(n))
		sum, err := b.st.PutBlob(ctx, b.account.ID, content)
		require.NoError(t, err)
		require.Equal(t, hexSum(content), sum)
		// Stored again: the same blob.
		again, err := b.st.PutBlob(ctx, b.account.ID, content)
		require.NoError(t, err)
		require.Equal(t, sum, again)

		var out bytes.Buffer
		w, err := b.st.WriteBlobTo(ctx, sum, &out)
		require.NoError(t, err)
		require.Equal(t, int64(n), w)
		require.True(t, bytes.Equal(content, out.Bytes()), "size %d", n)

		r, err := b.st.OpenBlob(ctx, b.account.ID, sum)
		require.NoError(t, err)
		require.Equal(t, int64(n), r.Size())
		all, err := io.ReadAll(r)
		require.NoError(t, err)
		require.True(t, bytes.Equal(content, all))
		if n > 10 {
			_, err = r.Seek(int64(n-10), io.SeekStart)
			require.NoError(t, err)
			tail, err := io.ReadAll(r)
			require.NoError(t, err)
			require.Equal(t, content[n-10:], tail)
		}
	}
	var rows int
	require.NoError(t, b.st.DB().GetContext(ctx, &rows, `SELECT count(*) FROM file_blobs WHERE account_id = $1`, b.account.ID))
	require.Equal(t, 6, rows, "one row per distinct content, none pending")
}

func TestBlobWriterStreamsAndDeduplicates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	content := pattern(3*store.ChunkSize+17, 3)
	write := func() string {
		w := b.st.NewBlobWriter(ctx, b.account.ID)
		for off := 0; off < len(content); off += 100_000 {
			_, err := w.Write(content[off:min(off+100_000, len(content))])
			require.NoError(t, err)
		}
		sum, size, err := w.Commit()
		require.NoError(t, err)
		require.Equal(t, int64(len(content)), size)
		return sum
	}
	first, second := write(), write()
	require.Equal(t, hexSum(content), first)
	require.Equal(t, first, second)
	var rows, chunks int
	require.NoError(t, b.st.DB().GetContext(ctx, &rows, `SELECT count(*) FROM file_blobs WHERE account_id = $1`, b.account.ID))
	require.Equal(t, 1, rows, "the second copy was dropped")
	require.NoError(t, b.st.DB().GetContext(ctx, &chunks, `SELECT count(*) FROM file_blob_chunks`))
	require.Equal(t, 4, chunks)

	aborted := b.st.NewBlobWriter(ctx, b.account.ID)
	_, err := aborted.Write(pattern(store.ChunkSize+1, 9))
	require.NoError(t, err)
	aborted.Abort()
	require.NoError(t, b.st.DB().GetContext(ctx, &rows, `SELECT count(*) FROM file_blobs`))
	require.Equal(t, 1, rows)

	_, err = b.st.WriteBlobTo(ctx, hexSum([]byte("nothing")), io.Discard)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
}

func TestJobInputsTravelWithTheJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	big := pattern(store.ChunkSize+3, 1)
	j := b.jobWith(t, func(j *store.Job) {
		j.Files = []store.JobInput{
			{Path: "/in/b.txt", Mode: "ro", Content: []byte("bee")},
			{Path: "/in/a.txt", Content: []byte("bee")},
			{Path: "/in/big", Mode: "rw", Content: big},
			{Path: "/in/empty", Content: []byte{}},
		}
		j.Preopens = []string{"/", "data"}
		j.Collect = []string{"/out/**"}
		j.MaxFSBytes, j.MaxArtifactBytes = 1000, 500
	})
	require.Equal(t, 4, j.InputCount)
	require.Equal(t, []string{"/", "data"}, []string(j.Preopens))

	claimed, err := b.st.ClaimJob(ctx, j.ID, "w1")
	require.NoError(t, err)
	require.Equal(t, 4, claimed.InputCount)
	require.Equal(t, []string{"/out/**"}, []string(claimed.Collect))
	require.Equal(t, int64(1000), claimed.MaxFSBytes)
	require.Equal(t, int64(500), claimed.MaxArtifactBytes)
	require.Equal(t, 0, claimed.AssetCount)

	in, err := b.st.JobInputs(ctx, j.ID)
	require.NoError(t, err)
	require.Len(t, in, 4)
	require.Equal(t, store.JobInput{Path: "/in/a.txt", Mode: "rw", Content: []byte("bee")}, in[0])
	require.Equal(t, store.JobInput{Path: "/in/b.txt", Mode: "ro", Content: []byte("bee")}, in[1])
	require.Equal(t, "/in/big", in[2].Path)
	require.True(t, bytes.Equal(big, in[2].Content))
	require.Equal(t, "/in/empty", in[3].Path)
	require.Empty(t, in[3].Content)

	// A job without files has none, and reads none.
	plain := b.job(t)
	require.Equal(t, 0, plain.InputCount)
	require.Empty(t, plain.Preopens)
	none, err := b.st.JobInputs(ctx, plain.ID)
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestJobInputsWithIdempotencyKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	j := b.request()
	j.Files = []store.JobInput{{Path: "/x", Content: []byte("x")}}
	created, replayed, err := b.st.CreateJobIdempotent(ctx, store.Actor{Name: "test"}, j, "k", []byte("h"))
	require.NoError(t, err)
	require.False(t, replayed)
	again, replayed, err := b.st.CreateJobIdempotent(ctx, store.Actor{Name: "test"}, j, "k", []byte("h"))
	require.NoError(t, err)
	require.True(t, replayed)
	require.Equal(t, created.ID, again.ID)
	in, err := b.st.JobInputs(ctx, created.ID)
	require.NoError(t, err)
	require.Equal(t, []store.JobInput{{Path: "/x", Mode: "rw", Content: []byte("x")}}, in)
}

func TestArtifactsSavedAndFinished(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	j := b.jobWith(t, func(j *store.Job) { j.Collect = []string{"/out/*"} })
	_, err := b.st.ClaimJob(ctx, j.ID, "w1")
	require.NoError(t, err)
	files := []store.ArtifactFile{{Path: "/out/b", Content: []byte("bbb")}, {Path: "/out/a", Content: []byte("a")}}
	require.NoError(t, b.st.SaveArtifacts(ctx, j.ID, files))
	// Saved again (a retried save): the same rows.
	files[0].Content = []byte("BBBB")
	require.NoError(t, b.st.SaveArtifacts(ctx, j.ID, files))
	ok, err := b.st.FinishJob(ctx, j.ID, 1, "w1", jobstate.Outcome{Status: jobstate.TimedOut, ArtifactsTruncated: true})
	require.NoError(t, err)
	require.True(t, ok)

	got, err := b.st.GetJobView(ctx, b.account.ID, j.ID)
	require.NoError(t, err)
	require.True(t, got.ArtifactsTruncated)
	as, err := b.st.JobArtifacts(ctx, b.account.ID, j.ID)
	require.NoError(t, err)
	require.Equal(t, []store.Artifact{
		{Path: "/out/a", SizeBytes: 1, SHA256: hexSum([]byte("a"))},
		{Path: "/out/b", SizeBytes: 4, SHA256: hexSum([]byte("BBBB"))},
	}, as)
	a, err := b.st.JobArtifact(ctx, b.account.ID, j.ID, "/out/b")
	require.NoError(t, err)
	r, err := b.st.OpenBlob(ctx, b.account.ID, a.SHA256)
	require.NoError(t, err)
	content, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, "BBBB", string(content))

	// Webhook payloads carry them too.
	wj, err := b.st.GetWebhookJob(ctx, b.account.ID, j.ID, 10)
	require.NoError(t, err)
	require.Len(t, wj.Artifacts, 2)
	require.True(t, wj.ArtifactsTruncated)
	require.Equal(t, []string{"/out/*"}, []string(wj.Collect))

	_, err = b.st.JobArtifact(ctx, b.account.ID, j.ID, "/out/c")
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	other, err := b.st.CreateAccount(ctx, store.Actor{Name: "test"}, "other", "free")
	require.NoError(t, err)
	_, err = b.st.JobArtifacts(ctx, other.ID, j.ID)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err), "another account's job is not found")
	_, err = b.st.JobArtifact(ctx, other.ID, j.ID, "/out/a")
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	none, err := b.st.JobArtifacts(ctx, b.account.ID, b.job(t).ID)
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestModuleAssets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	actor := store.Actor{Name: "test"}
	tree := []byte("pretend this is a tar")
	sum, err := b.st.PutBlob(ctx, b.account.ID, tree)
	require.NoError(t, err)
	a, fresh, err := b.st.PutModuleAsset(ctx, actor, b.account.ID, b.module.ID,
		store.ModuleAsset{Mount: "/share", SHA256: sum, SizeBytes: 60, Files: 2}, 100)
	require.NoError(t, err)
	require.True(t, fresh)
	require.Equal(t, "/share", a.Mount)
	// The second mount would pass the limit with the first.
	_, _, err = b.st.PutModuleAsset(ctx, actor, b.account.ID, b.module.ID,
		store.ModuleAsset{Mount: "/lib", SHA256: sum, SizeBytes: 41, Files: 1}, 100)
	require.Equal(t, apperr.AssetsTooLarge, apperr.CodeOf(err))
	// Exactly at the limit.
	_, fresh, err = b.st.PutModuleAsset(ctx, actor, b.account.ID, b.module.ID,
		store.ModuleAsset{Mount: "/lib", SHA256: sum, SizeBytes: 40, Files: 1}, 100)
	require.NoError(t, err)
	require.True(t, fresh)
	// Replacing a mount counts only the others.
	_, fresh, err = b.st.PutModuleAsset(ctx, actor, b.account.ID, b.module.ID,
		store.ModuleAsset{Mount: "/share", SHA256: sum, SizeBytes: 60, Files: 3}, 100)
	require.NoError(t, err)
	require.False(t, fresh)

	_, _, err = b.st.PutModuleAsset(ctx, actor, b.account.ID, b.module.ID,
		store.ModuleAsset{Mount: "/share/sub", SHA256: sum}, 100)
	require.Equal(t, apperr.Invalid, apperr.CodeOf(err), "mounts do not nest")
	_, _, err = b.st.PutModuleAsset(ctx, actor, b.account.ID, b.module.ID,
		store.ModuleAsset{Mount: "/", SHA256: sum}, 100)
	require.Equal(t, apperr.Invalid, apperr.CodeOf(err))

	as, err := b.st.ModuleAssets(ctx, b.module.ID)
	require.NoError(t, err)
	require.Len(t, as, 2)
	require.Equal(t, "/lib", as[0].Mount)
	require.Equal(t, "/share", as[1].Mount)
	require.Equal(t, 3, as[1].Files)
	require.Equal(t, sum, as[1].SHA256)

	j := b.job(t)
	require.Equal(t, 2, j.AssetCount, "the job knows its module has assets")

	require.NoError(t, b.st.DeleteModuleAsset(ctx, actor, b.account.ID, b.module.ID, "/lib"))
	err = b.st.DeleteModuleAsset(ctx, actor, b.account.ID, b.module.ID, "/lib")
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	m, err := b.st.GetModule(ctx, b.account.ID, b.module.ID)
	require.NoError(t, err)
	require.Equal(t, 1, m.AssetCount)

	other, err := b.st.CreateAccount(ctx, actor, "other", "free")
	require.NoError(t, err)
	_, err = b.st.ListModuleAssets(ctx, other.ID, b.module.ID)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	_, _, err = b.st.PutModuleAsset(ctx, actor, other.ID, b.module.ID,
		store.ModuleAsset{Mount: "/x", SHA256: sum}, 100)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	err = b.st.DeleteModuleAsset(ctx, actor, other.ID, b.module.ID, "/share")
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
}

func TestPurgeDropsUnreferencedFileBlobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	kept := b.jobWith(t, func(j *store.Job) { j.Files = []store.JobInput{{Path: "/kept", Content: []byte("kept")}} })
	gone := b.jobWith(t, func(j *store.Job) { j.Files = []store.JobInput{{Path: "/gone", Content: []byte("gone")}} })
	_, err := b.st.PutBlob(ctx, b.account.ID, []byte("orphan"))
	require.NoError(t, err)
	pending := b.st.NewBlobWriter(ctx, b.account.ID)
	_, err = pending.Write(pattern(store.ChunkSize+1, 4)) // never committed
	require.NoError(t, err)
	_, err = b.st.DB().ExecContext(ctx, `DELETE FROM jobs WHERE id = $1`, gone.ID)
	require.NoError(t, err)
	_, err = b.st.DB().ExecContext(ctx, `UPDATE file_blobs SET created_at = now() - interval '2 hours'`)
	require.NoError(t, err)

	p, err := b.st.Purge(ctx, 24*time.Hour, 100)
	require.NoError(t, err)
	require.Equal(t, int64(3), p.FileBlobs, "the deleted job's input, the orphan and the pending blob")
	in, err := b.st.JobInputs(ctx, kept.ID)
	require.NoError(t, err)
	require.Equal(t, "kept", string(in[0].Content))
	var chunks int
	require.NoError(t, b.st.DB().GetContext(ctx, &chunks, `SELECT count(*) FROM file_blob_chunks`))
	require.Equal(t, 1, chunks)
}

func (b bundle) jobWith(t testing.TB, edit func(*store.Job)) store.Job {
	t.Helper()
	j := b.request()
	edit(&j)
	out, err := b.st.CreateJob(context.Background(), store.Actor{Name: "test"}, j)
	require.NoError(t, err)
	require.NotEqual(t, uuid.Nil, out.ID)
	return out
}
