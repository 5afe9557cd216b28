package platformtest

import (
	"crypto/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// Hostile modules, each through the real API and a real worker running
// guests in sandbox children. Every one ends in the right status and the
// worker keeps serving afterwards.
func TestHostileModules(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("free")
	// Reaching the call-stack limit takes a few seconds under the race
	// detector (wazero grows the guest's stack in Go code), close to the
	// free tier's 5 s maximum: that case runs on pro with 30 s.
	pro := p.account("pro")

	cases := []struct {
		name    string
		fixture string
		key     string
		req     map[string]any
		status  string
		code    string
		check   func(t *testing.T, job client.Job)
	}{
		{name: "infinite loop in _start", fixture: fixtures.Loop, req: map[string]any{"timeout_ms": 300},
			status: "timed_out", code: "timeout"},
		{name: "infinite loop in the start section", fixture: fixtures.StartLoop, req: map[string]any{"timeout_ms": 300},
			status: "timed_out", code: "timeout"},
		{name: "runaway recursion", fixture: fixtures.Recurse, key: pro, req: map[string]any{"timeout_ms": 30000},
			status: "failed", code: "trap",
			check: func(t *testing.T, job client.Job) {
				require.Contains(t, job.Error.Message, "stack overflow")
			}},
		{name: "memory bomb", fixture: fixtures.Grow, req: map[string]any{"memory_limit_mb": 64}, status: "failed", code: "memory_limit",
			check: func(t *testing.T, job client.Job) {
				require.NotNil(t, job.Usage.MemoryPeakBytes)
				require.LessOrEqual(t, *job.Usage.MemoryPeakBytes, int64(64<<20))
			}},
		{name: "stack exhaustion in linear memory", fixture: fixtures.StackBomb, status: "failed", code: "trap"},
		{name: "output flood", fixture: fixtures.Flood, status: "succeeded",
			check: func(t *testing.T, job client.Job) {
				require.True(t, job.StdoutTruncated)
				require.NotNil(t, job.Stdout)
				require.Len(t, *job.Stdout, 1<<20)
			}},
		{name: "proc_exit(3)", fixture: fixtures.Exit3, status: "failed", code: "exit_nonzero",
			check: func(t *testing.T, job client.Job) { require.Equal(t, new(3), job.ExitCode) }},
		{name: "unreachable", fixture: fixtures.Trap, status: "failed", code: "trap"},
		{name: "divide by zero", fixture: fixtures.DivZero, status: "failed", code: "trap",
			check: func(t *testing.T, job client.Job) {
				require.Contains(t, job.Error.Message, "divide by zero")
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := key
			if tc.key != "" {
				k = tc.key
			}
			job := p.run(k, tc.fixture, tc.req)
			require.Equal(t, tc.status, job.Status, "%+v", job.Error)
			require.Equal(t, tc.code, errorCode(job), "%+v", job.Error)
			if tc.check != nil {
				tc.check(t, job)
			}
		})
	}

	t.Run("refused at upload", func(t *testing.T) {
		t.Parallel()
		hello := fixtures.Bytes(fixtures.Hello)
		random := make([]byte, 4096)
		_, _ = rand.Read(random)
		for name, body := range map[string][]byte{
			"empty":             nil,
			"random bytes":      random,
			"truncated":         hello[:len(hello)/2],
			"imports env.*":     fixtures.Bytes(fixtures.BadImport),
			"huge memory":       fixtures.Bytes(fixtures.BigMem), // 256 MiB minimum on a 128 MiB tier
			"wasm magic only":   hello[:4],
			"unsupported ver 2": append([]byte{0, 'a', 's', 'm', 2, 0, 0, 0}, hello[8:]...),
		} {
			res := p.do(http.MethodPost, "/v1/modules", key, "application/wasm", body)
			require.Equal(t, http.StatusBadRequest, res.Status, "%s: %s", name, res.Body)
			require.Equal(t, "invalid_module", decode[client.Error](t, res).Code, name)
		}
	})

	t.Run("the tier's size limit, exactly and one byte over", func(t *testing.T) {
		t.Parallel()
		const limit = 10 << 20 // free tier
		res := p.do(http.MethodPost, "/v1/modules", key, "application/wasm", paddedModule(t, limit))
		require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
		res = p.do(http.MethodPost, "/v1/modules", key, "application/wasm", paddedModule(t, limit+1))
		require.Equal(t, http.StatusRequestEntityTooLarge, res.Status, "%s", res.Body)
		require.Equal(t, "module_too_large", decode[client.Error](t, res).Code)
	})

	// Third-party WASI programs shipped with wazero's own tests (zig, tinygo
	// and Rust builds).
	t.Run("third-party WASI programs", func(t *testing.T) {
		t.Parallel()
		dir := wazeroTestdata(t)
		for _, prog := range []struct {
			name, arg, stdout string
		}{
			{"zig-cc", "stat", "stdin isatty: false"},
			{"cargo-wasi", "stat", "stdin isatty: false"},
			// TinyGo's "stat" needs a host directory, which the sandbox does
			// not offer; "sock" exercises its runtime start-up and exits 0.
			{"tinygo", "sock", ""},
		} {
			bin, err := os.ReadFile(filepath.Join(dir, prog.name, "wasi.wasm"))
			require.NoError(t, err)
			res := p.do(http.MethodPost, "/v1/modules?name="+prog.name, key, "application/wasm", bin)
			require.Contains(t, []int{http.StatusCreated, http.StatusOK}, res.Status, "%s: %s", prog.name, res.Body)
			id := decode[client.Module](t, res).ID
			job := p.await(key, p.submit(key, map[string]any{"module_id": id, "args": []string{prog.arg}}))
			require.Equal(t, "succeeded", job.Status, "%s: %+v %s", prog.name, job.Error, asJSON(job.Stderr))
			require.NotNil(t, job.Stdout, prog.name)
			require.Contains(t, *job.Stdout, prog.stdout, prog.name)
		}
		bin, err := os.ReadFile(filepath.Join(dir, "zig-cc", "wasi.wasm"))
		require.NoError(t, err)
		res := p.do(http.MethodPost, "/v1/modules", key, "application/wasm", bin)
		job := p.await(key, p.submit(key, map[string]any{"module_id": decode[client.Module](t, res).ID, "args": []string{"poll", "1", "0"}, "stdin": "x"}))
		require.Equal(t, new("STDIN\n"), job.Stdout, "%+v", job.Error)
	})

	t.Cleanup(func() {
		// After all of that, the worker still runs jobs.
		job := p.run(key, fixtures.Hello, nil)
		if job.Status != "succeeded" {
			t.Errorf("the worker is unhealthy after the hostile suite: %s", asJSON(job))
		}
	})
}

// paddedModule returns a valid empty module padded with a custom section to
// exactly size bytes.
func paddedModule(t *testing.T, size int) []byte {
	t.Helper()
	head := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	name := []byte{3, 'p', 'a', 'd'}
	// size = len(head) + 1 (section id) + len(leb(n)) + n, where n is the
	// section's content length (name + padding).
	for lebLen := 1; lebLen <= 5; lebLen++ {
		n := size - len(head) - 1 - lebLen
		leb := fixtures.AppendULEB(nil, uint32(n))
		if len(leb) != lebLen || n < len(name) {
			continue
		}
		out := make([]byte, 0, size)
		out = append(out, head...)
		out = append(out, 0)
		out = append(out, leb...)
		out = append(out, name...)
		out = append(out, make([]byte, n-len(name))...)
		require.Len(t, out, size)
		return out
	}
	t.Fatalf("cannot pad a module to %d bytes", size)
	return nil
}

// wazeroTestdata finds the WASI test programs in wazero's module source.
func wazeroTestdata(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tetratelabs/wazero").Output()
	require.NoError(t, err)
	return filepath.Join(strings.TrimSpace(string(out)), "imports", "wasi_snapshot_preview1", "testdata")
}
