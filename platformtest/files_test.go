package platformtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// fileTier creates a tier whose file limits are small enough to test
// exactly (runs and uploads unlimited) and returns a key of a new account
// on it.
func (p *platform) fileTier(name string, maxInput, maxAsset int64) string {
	p.t.Helper()
	res := p.postJSON("/v1/admin/tiers", adminToken, map[string]any{"name": name, "runs_per_minute": 0, "runs_per_day": 0,
		"max_concurrent_runs": 0, "default_timeout_ms": 5000, "max_timeout_ms": 5000, "default_memory_mb": 64,
		"max_memory_mb": 64, "max_module_bytes": 10 << 20, "queue_weight": 1, "reads_per_minute": 0,
		"uploads_per_minute": 0, "max_modules": 0, "max_module_storage_bytes": 0,
		"max_input_bytes": maxInput, "max_fs_bytes": 1000, "max_artifact_bytes": 2000, "max_asset_bytes": maxAsset})
	require.Equal(p.t, http.StatusCreated, res.Status, "%s", res.Body)
	return p.account(name)
}

// multipartJob builds a multipart job request: the job part, then one
// file part per name → content (in the order given).
func multipartJob(t *testing.T, job map[string]any, files ...[2]string) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	jw, err := mw.CreateFormField("job")
	require.NoError(t, err)
	require.NoError(t, jsonEncode(jw, job))
	for _, f := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, f[0]))
		h.Set("Content-Type", "application/octet-stream")
		fw, err := mw.CreatePart(h)
		require.NoError(t, err)
		_, err = io.WriteString(fw, f[1])
		require.NoError(t, err)
	}
	require.NoError(t, mw.Close())
	return mw.FormDataContentType(), buf.Bytes()
}

func jsonEncode(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

var jsonMarshal = json.Marshal

func (p *platform) storeOf() *store.Store {
	p.t.Helper()
	st, err := store.Open(context.Background(), p.common.DatabaseURL, 2)
	require.NoError(p.t, err)
	p.t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestJobFiles(t *testing.T) {
	t.Parallel()
	p := startAPI(t, nil)
	key := p.fileTier("files", 10, 100)
	hello := p.upload(key, fixtures.Hello)
	st := p.storeOf()

	t.Run("files at the cap are stored with the job", func(t *testing.T) {
		t.Parallel()
		res := p.postJSON("/v1/jobs", key, map[string]any{"module_id": hello,
			"files": []map[string]any{
				{"path": "/in/a.txt", "content": "hello"},
				{"path": "/in/b.bin", "content": base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 3, 255}), "encoding": "base64", "mode": "ro"},
			},
			"preopens": []string{"/in", "out"}, "collect": []string{"/out/**"}})
		require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
		job := decode[client.Job](t, res)
		require.Equal(t, []string{"/in", "out"}, job.Preopens)
		require.Equal(t, []string{"/out/**"}, job.Collect)
		require.Equal(t, 2, job.InputFiles)
		require.Equal(t, []client.Artifact{}, job.Artifacts)
		require.False(t, job.ArtifactsTruncated)
		require.EqualValues(t, 1000, job.Limits.MaxFSBytes)
		require.EqualValues(t, 2000, job.Limits.MaxArtifactBytes)

		in, err := st.JobInputs(context.Background(), uuid.MustParse(job.ID))
		require.NoError(t, err)
		require.Equal(t, []store.JobInput{
			{Path: "/in/a.txt", Mode: "rw", Content: []byte("hello")},
			{Path: "/in/b.bin", Mode: "ro", Content: []byte{0, 1, 2, 3, 255}},
		}, in)
	})

	t.Run("a job without files gets the root preopen", func(t *testing.T) {
		t.Parallel()
		res := p.postJSON("/v1/jobs", key, map[string]any{"module_id": hello})
		require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
		job := decode[client.Job](t, res)
		require.Equal(t, []string{"/"}, job.Preopens)
		require.Equal(t, 0, job.InputFiles)
	})

	t.Run("one byte over the cap is refused", func(t *testing.T) {
		t.Parallel()
		res := p.postJSON("/v1/jobs", key, map[string]any{"module_id": hello,
			"files": []map[string]any{{"path": "/a", "content": "hello"}, {"path": "/b", "content": "world!"}}})
		body := requireProblem(t, res, http.StatusRequestEntityTooLarge, "input_too_large")
		require.Contains(t, body.Detail, "max_input_bytes")
	})

	t.Run("multipart at the cap, and one byte over", func(t *testing.T) {
		t.Parallel()
		ct, body := multipartJob(t, map[string]any{"module_id": hello, "preopens": []string{"/"}},
			[2]string{"/in/one", "12345"}, [2]string{"/in/deep/two", "67890"})
		res := p.do(http.MethodPost, "/v1/jobs", key, ct, body)
		require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
		id := uuid.MustParse(decode[client.Job](t, res).ID)
		in, err := st.JobInputs(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, []store.JobInput{
			{Path: "/in/deep/two", Mode: "rw", Content: []byte("67890")},
			{Path: "/in/one", Mode: "rw", Content: []byte("12345")},
		}, in)

		ct, body = multipartJob(t, map[string]any{"module_id": hello}, [2]string{"/in/one", "12345"}, [2]string{"/in/two", "678901"})
		requireProblem(t, p.do(http.MethodPost, "/v1/jobs", key, ct, body), http.StatusRequestEntityTooLarge, "input_too_large")
	})

	t.Run("multipart without a job part, with a nameless file, or an unknown part", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, err := mw.CreateFormFile("file", "/x")
		require.NoError(t, err)
		_, _ = io.WriteString(fw, "x")
		require.NoError(t, mw.Close())
		body := requireProblem(t, p.do(http.MethodPost, "/v1/jobs", key, mw.FormDataContentType(), buf.Bytes()),
			http.StatusBadRequest, "validation_failed")
		require.Contains(t, body.Detail, "no job part")

		buf.Reset()
		mw = multipart.NewWriter(&buf)
		jw, _ := mw.CreateFormField("job")
		_, _ = io.WriteString(jw, `{"module_id":"`+hello+`"}`)
		fw, _ = mw.CreateFormField("file")
		_, _ = io.WriteString(fw, "x")
		require.NoError(t, mw.Close())
		body = requireProblem(t, p.do(http.MethodPost, "/v1/jobs", key, mw.FormDataContentType(), buf.Bytes()),
			http.StatusBadRequest, "validation_failed")
		require.Contains(t, body.Detail, "filename")

		buf.Reset()
		mw = multipart.NewWriter(&buf)
		jw, _ = mw.CreateFormField("other")
		_, _ = io.WriteString(jw, "x")
		require.NoError(t, mw.Close())
		requireProblem(t, p.do(http.MethodPost, "/v1/jobs", key, mw.FormDataContentType(), buf.Bytes()),
			http.StatusBadRequest, "validation_failed")
	})

	t.Run("invalid files, preopens and patterns are named", func(t *testing.T) {
		t.Parallel()
		cases := []struct {
			req   map[string]any
			field string
		}{
			{map[string]any{"files": []map[string]any{{"path": "in/a", "content": "x"}}}, "files[0].path"},
			{map[string]any{"files": []map[string]any{{"path": "/in/../a", "content": "x"}}}, "files[0].path"},
			{map[string]any{"files": []map[string]any{{"path": "/in//a", "content": "x"}}}, "files[0].path"},
			{map[string]any{"files": []map[string]any{{"path": "/a\u0000", "content": "x"}}}, "files[0].path"},
			{map[string]any{"files": []map[string]any{{"path": "/" + strings.Repeat("n", 256), "content": "x"}}}, "files[0].path"},
			{map[string]any{"files": []map[string]any{{"path": "/a", "content": "x"}, {"path": "/a", "content": "y"}}}, "files[1].path"},
			{map[string]any{"files": []map[string]any{{"path": "/a", "content": "x"}, {"path": "/a/b", "content": "y"}}}, "files"},
			{map[string]any{"files": []map[string]any{{"path": "/a", "content": "x", "mode": "rx"}}}, "files[0].mode"},
			{map[string]any{"files": []map[string]any{{"path": "/a", "content": "x", "encoding": "hex"}}}, "files[0].encoding"},
			{map[string]any{"files": []map[string]any{{"path": "/a", "content": "!!", "encoding": "base64"}}}, "files[0].content"},
			{map[string]any{"files": []map[string]any{{"path": "/data/a", "content": "x"}}, "preopens": []string{"/in"}}, "files[0].path"},
			{map[string]any{"files": []map[string]any{{"path": "/a", "content": "x"}}, "preopens": []string{}}, "files[0].path"},
			{map[string]any{"preopens": []string{"/in", "in/"}}, "preopens[1]"},
			{map[string]any{"preopens": []string{"../x"}}, "preopens[0]"},
			{map[string]any{"preopens": []string{""}}, "preopens[0]"},
			{map[string]any{"preopens": make([]string, 17)}, "preopens"},
			{map[string]any{"collect": []string{"out/*"}}, "collect[0]"},
			{map[string]any{"collect": []string{"/out/**x"}}, "collect[0]"},
			{map[string]any{"collect": []string{"/out/["}}, "collect[0]"},
			{map[string]any{"collect": make([]string, 65)}, "collect"},
		}
		for _, c := range cases {
			c.req["module_id"] = hello
			body := requireProblem(t, p.postJSON("/v1/jobs", key, c.req), http.StatusBadRequest, "validation_failed")
			var fields []string
			for _, e := range body.Fields {
				fields = append(fields, e.Field)
			}
			require.Contains(t, fields, c.field, "%v: %s", c.req, body.Detail)
		}
		files := make([]map[string]any, 1001)
		for i := range files {
			files[i] = map[string]any{"path": fmt.Sprintf("/f%d", i), "content": ""}
		}
		requireProblem(t, p.postJSON("/v1/jobs", key, map[string]any{"module_id": hello, "files": files}),
			http.StatusBadRequest, "validation_failed")
	})

	t.Run("the files are part of the idempotent request", func(t *testing.T) {
		t.Parallel()
		req := map[string]any{"module_id": hello, "files": []map[string]any{{"path": "/a", "content": "abc"}}}
		b, err := jsonMarshal(req)
		require.NoError(t, err)
		h := map[string]string{"Idempotency-Key": "files-1"}
		first := p.doWith(http.MethodPost, "/v1/jobs", key, h, b)
		require.Equal(t, http.StatusCreated, first.Status, "%s", first.Body)
		// The same bytes sent as base64: the same request.
		same, err := jsonMarshal(map[string]any{"module_id": hello, "files": []map[string]any{
			{"path": "/a", "content": base64.StdEncoding.EncodeToString([]byte("abc")), "encoding": "base64"}}})
		require.NoError(t, err)
		again := p.doWith(http.MethodPost, "/v1/jobs", key, h, same)
		require.Equal(t, http.StatusOK, again.Status, "%s", again.Body)
		require.Equal(t, decode[client.Job](t, first).ID, decode[client.Job](t, again).ID)
		other, err := jsonMarshal(map[string]any{"module_id": hello, "files": []map[string]any{{"path": "/a", "content": "abd"}}})
		require.NoError(t, err)
		requireProblem(t, p.doWith(http.MethodPost, "/v1/jobs", key, h, other), http.StatusUnprocessableEntity, "idempotency_key_reused")
	})

	t.Run("batches carry files", func(t *testing.T) {
		t.Parallel()
		res := p.postJSON("/v1/jobs/batch", key, map[string]any{"jobs": []map[string]any{
			{"module_id": hello, "files": []map[string]any{{"path": "/a", "content": "1"}}},
			{"module_id": hello, "files": []map[string]any{{"path": "/a", "content": "01234567890"}}},
		}})
		require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
		items := decode[client.Page[client.BatchItem]](t, res).Data
		require.Len(t, items, 2)
		require.NotNil(t, items[0].Job, "%s", res.Body)
		require.Equal(t, 1, items[0].Job.InputFiles)
		require.NotNil(t, items[1].Error, "%s", res.Body)
		require.Equal(t, "input_too_large", items[1].Error.Code)
	})

	t.Run("the account shows the file limits", func(t *testing.T) {
		t.Parallel()
		res := p.do(http.MethodGet, "/v1/account", key, "", nil)
		require.Equal(t, http.StatusOK, res.Status)
		limits := decode[client.Account](t, res).Limits
		require.EqualValues(t, 10, limits["max_input_bytes"])
		require.EqualValues(t, 1000, limits["max_fs_bytes"])
		require.EqualValues(t, 2000, limits["max_artifact_bytes"])
		require.EqualValues(t, 100, limits["max_asset_bytes"])
	})

	t.Run("tier file limits are validated", func(t *testing.T) {
		t.Parallel()
		res := p.do(http.MethodPatch, "/v1/admin/tiers/files", adminToken, "application/json", []byte(`{"max_fs_bytes":-1}`))
		requireProblem(t, res, http.StatusBadRequest, "validation_failed")
		res = p.do(http.MethodGet, "/v1/admin/tiers", adminToken, "", nil)
		require.Equal(t, http.StatusOK, res.Status)
		for _, tr := range decode[client.Page[tierAnswer]](t, res).Data {
			if tr.Name == "pro" {
				require.EqualValues(t, 32<<20, tr.MaxInputBytes)
				require.EqualValues(t, 256<<20, tr.MaxFSBytes)
				require.EqualValues(t, 128<<20, tr.MaxArtifactBytes)
				require.EqualValues(t, 1<<30, tr.MaxAssetBytes)
			}
		}
	})
}

func hexOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestArtifacts(t *testing.T) {
	t.Parallel()
	p := startAPI(t, nil)
	key := p.fileTier("arts", 100, 100)
	other := p.account("free")
	hello := p.upload(key, fixtures.Hello)
	st := p.storeOf()
	ctx := context.Background()

	id := p.submit(key, map[string]any{"module_id": hello, "collect": []string{"/out/**"}})
	jid := uuid.MustParse(id)
	// Finished as a worker would: artifacts first, then the result.
	big := bytes.Repeat([]byte("0123456789abcdef"), (store.ChunkSize*5/2)/16)
	_, err := st.ClaimJob(ctx, jid, "w")
	require.NoError(t, err)
	require.NoError(t, st.SaveArtifacts(ctx, jid, []store.ArtifactFile{
		{Path: "/out/big.bin", Content: big}, {Path: "/out/sub/small.txt", Content: []byte("small")}}))
	ok, err := st.FinishJob(ctx, jid, 1, "w", jobstate.Outcome{Status: jobstate.TimedOut, ArtifactsTruncated: true})
	require.NoError(t, err)
	require.True(t, ok)

	want := []client.Artifact{
		{Path: "/out/big.bin", SizeBytes: int64(len(big)), SHA256: hexOf(big)},
		{Path: "/out/sub/small.txt", SizeBytes: 5, SHA256: hexOf([]byte("small"))},
	}
	job := p.job(key, id)
	require.Equal(t, want, job.Artifacts)
	require.True(t, job.ArtifactsTruncated)
	res := p.do(http.MethodGet, "/v1/jobs/"+id+"/artifacts", key, "", nil)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	require.Equal(t, want, decode[client.Page[client.Artifact]](t, res).Data)

	t.Run("download with length and ETag", func(t *testing.T) {
		res := p.do(http.MethodGet, "/v1/jobs/"+id+"/artifacts/out/big.bin", key, "", nil)
		require.Equal(t, http.StatusOK, res.Status)
		require.Equal(t, fmt.Sprint(len(big)), res.Header.Get("Content-Length"))
		require.Equal(t, `"`+hexOf(big)+`"`, res.Header.Get("ETag"))
		require.True(t, bytes.Equal(big, res.Body))

		res = p.doWith(http.MethodGet, "/v1/jobs/"+id+"/artifacts/out/big.bin", key,
			map[string]string{"If-None-Match": `"` + hexOf(big) + `"`}, nil)
		require.Equal(t, http.StatusNotModified, res.Status)
	})

	t.Run("range requests across chunks", func(t *testing.T) {
		lo, hi := store.ChunkSize-10, store.ChunkSize+20
		res := p.doWith(http.MethodGet, "/v1/jobs/"+id+"/artifacts/out/big.bin", key,
			map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", lo, hi)}, nil)
		require.Equal(t, http.StatusPartialContent, res.Status)
		require.Equal(t, big[lo:hi+1], res.Body)
		require.Equal(t, fmt.Sprintf("bytes %d-%d/%d", lo, hi, len(big)), res.Header.Get("Content-Range"))
		res = p.doWith(http.MethodGet, "/v1/jobs/"+id+"/artifacts/out/sub/small.txt", key,
			map[string]string{"Range": "bytes=-2"}, nil)
		require.Equal(t, http.StatusPartialContent, res.Status)
		require.Equal(t, "ll", string(res.Body))
		res = p.doWith(http.MethodGet, "/v1/jobs/"+id+"/artifacts/out/sub/small.txt", key,
			map[string]string{"Range": "bytes=10-20"}, nil)
		require.Equal(t, http.StatusRequestedRangeNotSatisfiable, res.Status)
	})

	t.Run("all of them as a tar", func(t *testing.T) {
		res := p.do(http.MethodGet, "/v1/jobs/"+id+"/artifacts?format=tar", key, "", nil)
		require.Equal(t, http.StatusOK, res.Status)
		require.Equal(t, "application/x-tar", res.Header.Get("Content-Type"))
		got := map[string][]byte{}
		tr := tar.NewReader(bytes.NewReader(res.Body))
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			got[h.Name] = b
		}
		require.Equal(t, map[string][]byte{"out/big.bin": big, "out/sub/small.txt": []byte("small")}, got)
		requireProblem(t, p.do(http.MethodGet, "/v1/jobs/"+id+"/artifacts?format=zip", key, "", nil),
			http.StatusBadRequest, "validation_failed")
	})

	t.Run("missing artifacts and other accounts' jobs are not found", func(t *testing.T) {
		for _, path := range []string{"/artifacts", "/artifacts/out/big.bin", "/artifacts?format=tar"} {
			requireProblem(t, p.do(http.MethodGet, "/v1/jobs/"+id+path, other, "", nil), http.StatusNotFound, "not_found")
		}
		requireProblem(t, p.do(http.MethodGet, "/v1/jobs/"+id+"/artifacts/out/none", key, "", nil), http.StatusNotFound, "not_found")
		requireProblem(t, p.do(http.MethodGet, "/v1/jobs/"+id+"/artifacts/out/../out/big.bin", key, "", nil), http.StatusNotFound, "not_found")
		requireProblem(t, p.do(http.MethodGet, "/v1/jobs/"+uuid.NewString()+"/artifacts", key, "", nil), http.StatusNotFound, "not_found")
		res := p.do(http.MethodGet, "/v1/jobs/"+p.submit(key, map[string]any{"module_id": hello})+"/artifacts", key, "", nil)
		require.Equal(t, http.StatusOK, res.Status)
		require.Equal(t, []client.Artifact{}, decode[client.Page[client.Artifact]](t, res).Data)
	})
}

type tarEntry struct {
	name, data, link string
	typ              byte
}

func makeTar(t *testing.T, es ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: 0o644}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		require.NoError(t, tw.WriteHeader(h))
		_, err := tw.Write([]byte(e.data))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

func TestModuleAssetsAPI(t *testing.T) {
	t.Parallel()
	p := startAPI(t, nil)
	key := p.fileTier("assets", 10, 10)
	other := p.account("free")
	hello := p.upload(key, fixtures.Hello)
	put := func(mount, ct string, body []byte) response {
		return p.do(http.MethodPut, "/v1/modules/"+hello+"/assets?mount="+mount, key, ct, body)
	}
	tree := makeTar(t, tarEntry{name: "share/", typ: tar.TypeDir}, tarEntry{name: "share/a", data: "12345"},
		tarEntry{name: "share/b", data: "1234"}, tarEntry{name: "share/l", typ: tar.TypeSymlink, link: "a"})

	res := put("/share", "application/x-tar", tree)
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	a := decode[client.Asset](t, res)
	require.Equal(t, "/share", a.Mount)
	require.EqualValues(t, 9, a.SizeBytes)
	require.EqualValues(t, 2, a.Files)

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(tree)
	require.NoError(t, zw.Close())
	res = put("/share", "application/gzip", gz.Bytes())
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	require.Equal(t, a.SHA256, decode[client.Asset](t, res).SHA256, "the same tree, normalised the same")

	// The other mount has 1 byte left: exactly 1 fits, 2 do not.
	res = put("/lib", "application/x-tar", makeTar(t, tarEntry{name: "x", data: "12"}))
	requireProblem(t, res, http.StatusRequestEntityTooLarge, "assets_too_large")
	res = put("/lib", "application/x-tar", makeTar(t, tarEntry{name: "x", data: "1"}))
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)

	res = p.do(http.MethodGet, "/v1/modules/"+hello+"/assets", key, "", nil)
	require.Equal(t, http.StatusOK, res.Status)
	list := decode[client.Page[client.Asset]](t, res).Data
	require.Len(t, list, 2)
	require.Equal(t, "/lib", list[0].Mount)

	t.Run("refused uploads", func(t *testing.T) {
		cases := []struct {
			name, mount, ct string
			body            []byte
			status          int
			code            string
		}{
			{"dotdot", "/x", "application/x-tar", makeTar(t, tarEntry{name: "../x", data: "1"}), 400, "invalid_archive"},
			{"absolute", "/x", "application/x-tar", makeTar(t, tarEntry{name: "/etc/x", data: "1"}), 400, "invalid_archive"},
			{"symlink out", "/x", "application/x-tar", makeTar(t, tarEntry{name: "l", typ: tar.TypeSymlink, link: "../../etc"}), 400, "invalid_archive"},
			{"through symlink", "/x", "application/x-tar", makeTar(t, tarEntry{name: "l", typ: tar.TypeSymlink, link: "."}, tarEntry{name: "l/a", data: "1"}), 400, "invalid_archive"},
			{"device", "/x", "application/x-tar", makeTar(t, tarEntry{name: "c", typ: tar.TypeChar}), 400, "invalid_archive"},
			{"fifo", "/x", "application/x-tar", makeTar(t, tarEntry{name: "f", typ: tar.TypeFifo}), 400, "invalid_archive"},
			{"hard link out", "/x", "application/x-tar", makeTar(t, tarEntry{name: "h", typ: tar.TypeLink, link: "/etc/passwd"}), 400, "invalid_archive"},
			{"duplicate", "/x", "application/x-tar", makeTar(t, tarEntry{name: "a"}, tarEntry{name: "./a"}), 400, "invalid_archive"},
			{"not a tar", "/x", "application/x-tar", []byte(strings.Repeat("not a tar ", 100)), 400, "invalid_archive"},
			{"mount relative", "x", "application/x-tar", makeTar(t), 400, "validation_failed"},
			{"mount dotdot", "/a/../b", "application/x-tar", makeTar(t), 400, "validation_failed"},
			{"mount root", "/", "application/x-tar", makeTar(t), 400, "validation_failed"},
			{"mount nested", "/share/sub", "application/x-tar", makeTar(t), 400, "validation_failed"},
			{"no mount", "", "application/x-tar", makeTar(t), 400, "validation_failed"},
			{"zip", "/x", "application/zip", []byte("PK"), 415, "unsupported_media_type"},
		}
		for _, c := range cases {
			requireProblem(t, put(c.mount, c.ct, c.body), c.status, c.code)
		}
	})

	t.Run("other accounts do not see them", func(t *testing.T) {
		requireProblem(t, p.do(http.MethodGet, "/v1/modules/"+hello+"/assets", other, "", nil), http.StatusNotFound, "not_found")
		requireProblem(t, p.do(http.MethodPut, "/v1/modules/"+hello+"/assets?mount=/y", other, "application/x-tar", makeTar(t)),
			http.StatusNotFound, "not_found")
		requireProblem(t, p.do(http.MethodDelete, "/v1/modules/"+hello+"/assets?mount=/lib", other, "", nil), http.StatusNotFound, "not_found")
	})

	t.Run("delete", func(t *testing.T) {
		res := p.do(http.MethodDelete, "/v1/modules/"+hello+"/assets?mount=/lib", key, "", nil)
		require.Equal(t, http.StatusNoContent, res.Status, "%s", res.Body)
		requireProblem(t, p.do(http.MethodDelete, "/v1/modules/"+hello+"/assets?mount=/lib", key, "", nil), http.StatusNotFound, "not_found")
		// A job of the module knows it has an asset tree.
		st := p.storeOf()
		id := p.submit(key, map[string]any{"module_id": hello})
		var assets int
		require.NoError(t, st.DB().GetContext(context.Background(), &assets, `SELECT asset_count FROM jobs WHERE id = $1`, id))
		require.Equal(t, 1, assets)
	})
}
