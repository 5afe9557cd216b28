package sandbox_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/worker/executor"
	"github.com/wasmwizard/wasmwizard/worker/sandbox"
)

// fnv is the 64-bit FNV-1a hash testdata/inputs.c prints.
func fnv(b []byte) string {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return fmt.Sprintf("%016x", h)
}

func inputsPool(t *testing.T, sharedFrom int) *sandbox.Pool {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	p, err := sandbox.New(sandbox.Config{Command: []string{exe}, Size: 1, CacheDir: t.TempDir(), MemoryLimitMB: 1536,
		SharedInputBytes: sharedFrom, PrecompileTimeout: 2 * time.Minute, CompileTimeout: 5 * time.Minute})
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

func inputsJob(t testing.TB, files *executor.Files, args ...string) executor.Request {
	t.Helper()
	path := filepath.Join(t.TempDir(), "inputs.wasm")
	wasm, err := os.ReadFile(filepath.Join("testdata", "inputs.wasm"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, wasm, 0o600))
	return executor.Request{ModuleKey: "inputs-test", ModulePath: path, Function: "_start", Args: args, Files: files,
		Timeout: 2 * time.Minute, MemoryLimitMB: 64, MaxOutputBytes: 1 << 20}
}

// Inputs reach the guest the same whichever way they travel: all through
// the request pipe, all in shared memory, or split at the default size. A
// writable input the guest changes is its own copy (the shared memory is
// read-only and sealed): the next job sees the original, and the artifacts
// carry the changed bytes and the unchanged ones.
func TestInputsThroughSharedMemory(t *testing.T) {
	t.Parallel()
	small := []byte("small input")
	big := bytes.Repeat([]byte("0123456789abcdef"), 80<<10) // 1.25 MiB
	rw := bytes.Repeat([]byte{'r'}, 200<<10)
	empty := []byte{}
	files := func() *executor.Files {
		return &executor.Files{
			Inputs: []executor.Input{
				{Path: "/in/small", Mode: "ro", Content: small},
				{Path: "/in/big", Mode: "ro", Content: big},
				{Path: "/in/empty", Mode: "rw", Content: empty},
				{Path: "/in/rw", Mode: "rw", Content: rw},
			},
			MaxFSBytes: 1 << 20, MaxArtifactBytes: 4 << 20, Collect: []string{"/in/**"},
		}
	}
	changed := append([]byte("CHANGED"), rw[7:100]...)
	want := strings.Join([]string{
		fmt.Sprintf("sum /in/small: %d %s", len(small), fnv(small)),
		fmt.Sprintf("sum /in/big: %d %s", len(big), fnv(big)),
		fmt.Sprintf("sum /in/empty: 0 %s", fnv(nil)),
		fmt.Sprintf("sum /in/rw: %d %s", len(rw), fnv(rw)),
		"poke /in/big: EACCES",
		"trunc /in/big: EACCES",
		"poke /in/rw: ok",
		"trunc /in/rw: ok",
		fmt.Sprintf("sum /in/rw: %d %s", len(changed), fnv(changed)),
		fmt.Sprintf("sum /in/big: %d %s", len(big), fnv(big)),
	}, "\n") + "\n"
	args := []string{"sum", "/in/small", "sum", "/in/big", "sum", "/in/empty", "sum", "/in/rw",
		"poke", "/in/big", "X", "trunc", "/in/big", "1", "poke", "/in/rw", "CHANGED", "trunc", "/in/rw", "100",
		"sum", "/in/rw", "sum", "/in/big"}
	for _, tc := range []struct {
		name       string
		sharedFrom int
	}{{"pipe only", -1}, {"all shared", 1}, {"default threshold", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := inputsPool(t, tc.sharedFrom)
			for range 2 { // the second job sees the original bytes again
				res, err := p.Execute(context.Background(), inputsJob(t, files(), args...))
				require.NoError(t, err)
				require.Equal(t, jobstate.Succeeded, res.Status, "%s %s", res.ErrorMessage, res.Stderr)
				require.Equal(t, want, string(res.Stdout))
				require.Equal(t, []executor.Artifact{
					{Path: "/in/big", Content: big}, {Path: "/in/empty", Content: []byte{}},
					{Path: "/in/rw", Content: changed}, {Path: "/in/small", Content: small},
				}, normalise(res.Artifacts))
			}
		})
	}
}

// normalise makes empty artifact contents comparable.
func normalise(arts []executor.Artifact) []executor.Artifact {
	for i := range arts {
		if arts[i].Content == nil {
			arts[i].Content = []byte{}
		}
	}
	return arts
}

// An input larger than the largest frame (64 MiB) could not travel through
// the request pipe; in shared memory it can.
func TestInputLargerThanAFrame(t *testing.T) {
	t.Parallel()
	if raceEnabled {
		t.Skip("hashing 64 MiB in a race-instrumented child takes minutes")
	}
	huge := bytes.Repeat([]byte("x"), 64<<20+1)
	p := inputsPool(t, 0)
	res, err := p.Execute(context.Background(), inputsJob(t,
		&executor.Files{Inputs: []executor.Input{{Path: "/huge", Mode: "ro", Content: huge}}}, "sum", "/huge"))
	require.NoError(t, err)
	require.Equal(t, jobstate.Succeeded, res.Status, res.ErrorMessage)
	require.Equal(t, fmt.Sprintf("sum /huge: %d %s\n", len(huge), fnv(huge)), string(res.Stdout))

	// Through the pipe it is refused before a child sees it.
	p = inputsPool(t, -1)
	_, err = p.Execute(context.Background(), inputsJob(t,
		&executor.Files{Inputs: []executor.Input{{Path: "/huge", Mode: "ro", Content: huge}}}, "sum", "/huge"))
	require.Error(t, err)
}
