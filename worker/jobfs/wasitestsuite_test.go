package jobfs

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// wasiTestsuiteSkips are the WASI testsuite programs not run against jobfs,
// with the reason. Each is in the testsuite's own wazero expectations
// (expectations/wazero/linux.toml): they fail because of wazero's preview1
// layer, which sits above any sys.FS, not because of the filesystem.
var wasiTestsuiteSkips = map[string]string{
	"dir_fd_op_failures":     "wazero's fd_prestat_dir_name accepts a zero-length buffer (the test wants EINVAL or ENAMETOOLONG)",
	"fd_fdstat_set_rights":   "wazero answers ENOSYS to fd_fdstat_set_rights (rights are not implemented)",
	"overwrite_preopen":      "wazero refuses fd_renumber over a preopen with ENOTSUP",
	"path_filestat":          "wazero's fd_fdstat_get does not report the SYNC fdflag a file was opened with",
	"path_link":              "wazero's path_link ignores LOOKUPFLAGS_SYMLINK_FOLLOW (the test wants an error)",
	"path_open_read_write":   "wazero does not implement rights: a read-only descriptor reports the write right",
	"readlink":               "wazero's path_readlink fails with ERANGE on a short buffer where the test wants the truncated target",
	"renumber":               "wazero's fd_renumber accepts a destination descriptor that is not open",
	"symlink_filestat":       "wazero's path_filestat_set_times follows the link even without LOOKUPFLAGS_SYMLINK_FOLLOW",
	"truncation_rights":      "wazero answers ENOSYS to fd_fdstat_set_rights (rights are not implemented)",
	"poll_oneoff_stdio":      "wazero's poll_oneoff answers ENOTSUP to an FD_WRITE subscription on stdout/stderr (it supports reads of stdin only)",
	"stdio":                  "wazero refuses fd_renumber of a stdio descriptor with ENOTSUP",
	"sock_shutdown-not_sock": "wazero's sock_shutdown on a descriptor that is not a socket does not answer ENOTSOCK",
}

type wasiTestSpec struct {
	Root     string            `json:"root"`
	Args     []string          `json:"args"`
	Env      map[string]string `json:"env"`
	ExitCode uint32            `json:"exit_code"`
	Stdout   *string           `json:"stdout"`
}

var (
	wasiRuntimeOnce sync.Once
	wasiRuntime     wazero.Runtime
)

func sharedRuntime(t testing.TB) wazero.Runtime {
	wasiRuntimeOnce.Do(func() {
		ctx := context.Background()
		wasiRuntime = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
		wasi_snapshot_preview1.MustInstantiate(ctx, wasiRuntime)
	})
	return wasiRuntime
}

// inputsFromDir reads a test's root directory into writable job inputs.
func inputsFromDir(t testing.TB, dir string) []Input {
	var in []Input
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil // an empty root (the suite keeps only a .keep file in it)
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		in = append(in, Input{Path: "/" + filepath.ToSlash(rel), Data: data})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// runGuest runs a WASI command against jfs with the given preopens.
func runGuest(t testing.TB, wasm []byte, jfs *FS, preopens []string, args ...string) (exit uint32, stdout, stderr string) {
	t.Helper()
	return runGuestEnv(t, wasm, jfs, preopens, nil, args...)
}

// runGuestEnv is runGuest with environment variables.
func runGuestEnv(t testing.TB, wasm []byte, jfs *FS, preopens []string, env map[string]string, args ...string) (exit uint32, stdout, stderr string) {
	t.Helper()
	ctx := context.Background()
	r := sharedRuntime(t)
	cm, err := r.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	defer cm.Close(ctx)
	fsc, err := jfs.FSConfig(wazero.NewFSConfig(), preopens)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	cfg := wazero.NewModuleConfig().WithName("").WithFSConfig(fsc).
		WithStdout(&out).WithStderr(&errb).WithArgs(append([]string{"guest"}, args...)...)
	for _, k := range slices.Sorted(maps.Keys(env)) {
		cfg = cfg.WithEnv(k, env[k])
	}
	mod, err := r.InstantiateModule(ctx, cm, cfg)
	if mod != nil {
		_ = mod.Close(ctx)
	}
	var ee *sys.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		exit = ee.ExitCode()
	default:
		t.Fatalf("run: %v (stderr %q)", err, errb.String())
	}
	return exit, out.String(), errb.String()
}

func gunzipFile(t testing.TB, p string) []byte {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWASITestsuite runs the WebAssembly WASI testsuite's prebuilt preview1
// filesystem programs (testdata/wasi-testsuite, see its README) in-process
// against a fresh job filesystem each, with the test's root directory as
// writable inputs and preopened as "/", like the suite's own wazero adapter.
func TestWASITestsuite(t *testing.T) {
	var passed, skipped, total int
	var mu sync.Mutex
	t.Cleanup(func() {
		t.Logf("WASI testsuite: %d of %d run passed, %d skipped", passed, total-skipped, skipped)
	})
	for _, lang := range []string{"assemblyscript", "c", "rust"} {
		dir := filepath.Join("testdata", "wasi-testsuite", lang)
		files, err := filepath.Glob(filepath.Join(dir, "*.wasm.gz"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no programs in %s: %v", dir, err)
		}
		for _, wf := range files {
			name := strings.TrimSuffix(filepath.Base(wf), ".wasm.gz")
			total++
			t.Run(lang+"/"+name, func(t *testing.T) {
				if why, ok := wasiTestsuiteSkips[name]; ok && os.Getenv("JOBFS_WASI_ALL") == "" {
					mu.Lock()
					skipped++
					mu.Unlock()
					t.Skip(why)
				}
				var spec wasiTestSpec
				if b, err := os.ReadFile(filepath.Join(dir, name+".json")); err == nil {
					if err := json.Unmarshal(b, &spec); err != nil {
						t.Fatal(err)
					}
				}
				var inputs []Input
				if spec.Root != "" {
					inputs = inputsFromDir(t, filepath.Join(dir, spec.Root))
				}
				jfs, err := New(Options{MaxBytes: 16 << 20}, nil, inputs)
				if err != nil {
					t.Fatal(err)
				}
				exit, stdout, stderr := runGuestEnv(t, gunzipFile(t, wf), jfs, []string{"/"}, spec.Env, spec.Args...)
				if exit != spec.ExitCode {
					t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", exit, spec.ExitCode, stdout, stderr)
				}
				if spec.Stdout != nil && stdout != *spec.Stdout {
					t.Fatalf("stdout %q, want %q", stdout, *spec.Stdout)
				}
				mu.Lock()
				passed++
				mu.Unlock()
			})
		}
	}
}
