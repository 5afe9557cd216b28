package platformtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// wasiSuiteDir holds the vendored WASI testsuite programs (see its README).
var wasiSuiteDir = filepath.Join(repoRoot, "worker", "jobfs", "testdata", "wasi-testsuite")

// wasiSuiteDiffers are the programs the testsuite's own expectations list as
// failing on wazero (expectations/wazero/linux.toml): what the guest sees is
// in docs/RATIONALE.md ("The WASI testsuite through the platform").
var wasiSuiteDiffers = map[string]bool{
	"dir_fd_op_failures": true, "fd_fdstat_set_rights": true, "overwrite_preopen": true, "path_filestat": true,
	"path_link": true, "path_open_read_write": true, "readlink": true, "renumber": true, "symlink_filestat": true,
	"truncation_rights": true, "poll_oneoff_stdio": true, "stdio": true, "sock_shutdown-not_sock": true,
}

// TestWASITestsuiteThroughThePlatform runs the WebAssembly WASI testsuite's
// preview1 programs (all 72 of them, vendored) through the API and a worker with
// sandbox children: each program is uploaded, its test directory goes with
// the job as input files, and its exit code and stdout are checked.
func TestWASITestsuiteThroughThePlatform(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("pro")
	var mu sync.Mutex
	ran, differs := 0, 0
	for _, lang := range []string{"assemblyscript", "c", "rust"} {
		dir := filepath.Join(wasiSuiteDir, lang)
		progs, err := filepath.Glob(filepath.Join(dir, "*.wasm.gz"))
		require.NoError(t, err)
		require.NotEmpty(t, progs)
		for _, prog := range progs {
			name := strings.TrimSuffix(filepath.Base(prog), ".wasm.gz")
			t.Run(lang+"/"+name, func(t *testing.T) {
				if wasiSuiteDiffers[name] {
					mu.Lock()
					differs++
					mu.Unlock()
					t.Skip("listed as differing on wazero by the testsuite (docs/RATIONALE.md)")
				}
				var spec struct {
					Root     string            `json:"root"`
					Args     []string          `json:"args"`
					Env      map[string]string `json:"env"`
					ExitCode int               `json:"exit_code"`
					Stdout   *string           `json:"stdout"`
				}
				if b, err := os.ReadFile(filepath.Join(dir, name+".json")); err == nil {
					require.NoError(t, json.Unmarshal(b, &spec))
				}
				res := p.do(http.MethodPost, "/v1/modules?name="+name, key, "application/wasm", gunzip(t, prog))
				require.Contains(t, []int{http.StatusCreated, http.StatusOK}, res.Status, "%s", res.Body)
				req := map[string]any{"module_id": decode[client.Module](t, res).ID, "timeout_ms": 30000}
				if len(spec.Args) > 0 {
					req["args"] = spec.Args
				}
				if len(spec.Env) > 0 {
					req["env"] = spec.Env
				}
				if spec.Root != "" {
					// The test's directory is the job's "/", preopened as "/"
					// (the default), as the suite's wazero adapter does.
					if files := suiteFiles(t, filepath.Join(dir, spec.Root)); len(files) > 0 {
						req["files"] = files
					}
				}
				job := p.await(key, p.submit(key, req))
				exit := 0
				if job.ExitCode != nil {
					exit = *job.ExitCode
				}
				require.Equal(t, spec.ExitCode, exit, "status %s, error %+v, stdout %s, stderr %s",
					job.Status, job.Error, asJSON(job.Stdout), asJSON(job.Stderr))
				if spec.Stdout != nil {
					require.Equal(t, spec.Stdout, job.Stdout)
				}
				mu.Lock()
				ran++
				mu.Unlock()
			})
		}
	}
	t.Cleanup(func() {
		t.Logf("WASI testsuite through the platform: %d passed, %d listed as differing on wazero", ran, differs)
	})
}

func gunzip(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path) //nolint:gosec // test data
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	var b bytes.Buffer
	_, err = io.Copy(&b, zr) //nolint:gosec // test data
	require.NoError(t, err)
	return b.Bytes()
}

// suiteFiles reads a test's directory into the request's files.
func suiteFiles(t *testing.T, dir string) []map[string]any {
	t.Helper()
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var files []map[string]any
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path) //nolint:gosec // test data
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files = append(files, map[string]any{"path": "/" + filepath.ToSlash(rel),
			"content": base64.StdEncoding.EncodeToString(b), "encoding": "base64"})
		return nil
	}))
	return files
}

// A job with an input file, its module's asset tree and collect patterns,
// through the API and a worker: the guest reads both, writes an artifact,
// spins until its timeout, and the artifact and the output it wrote are kept.
func TestJobFilesEndToEnd(t *testing.T) {
	t.Parallel()
	if raceEnabled {
		// Compiling the 2.8 MB Go module for the interruptible engine takes
		// longer than the worker's compile timeout in a race-instrumented
		// child; worker/sandbox and worker/jobrunner test the same paths.
		t.Skip("too slow under the race detector")
	}
	p := startPlatform(t)
	key := p.account("pro")
	mod := p.upload(key, fixtures.FileTool)
	tree := makeTar(t, tarEntry{name: "lib/", typ: tar.TypeDir}, tarEntry{name: "lib/a.txt", data: "asset A"},
		tarEntry{name: "lib/hard", typ: tar.TypeLink, link: "lib/a.txt"}, tarEntry{name: "lib/soft", typ: tar.TypeSymlink, link: "a.txt"})
	res := p.do(http.MethodPut, "/v1/modules/"+mod+"/assets?mount=/share", key, "application/x-tar", tree)
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)

	// A job that collects files runs on the sandbox's interruptible engine,
	// which compiles the module for itself on first use (inside the job's
	// timeout): warm it first, so the timed job spends its time running.
	warm := p.await(key, p.submit(key, map[string]any{"module_id": mod, "timeout_ms": 30000, "args": []string{"ls", "/"},
		"collect": []string{"/out/*"}}))
	require.Equal(t, "succeeded", warm.Status, "%+v", warm.Error)

	id := p.submit(key, map[string]any{"module_id": mod, "timeout_ms": 3000,
		"args": []string{"cat", "/in/x.txt", "cat", "/share/lib/hard", "cat", "/share/lib/soft", "write", "/share/lib/a.txt", "1",
			"mkdir", "/out", "write", "/out/r.txt", "5", "spin"},
		"files":   []map[string]any{{"path": "/in/x.txt", "content": "input X", "mode": "ro"}},
		"collect": []string{"/out/*"}})
	job := p.await(key, id)
	require.Equal(t, "timed_out", job.Status, "%+v", job.Error)
	require.Equal(t, new("cat /in/x.txt: input X\ncat /share/lib/hard: asset A\ncat /share/lib/soft: asset A\n"+
		"write /share/lib/a.txt: EROFS\nmkdir /out: ok\nwrite /out/r.txt: ok\n"), job.Stdout)
	require.False(t, job.ArtifactsTruncated)

	res = p.do(http.MethodGet, "/v1/jobs/"+id+"/artifacts/out/r.txt", key, "", nil)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	require.Equal(t, "xxxxx", string(res.Body))

	// The stream's end event lists the artifacts as GET /v1/jobs/{id} does.
	evs := openStream(t, nil, p.baseURL, key, id, "").start().until("end")
	arts := eventData[client.Job](t, evs[len(evs)-1]).Artifacts
	require.Len(t, arts, 1)
	require.Equal(t, "/out/r.txt", arts[0].Path)
}
