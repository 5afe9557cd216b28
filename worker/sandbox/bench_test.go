package sandbox_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/worker/executor"
	"github.com/wasmwizard/wasmwizard/worker/sandbox"
)

// The sandbox against its floor: the same module run by an uninterrupted
// wazero engine in this process (compiled once, instantiate + run + close per
// iteration), and by the interruptible in-process executor it replaced.
//
//	go test -run '^$' -bench . -benchtime 2s ./worker/sandbox/

func benchRequest(b *testing.B, fixture string, args ...string) executor.Request {
	b.Helper()
	path := b.TempDir() + "/" + fixture + ".wasm"
	require.NoError(b, os.WriteFile(path, fixtures.Bytes(fixture), 0o600))
	return executor.Request{ModuleKey: fixture, ModulePath: path, Module: fixtures.Bytes(fixture), Function: "_start",
		Args: args, Timeout: time.Minute, MemoryLimitMB: 64, MaxOutputBytes: 1 << 20}
}

func benchModes(b *testing.B, req executor.Request, want string) {
	ctx := context.Background()
	b.Run("raw", func(b *testing.B) {
		engine, err := executor.NewEngine(ctx, executor.EngineConfig{})
		require.NoError(b, err)
		defer func() { _ = engine.Close(ctx) }()
		cm, err := engine.Compile(ctx, req.ModuleKey, func() ([]byte, error) { return req.Module, nil })
		require.NoError(b, err)
		for b.Loop() {
			res := engine.Run(ctx, cm, req)
			if string(res.Stdout) != want {
				b.Fatalf("got %q", res.Stdout)
			}
		}
	})
	b.Run("sandbox", func(b *testing.B) {
		pool := benchPool(b, sandbox.Config{CacheDir: b.TempDir()})
		_, err := pool.Execute(ctx, req) // compile outside the measurement
		require.NoError(b, err)
		parent, child := cpuTime(b)
		for b.Loop() {
			res, err := pool.Execute(ctx, req)
			if err != nil || string(res.Stdout) != want {
				b.Fatalf("got %q %v", res.Stdout, err)
			}
		}
		parent2, child2 := cpuTime(b)
		b.ReportMetric(float64((parent2-parent).Microseconds())/float64(b.N), "parent-cpu-µs/op")
		b.ReportMetric(float64((child2-child).Microseconds())/float64(b.N), "child-cpu-µs/op")
	})
	b.Run("inprocess-interruptible", func(b *testing.B) {
		ex := executor.NewInProcess("")
		_, err := ex.Execute(ctx, req)
		require.NoError(b, err)
		for b.Loop() {
			res, err := ex.Execute(ctx, req)
			if err != nil || string(res.Stdout) != want {
				b.Fatalf("got %q %v", res.Stdout, err)
			}
		}
	})
}

// benchPool starts a pool of one child of this test binary, configured by
// cfg but for Command and Size, and closes it when b ends.
func benchPool(b *testing.B, cfg sandbox.Config) *sandbox.Pool {
	b.Helper()
	exe, err := os.Executable()
	require.NoError(b, err)
	cfg.Command, cfg.Size = []string{exe}, 1
	pool, err := sandbox.New(cfg)
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	return pool
}

// cpuTime is the CPU time (user + system) used so far by this process and
// by its live children (the sandbox processes).
func cpuTime(b *testing.B) (self, children time.Duration) {
	b.Helper()
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range dirs {
		stat, err := os.ReadFile(path) //nolint:gosec // procfs
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 13 || fields[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		children += time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ = 100
	}
	return self, children
}

func BenchmarkHello(b *testing.B) {
	benchModes(b, benchRequest(b, fixtures.Hello), "hello, world\n")
}

func BenchmarkFib32(b *testing.B) {
	benchModes(b, benchRequest(b, fixtures.Fib, "32"), "2178309\n")
}

func BenchmarkLoop200M(b *testing.B) {
	benchModes(b, benchRequest(b, fixtures.CPULoop), loopResult(b))
}

// loopResult is what cpuloop prints for its default count.
func loopResult(b *testing.B) string {
	b.Helper()
	ctx := context.Background()
	engine, err := executor.NewEngine(ctx, executor.EngineConfig{})
	require.NoError(b, err)
	defer func() { _ = engine.Close(ctx) }()
	req := benchRequest(b, fixtures.CPULoop)
	cm, err := engine.Compile(ctx, "", func() ([]byte, error) { return req.Module, nil })
	require.NoError(b, err)
	return string(engine.Run(ctx, cm, req).Stdout)
}

// BenchmarkLargeModuleFirstRun: the first run of a 2.2 MB module in a fresh
// worker (cold: compiles), and in a restarted worker on the same cache
// directory (warm: loads compiled code from disk).
func BenchmarkLargeModuleFirstRun(b *testing.B) {
	ctx := context.Background()
	exe, err := os.Executable()
	require.NoError(b, err)
	req := benchRequest(b, fixtures.GoHello)
	for _, mode := range []string{"cold", "restarted"} {
		b.Run(mode, func(b *testing.B) {
			cache := b.TempDir()
			if mode == "restarted" {
				warm, err := sandbox.New(sandbox.Config{Command: []string{exe}, Size: 1, CacheDir: cache})
				require.NoError(b, err)
				_, err = warm.Execute(ctx, req)
				require.NoError(b, err)
				warm.Close()
			}
			var compile time.Duration
			for b.Loop() {
				b.StopTimer()
				dir := cache
				if mode == "cold" {
					dir = b.TempDir()
				}
				pool, err := sandbox.New(sandbox.Config{Command: []string{exe}, Size: 1, CacheDir: dir})
				require.NoError(b, err)
				b.StartTimer()
				res, err := pool.Execute(ctx, req)
				b.StopTimer()
				require.NoError(b, err)
				require.Equal(b, "hello from Go\n", string(res.Stdout))
				compile += res.CompileTime
				pool.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(compile.Microseconds())/float64(b.N), "compile-µs/op")
		})
	}
}

// BenchmarkTimeoutOvershoot: how long past a 100 ms timeout an infinite
// loop's job ends (the child killed and reaped).
func BenchmarkTimeoutOvershoot(b *testing.B) {
	ctx := context.Background()
	pool := benchPool(b, sandbox.Config{CacheDir: b.TempDir()})
	req := benchRequest(b, fixtures.Loop)
	req.Timeout = 100 * time.Millisecond
	var over, worst time.Duration
	for b.Loop() {
		for len(pool.PIDs()) == 0 { // the replacement of the last killed child
			time.Sleep(time.Millisecond)
		}
		start := time.Now()
		res, err := pool.Execute(ctx, req)
		elapsed := time.Since(start)
		require.NoError(b, err)
		require.Equal(b, jobstate.TimedOut, res.Status)
		over += elapsed - req.Timeout
		worst = max(worst, elapsed-req.Timeout)
	}
	b.ReportMetric(float64(over.Microseconds())/float64(b.N)/1000, "overshoot-ms/op")
	b.ReportMetric(float64(worst.Microseconds())/1000, "worst-overshoot-ms")
}

// BenchmarkOutput10MB: a job that writes 10 MiB of output (in 4 KiB and in
// 128-byte writes), in the sandbox (streamed through the shared ring to the
// worker, with a live-output hook) against the uninterrupted engine in this
// process capturing it in memory (raw) — the cost of streaming.
func BenchmarkOutput10MB(b *testing.B) {
	for _, fn := range []string{"_start", "small"} {
		req := benchRequest(b, fixtures.Stream10M)
		req.Function, req.MaxOutputBytes = fn, 10<<20
		name := map[string]string{"_start": "4KiB-writes", "small": "128B-writes"}[fn]
		b.Run(name, func(b *testing.B) { benchOutput(b, req) })
	}
}

func benchOutput(b *testing.B, req executor.Request) {
	ctx := context.Background()
	check := func(b *testing.B, res executor.Result, streamed int) {
		if len(res.Stdout) != 10<<20 || res.StdoutTruncated || (streamed != 0 && streamed != 10<<20) {
			b.Fatalf("got %d bytes (streamed %d), truncated %v: %s", len(res.Stdout), streamed, res.StdoutTruncated, res.ErrorMessage)
		}
	}
	b.Run("raw", func(b *testing.B) {
		engine, err := executor.NewEngine(ctx, executor.EngineConfig{})
		require.NoError(b, err)
		defer func() { _ = engine.Close(ctx) }()
		cm, err := engine.Compile(ctx, req.ModuleKey, func() ([]byte, error) { return req.Module, nil })
		require.NoError(b, err)
		for b.Loop() {
			check(b, engine.Run(ctx, cm, req), 0)
		}
	})
	b.Run("sandbox", func(b *testing.B) {
		pool := benchPool(b, sandbox.Config{CacheDir: b.TempDir()})
		streamed := 0
		req := req
		req.Output = func(_ executor.Stream, chunk []byte) { streamed += len(chunk) }
		_, err := pool.Execute(ctx, req)
		require.NoError(b, err)
		for b.Loop() {
			streamed = 0
			res, err := pool.Execute(ctx, req)
			require.NoError(b, err)
			check(b, res, streamed)
		}
	})
}

// BenchmarkJobFiles: a hello-world job with ten small input files and a
// 10 MiB asset tree (1000 files; the child's tree cache warm) against the
// same job without files.
func BenchmarkJobFiles(b *testing.B) {
	ctx := context.Background()
	pool := benchPool(b, sandbox.Config{CacheDir: b.TempDir()})
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	content := bytes.Repeat([]byte("a"), 10<<10)
	for i := range 1000 {
		require.NoError(b, tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%d/f%d", i%10, i), Mode: 0o644,
			Size: int64(len(content)), Typeflag: tar.TypeReg}))
		_, err := tw.Write(content)
		require.NoError(b, err)
	}
	require.NoError(b, tw.Close())
	sum := sha256.Sum256(tarBuf.Bytes())
	tarPath := filepath.Join(b.TempDir(), "tree.tar")
	require.NoError(b, os.WriteFile(tarPath, tarBuf.Bytes(), 0o600))
	files := &executor.Files{Assets: []executor.Asset{{Mount: "/share", SHA256: hex.EncodeToString(sum[:]), TarPath: tarPath}},
		MaxFSBytes: 1 << 20}
	for i := range 10 {
		files.Inputs = append(files.Inputs, executor.Input{Path: fmt.Sprintf("/in/%d.txt", i), Mode: "ro", Content: []byte("small input")})
	}
	for _, mode := range []string{"without-files", "ten-inputs-10MiB-tree"} {
		b.Run(mode, func(b *testing.B) {
			req := benchRequest(b, fixtures.Hello)
			if mode != "without-files" {
				req.Files = files
			}
			_, err := pool.Execute(ctx, req) // compile, parse the tree
			require.NoError(b, err)
			for b.Loop() {
				res, err := pool.Execute(ctx, req)
				if err != nil || string(res.Stdout) != "hello, world\n" {
					b.Fatalf("got %q %v %s", res.Stdout, err, res.ErrorMessage)
				}
			}
		})
	}
}

// BenchmarkInputSequentialRead: a Go guest (jobfs's fsprobe, "cat") reads a
// 64 MiB input in 64 KiB reads: as a job in the sandbox (the whole job
// measured; the input in shared memory, and, for comparison, sent through
// the request pipe) against the floor, wazero's own host-directory mount of
// a tmpfs directory (/dev/shm) in this process (instantiation and run
// measured).
func BenchmarkInputSequentialRead(b *testing.B) {
	ctx := context.Background()
	wasm := gunzipped(b, filepath.Join("..", "jobfs", "testdata", "fsprobe.wasm.gz"))
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<20) // 64 MiB
	want := strconv.Itoa(len(big)) + "\n"
	for _, mode := range []struct {
		name       string
		sharedFrom int
	}{{"sandbox-job-input", 0}, {"sandbox-job-input-pipe", -1}} {
		b.Run(mode.name, func(b *testing.B) {
			pool := benchPool(b, sandbox.Config{CacheDir: b.TempDir(),
				PrecompileTimeout: 2 * time.Minute, SharedInputBytes: mode.sharedFrom})
			path := filepath.Join(b.TempDir(), "fsprobe.wasm")
			require.NoError(b, os.WriteFile(path, wasm, 0o600))
			req := executor.Request{ModuleKey: "fsprobe", ModulePath: path, Function: "_start", Args: []string{"cat", "/in/big"},
				Timeout: 2 * time.Minute, MemoryLimitMB: 256, MaxOutputBytes: 1 << 20,
				Files: &executor.Files{Inputs: []executor.Input{{Path: "/in/big", Mode: "ro", Content: big}}}}
			_, err := pool.Execute(ctx, req)
			require.NoError(b, err)
			b.SetBytes(int64(len(big)))
			parent, child := cpuTime(b)
			for b.Loop() {
				res, err := pool.Execute(ctx, req)
				if err != nil || string(res.Stdout) != want {
					b.Fatalf("got %q %v %s %s", res.Stdout, err, res.ErrorMessage, res.Stderr)
				}
			}
			parent2, child2 := cpuTime(b)
			b.ReportMetric(float64((parent2-parent).Microseconds())/float64(b.N)/1000, "parent-cpu-ms/op")
			b.ReportMetric(float64((child2-child).Microseconds())/float64(b.N)/1000, "child-cpu-ms/op")
		})
	}
	b.Run("wazero-host-dir-on-tmpfs", func(b *testing.B) {
		dir, err := os.MkdirTemp("/dev/shm", "wasmwizard-bench-")
		if err != nil {
			b.Skip("no /dev/shm:", err)
		}
		defer func() { _ = os.RemoveAll(dir) }()
		require.NoError(b, os.MkdirAll(filepath.Join(dir, "in"), 0o700))
		require.NoError(b, os.WriteFile(filepath.Join(dir, "in", "big"), big, 0o600))
		rt := wazero.NewRuntime(ctx)
		defer func() { _ = rt.Close(ctx) }()
		wasi_snapshot_preview1.MustInstantiate(ctx, rt)
		cm, err := rt.CompileModule(ctx, wasm)
		require.NoError(b, err)
		b.SetBytes(int64(len(big)))
		for b.Loop() {
			var out bytes.Buffer
			cfg := wazero.NewModuleConfig().WithName("").WithStdout(&out).WithArgs("fsprobe", "cat", "/in/big").
				WithFSConfig(wazero.NewFSConfig().WithDirMount(dir, "/"))
			mod, err := rt.InstantiateModule(ctx, cm, cfg)
			if mod != nil {
				_ = mod.Close(ctx)
			}
			if err != nil && !strings.Contains(err.Error(), "exit_code(0)") || out.String() != want {
				b.Fatalf("got %q %v", out.String(), err)
			}
		}
	})
}

func gunzipped(b *testing.B, path string) []byte {
	b.Helper()
	f, err := os.Open(path) //nolint:gosec // test data
	require.NoError(b, err)
	defer func() { _ = f.Close() }()
	zr, err := gzip.NewReader(f)
	require.NoError(b, err)
	out, err := io.ReadAll(zr)
	require.NoError(b, err)
	return out
}

// BenchmarkInputTransfer: a hello-world job (which does not read its files)
// with one read-only input of each size, sent through the request pipe or
// in shared memory: what each way costs a job, to place the threshold
// (Config.SharedInputBytes) where shared memory starts to pay.
func BenchmarkInputTransfer(b *testing.B) {
	ctx := context.Background()
	exe, err := os.Executable()
	require.NoError(b, err)
	for _, size := range []int{4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20} {
		for _, mode := range []struct {
			name       string
			sharedFrom int
		}{{"pipe", -1}, {"shared", 1}} {
			b.Run(fmt.Sprintf("%dKiB/%s", size>>10, mode.name), func(b *testing.B) {
				pool, err := sandbox.New(sandbox.Config{Command: []string{exe}, Size: 1, CacheDir: b.TempDir(), SharedInputBytes: mode.sharedFrom})
				require.NoError(b, err)
				defer pool.Close()
				req := benchRequest(b, fixtures.Hello)
				req.Files = &executor.Files{Inputs: []executor.Input{{Path: "/in/x", Mode: "ro", Content: bytes.Repeat([]byte("x"), size)}}}
				_, err = pool.Execute(ctx, req) // compile outside the measurement
				require.NoError(b, err)
				b.SetBytes(int64(size))
				for b.Loop() {
					res, err := pool.Execute(ctx, req)
					if err != nil || string(res.Stdout) != "hello, world\n" {
						b.Fatalf("got %q %v %s", res.Stdout, err, res.ErrorMessage)
					}
				}
			})
		}
	}
}

// BenchmarkJobMemory: what a job's files add to its sandbox child's memory,
// read from /proc while the guest (testdata/inputs.c) spins at the end of
// its work: private memory (RssAnon: the Go heap, guest memory, compiled
// code) and shared memory mapped (RssShmem: the input arena, the output
// ring), each minus the same figure for the same job without files. Each
// case runs in a fresh child after two jobs without files (the module
// compiled), or, for the asset tree, two jobs that mounted it (the tree
// parsed and cached: the measured job is the third to mount it).
//
//	go test -run '^$' -bench JobMemory -benchtime 1x ./worker/sandbox/
func BenchmarkJobMemory(b *testing.B) {
	ctx := context.Background()
	exe, err := os.Executable()
	require.NoError(b, err)
	// Large enough that the Go heap's slack (a few MiB, as garbage
	// collections fall) is small beside the figures.
	const size = 128 << 20
	big := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	share := treeAsset(b, 1000, 64<<10) // 62.5 MiB
	cases := []struct {
		name       string
		sharedFrom int
		files      func() *executor.Files
		args       []string
	}{
		{"no-files", 0, func() *executor.Files { return &executor.Files{MaxFSBytes: 2 * size} }, nil},
		{"128MiB-input-arena", 0, func() *executor.Files {
			return &executor.Files{Inputs: []executor.Input{{Path: "/in/big", Mode: "ro", Content: big}}, MaxFSBytes: 2 * size}
		}, []string{"sum", "/in/big"}},
		{"64MiB-input-pipe", -1, func() *executor.Files { // the largest frame
			return &executor.Files{Inputs: []executor.Input{{Path: "/in/big", Mode: "ro", Content: big[:size/2]}}, MaxFSBytes: 2 * size}
		}, []string{"sum", "/in/big"}},
		{"128MiB-rw-input-changed", 0, func() *executor.Files {
			return &executor.Files{Inputs: []executor.Input{{Path: "/in/big", Mode: "rw", Content: big}}, MaxFSBytes: 2 * size}
		}, []string{"sum", "/in/big", "poke", "/in/big", "X"}},
		{"128MiB-written", 0, func() *executor.Files { return &executor.Files{MaxFSBytes: 2 * size} },
			[]string{"write", "/out", strconv.Itoa(size)}},
		{"62MiB-asset-tree-third-job", 0, func() *executor.Files {
			return &executor.Files{Assets: []executor.Asset{share}, MaxFSBytes: 2 * size}
		}, []string{"sum", "/share/d2/f42"}},
	}
	var base [2]float64
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var got [2]float64
			for b.Loop() {
				pool, err := sandbox.New(sandbox.Config{Command: []string{exe}, Size: 1, CacheDir: b.TempDir(), SharedInputBytes: tc.sharedFrom})
				require.NoError(b, err)
				prior, args := &executor.Files{}, []string(nil)
				if strings.Contains(tc.name, "tree") {
					prior, args = tc.files(), tc.args
				}
				for range 2 {
					res, err := pool.Execute(ctx, inputsJob(b, prior, args...))
					require.NoError(b, err)
					require.Equal(b, jobstate.Succeeded, res.Status, res.ErrorMessage)
				}
				got = spinningChildMemory(b, pool, inputsJob(b, tc.files(), append(tc.args, "spin")...))
				pool.Close()
			}
			if tc.name == "no-files" {
				base = got
			}
			b.ReportMetric(got[0]-base[0], "private-MiB")
			b.ReportMetric(got[1]-base[1], "shared-MiB")
		})
	}
}

// spinningChildMemory runs req, which ends in "spin", on a pool of one
// child, reads the child's RssAnon and RssShmem (MiB) once the guest
// spins, and cancels the job.
func spinningChildMemory(b *testing.B, pool *sandbox.Pool, req executor.Request) [2]float64 {
	b.Helper()
	pids := pool.PIDs()
	require.Len(b, pids, 1)
	spinning := make(chan struct{})
	var once sync.Once
	var out bytes.Buffer
	req.Output = func(_ executor.Stream, chunk []byte) {
		out.Write(chunk)
		if bytes.Contains(out.Bytes(), []byte("spin\n")) {
			once.Do(func() { close(spinning) })
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan executor.Result, 1)
	go func() {
		res, _ := pool.Execute(ctx, req)
		done <- res
	}()
	var mem [2]float64
	select {
	case <-spinning:
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pids[0]))
		require.NoError(b, err)
		for _, line := range strings.Split(string(status), "\n") {
			for i, field := range []string{"RssAnon:", "RssShmem:"} {
				if rest, ok := strings.CutPrefix(line, field); ok {
					kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
					mem[i] = kb / 1024
				}
			}
		}
		cancel()
		<-done
	case res := <-done:
		cancel()
		b.Fatalf("the job ended before it spun: %s %s %s", res.Status, res.ErrorMessage, res.Stdout)
	}
	return mem
}

// treeAsset writes a tar of n files of size bytes (in ten directories,
// d<i%10>/f<i>) and returns it as an asset mounted at /share.
func treeAsset(b *testing.B, n, size int) executor.Asset {
	b.Helper()
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	content := bytes.Repeat([]byte("a"), size)
	for i := range n {
		require.NoError(b, tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%d/f%d", i%10, i), Mode: 0o644,
			Size: int64(len(content)), Typeflag: tar.TypeReg}))
		_, err := tw.Write(content)
		require.NoError(b, err)
	}
	require.NoError(b, tw.Close())
	sum := sha256.Sum256(tarBuf.Bytes())
	tarPath := filepath.Join(b.TempDir(), "tree.tar")
	require.NoError(b, os.WriteFile(tarPath, tarBuf.Bytes(), 0o600))
	return executor.Asset{Mount: "/share", SHA256: hex.EncodeToString(sum[:]), TarPath: tarPath}
}
