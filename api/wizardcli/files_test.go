package wizardcli_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/wizardcli"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// filesUnder maps every regular file under dir (by its slash path
// relative to dir) to its bytes.
func filesUnder(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p) //nolint:gosec // the test's own directory
		got[filepath.ToSlash(rel)] = string(b)
		return err
	}))
	return got
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// wizard run with input files (--file, --dir) and artifacts (--collect,
// --out), end to end on the real API and worker: the copy fixture copies
// each input to a path under /out, nested, and the artifacts come back
// under --out with exactly the bytes that went in.
func TestRunFilesInArtifactsOut(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.env["WIZARD_API_KEY"] = platform.Key(t, "basic") // max_input_bytes 8 MiB: room for the multipart case
	copyWasm := fixture(t, fixtures.Copy)
	src := t.TempDir()
	text := "a line of text\n"
	bin := append([]byte{0xff, 0xfe, 0x00, 0x80}, randomBytes(t, 4096)...) // not UTF-8: sent as base64
	deep := "deep inside\n"
	textPath := writeFile(t, src, "text.txt", []byte(text))
	binPath := writeFile(t, src, "data.bin", bin)
	writeFile(t, src, "tree/sub/deep.txt", []byte(deep))

	out := filepath.Join(t.TempDir(), "results")
	r := c.run("", "run", copyWasm,
		"--file", textPath+":/in/text.txt", "--file", binPath+":/in/data.bin", "--dir", filepath.Join(src, "tree")+":/in/tree",
		"--collect", "/out/**", "--out", out, "--",
		"/in/text.txt", "/out/text.txt", "/in/data.bin", "/out/a/b/c/data.bin", "/in/tree/sub/deep.txt", "/out/sub/deep.txt")
	require.Equal(t, 0, r.code, "%+v", r)
	require.Equal(t, fmt.Sprintf("/in/text.txt -> /out/text.txt %d\n/in/data.bin -> /out/a/b/c/data.bin %d\n"+
		"/in/tree/sub/deep.txt -> /out/sub/deep.txt %d\n", len(text), len(bin), len(deep)), r.stdout)
	require.Contains(t, r.stderr, "3 artifact(s) written under "+out)
	require.Equal(t, map[string]string{
		"out/text.txt":       text,
		"out/a/b/c/data.bin": string(bin),
		"out/sub/deep.txt":   deep,
	}, filesUnder(t, out), "exactly the collected files, with their bytes, at their guest paths")

	// Inputs above 1 MiB in all go as multipart parts; -o json prints the
	// finished job with its files, and the artifacts are still written.
	big := randomBytes(t, 3<<19) // 1.5 MiB
	bigPath := writeFile(t, src, "big.bin", big)
	out2 := t.TempDir()
	r = c.run("", "run", copyWasm, "--file", bigPath+":/in/big.bin", "--collect", "/out/*.bin", "--out", out2, "-o", "json",
		"--", "/in/big.bin", "/out/big.bin", "/in/big.bin", "/out/not/collected.bin")
	require.Equal(t, 0, r.code, "%+v", r)
	require.Equal(t, map[string]string{"out/big.bin": string(big)}, filesUnder(t, out2))
	job := decodeJSON(t, r.stdout).(map[string]any)
	sum := sha256.Sum256(big)
	require.Equal(t, []any{map[string]any{"path": "/out/big.bin", "size_bytes": float64(len(big)), "sha256": hex.EncodeToString(sum[:])}},
		job["artifacts"])
	require.Equal(t, float64(1), job["input_files"])
	require.Equal(t, []any{"/out/*.bin"}, job["collect"])

	// wizard jobs artifacts downloads them again later.
	id := job["id"].(string)
	out3 := t.TempDir()
	r = c.run("", "jobs", "artifacts", id, "--out", out3)
	require.Equal(t, 0, r.code, "%+v", r)
	require.Equal(t, map[string]string{"out/big.bin": string(big)}, filesUnder(t, out3))
	r = c.run("", "jobs", "artifacts", id)
	require.Equal(t, 0, r.code, "%+v", r)
	require.Contains(t, r.stdout, "/out/big.bin")
	require.Contains(t, r.stdout, hex.EncodeToString(sum[:]))
}

// fakeAPI answers what wizard run MODULE_ID and wizard jobs artifacts ask,
// with a job whose artifacts the test chooses: a server the CLI must not
// trust with its file system.
type fakeAPI struct {
	artifacts []map[string]any
	content   map[string]string // artifact path → bytes

	mu         sync.Mutex
	downloaded []string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const id = "01a21c90-6c95-7a32-afa7-153a0e2b44cd"
	job := map[string]any{"id": id, "module_id": "01a21c90-6006-728f-80bf-1fb09eb0e1ea", "function": "_start",
		"status": "succeeded", "exit_code": 0, "created_at": "2026-11-27T10:32:36Z", "artifacts": f.artifacts}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/jobs":
		q := map[string]any{}
		for k, v := range job {
			q[k] = v
		}
		q["status"], q["artifacts"] = "queued", []any{}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(q)
	case r.URL.Path == "/v1/jobs/"+id+"/stream":
		w.Header().Set("Content-Type", "text/event-stream")
		b, _ := json.Marshal(job)
		_, _ = fmt.Fprintf(w, "id: 1\nevent: end\ndata: %s\n\n", b)
	case r.URL.Path == "/v1/jobs/"+id+"/artifacts":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"data": f.artifacts})
	case strings.HasPrefix(r.URL.Path, "/v1/jobs/"+id+"/artifacts/"):
		p := strings.TrimPrefix(r.URL.Path, "/v1/jobs/"+id+"/artifacts")
		f.mu.Lock()
		f.downloaded = append(f.downloaded, p)
		f.mu.Unlock()
		_, _ = io.WriteString(w, f.content[p])
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeAPI) downloads() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.downloaded...)
}

func artifact(path, content string) map[string]any {
	sum := sha256.Sum256([]byte(content))
	return map[string]any{"path": path, "size_bytes": len(content), "sha256": hex.EncodeToString(sum[:])}
}

// An artifact path that would leave --out is refused before anything is
// downloaded or written, by wizard run and by wizard jobs artifacts.
func TestArtifactPathsNeverLeaveTheOutputDirectory(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"../x", "/../x", "/out/../../x", "/out/../../../x", "//../x"} {
		t.Run(bad, func(t *testing.T) {
			t.Parallel()
			api := &fakeAPI{artifacts: []map[string]any{artifact("/out/ok.txt", "ok"), artifact(bad, "evil")},
				content: map[string]string{"/out/ok.txt": "ok"}}
			srv := httptest.NewServer(api)
			t.Cleanup(srv.Close)
			c := newCLI(t)
			c.env["WIZARD_API_URL"] = srv.URL

			parent := t.TempDir()
			out := filepath.Join(parent, "a", "b") // ../x and ../../x land in parent if written
			r := c.run("", "run", "01a21c90-6006-728f-80bf-1fb09eb0e1ea", "--collect", "/out/**", "--out", out)
			require.Equal(t, wizardcli.ExitPlatform, r.code, "%+v", r)
			require.Contains(t, r.stderr, "leaves the output directory")
			r = c.run("", "jobs", "artifacts", "01a21c90-6c95-7a32-afa7-153a0e2b44cd", "--out", out)
			require.Equal(t, wizardcli.ExitPlatform, r.code, "%+v", r)
			require.Contains(t, r.stderr, "leaves the output directory")

			require.Empty(t, api.downloads(), "nothing was downloaded")
			require.Empty(t, filesUnder(t, parent), "nothing was written")
		})
	}
}

// Files are created through the output directory as a root: a symbolic
// link inside it does not lead a write out of it either, and a download
// whose bytes do not match the listed SHA-256 fails.
func TestArtifactDownloadsStayUnderTheRoot(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	serve := func(api *fakeAPI) {
		srv := httptest.NewServer(api)
		t.Cleanup(srv.Close)
		c.env["WIZARD_API_URL"] = srv.URL
	}
	const id = "01a21c90-6c95-7a32-afa7-153a0e2b44cd"
	for _, link := range []string{"link/x", "link/deeper/x"} {
		serve(&fakeAPI{artifacts: []map[string]any{artifact("/"+link, "evil")}, content: map[string]string{"/" + link: "evil"}})
		outside, out := t.TempDir(), t.TempDir()
		require.NoError(t, os.Symlink(outside, filepath.Join(out, "link")))
		r := c.run("", "jobs", "artifacts", id, "--out", out)
		require.Equal(t, wizardcli.ExitPlatform, r.code, "%+v", r)
		require.Contains(t, r.stderr, "escapes")
		require.Empty(t, filesUnder(t, outside), "nothing written through the link")
	}

	serve(&fakeAPI{artifacts: []map[string]any{artifact("/out/a.txt", "listed bytes"), artifact("/out/b.txt", "b")},
		content: map[string]string{"/out/a.txt": "other bytes", "/out/b.txt": "b"}})
	out := t.TempDir()
	r := c.run("", "jobs", "artifacts", id, "--out", out)
	require.Equal(t, wizardcli.ExitPlatform, r.code, "%+v", r)
	require.Contains(t, r.stderr, "SHA-256")
	require.Empty(t, filesUnder(t, out), "no file with the wrong bytes, none after the failure")
}
