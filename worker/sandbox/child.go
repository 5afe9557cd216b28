// Package sandbox runs guests in child processes of the worker. The parent
// (Pool) keeps one child per unit of concurrency and enforces every wall-clock
// limit by killing the child; the child (ChildMain) compiles and runs guests
// at full speed, without interruption checks. See docs/RATIONALE.md.
package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wasmwizard/wasmwizard/shared/oslimit"
	"github.com/wasmwizard/wasmwizard/worker/executor"
	"github.com/wasmwizard/wasmwizard/worker/sandbox/wire"
)

// Environment of a child process. The child gets nothing else from its
// parent's environment: no database URL, no tokens.
const (
	EnvChild       = "WIZARD_SANDBOX_CHILD"        // "1" in a child
	EnvCacheDir    = "WIZARD_SANDBOX_CACHE_DIR"    // wazero's compilation cache
	EnvMemoryMB    = "WIZARD_SANDBOX_MEMORY_MB"    // RLIMIT_DATA of the child, MiB (0: none)
	EnvLRU         = "WIZARD_SANDBOX_COMPILED_LRU" // compiled modules kept in memory
	EnvParentCheck = "WIZARD_SANDBOX_PARENT_PID"   // the worker's pid
	EnvOutputFD    = "WIZARD_SANDBOX_OUTPUT_FD"    // the shared output ring (wire.RingSize bytes)
)

// IsChild reports whether this process was started as a sandbox child.
func IsChild() bool { return os.Getenv(EnvChild) == "1" }

// ChildMain is the child's main loop: it reads Run frames from in and writes
// frames to out until in closes. It returns the process exit code.
func ChildMain(in io.Reader, out io.Writer, logw io.Writer) int {
	// Other processes of the same user (another child, after an escape) may
	// not read this one's memory or environment through /proc or ptrace.
	oslimit.NotDumpable()
	// The OS backstop: whatever a guest does, this process cannot hold more
	// private writable memory than this (heap, guest memories, compiled
	// code), and fails (sandbox_crashed) instead of exhausting the machine.
	mb, _ := strconv.Atoi(os.Getenv(EnvMemoryMB))
	if err := oslimit.LimitMemory(mb); err != nil {
		fmt.Fprintf(logw, "sandbox: %v\n", err)
		return 1
	}
	if ppid, _ := strconv.Atoi(os.Getenv(EnvParentCheck)); ppid > 0 {
		go watchParent(ppid)
	}
	lru, _ := strconv.Atoi(os.Getenv(EnvLRU))
	ctx := context.Background()
	engine, err := executor.NewEngine(ctx, executor.EngineConfig{
		CacheDir: os.Getenv(EnvCacheDir), CompiledModules: lru,
	})
	if err != nil {
		fmt.Fprintf(logw, "sandbox: %v\n", err)
		return 1
	}
	r := bufio.NewReaderSize(pollable(in), 64<<10)
	w := bufio.NewWriterSize(pollable(out), 64<<10)
	// send queues a frame; flush sends what is queued.
	send := func(kind wire.Kind, payload []byte, flush bool) error {
		if err := wire.WriteFrame(w, kind, payload); err != nil {
			return err
		}
		if !flush {
			return nil
		}
		return w.Flush()
	}
	ring, err := mapOutputRing(os.Getenv(EnvOutputFD))
	if err != nil {
		fmt.Fprintf(logw, "sandbox: %v\n", err)
		return 1
	}
	rw, err := wire.NewRingWriter(ring,
		func(k wire.Kind) error { return send(k, nil, true) },
		func() error {
			kind, _, err := wire.ReadFrame(r, 0)
			if err == nil && kind != wire.Ack {
				err = fmt.Errorf("expected an ack frame, got %s", kind)
			}
			return err
		})
	if err != nil {
		fmt.Fprintf(logw, "sandbox: %v\n", err)
		return 1
	}
	if err := send(wire.Ready, nil, true); err != nil {
		return 1
	}
	for {
		kind, payload, err := wire.ReadFrame(r, wire.MaxFrame)
		if errors.Is(err, io.EOF) {
			return 0 // the worker closed our stdin: done
		}
		if err != nil {
			fmt.Fprintf(logw, "sandbox: %v\n", err)
			return 1
		}
		if kind == wire.Ack {
			continue // for a wait that found room by itself
		}
		if kind != wire.Run {
			fmt.Fprintf(logw, "sandbox: unexpected frame %s\n", kind)
			return 1
		}
		req, err := wire.DecodeRunRequest(payload)
		if err != nil {
			fmt.Fprintf(logw, "sandbox: %v\n", err)
			return 1
		}
		if err := serve(ctx, engine, req, rw, send); err != nil {
			fmt.Fprintf(logw, "sandbox: %v\n", err)
			return 1
		}
	}
}

func serve(ctx context.Context, engine *executor.Engine, req wire.RunRequest, rw *wire.RingWriter,
	send func(wire.Kind, []byte, bool) error) error {
	compileStart := time.Now()
	compiled := false
	cm, err := engine.Compile(ctx, req.ModuleKey, func() ([]byte, error) {
		compiled = true
		return os.ReadFile(req.ModulePath)
	})
	var hdr wire.ResultHeader
	if compiled {
		hdr.CompileNanos = time.Since(compileStart).Nanoseconds()
	}
	var res executor.Result
	var ce *executor.CompileError
	switch {
	case errors.As(err, &ce):
		res = executor.Result{Status: executor.Failed, ErrorCode: executor.CodeInstantiate, ErrorMessage: ce.Error()}
	case err != nil:
		return err // the module file is missing: a platform problem
	}
	if err := send(wire.Compiled, nil, true); err != nil {
		return err
	}
	if cm != nil && !req.CompileOnly {
		// The output goes to the shared ring as it is written; the ring
		// keeps MaxOutputBytes per stream and records the cut, so the
		// engine's own cap is one byte higher (the byte that shows a cut).
		rw.Reset(req.MaxOutputBytes)
		res = engine.Run(ctx, cm, executor.Request{
			ModuleKey: req.ModuleKey, Function: req.Function, Args: req.Args, Env: req.Env, Stdin: req.Stdin,
			Params: req.Params, MemoryLimitMB: req.MemoryLimitMB, MaxOutputBytes: req.MaxOutputBytes + 1,
			Deterministic: req.Deterministic, StreamOnly: true,
			Output: func(s executor.Stream, chunk []byte) { rw.Write(uint8(s), chunk) },
		})
		if err := rw.Err(); err != nil {
			return err
		}
	}
	if req.CompileOnly && cm != nil {
		res.Status = executor.Succeeded
	}
	hdr.Status, hdr.ExitCode = res.Status, res.ExitCode
	hdr.StdoutTruncated, hdr.StderrTruncated = res.StdoutTruncated, res.StderrTruncated // the ring's cut flags say it too
	hdr.ReturnValues, hdr.ErrorCode, hdr.ErrorMessage = res.ReturnValues, res.ErrorCode, res.ErrorMessage
	hdr.MemoryPeakBytes, hdr.RunNanos = res.MemoryPeakBytes, res.RunTime.Nanoseconds()
	b, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	// Every byte of output is in the ring before the outcome leaves.
	return send(wire.Result, b, true)
}

// mapOutputRing maps the output ring the worker passed as descriptor fd.
func mapOutputRing(fd string) ([]byte, error) {
	n, err := strconv.Atoi(fd)
	if err != nil || n < 3 {
		return nil, fmt.Errorf("no output ring descriptor (%s=%q)", EnvOutputFD, fd)
	}
	m, err := unix.Mmap(n, 0, wire.RingSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map the output ring: %w", err)
	}
	_ = unix.Close(n)
	return m, nil
}

// pollable returns a file of the same descriptor in non-blocking mode, so
// that waiting for the next request parks a goroutine in Go's network
// poller instead of a thread in read(2). A thread blocked in a system call
// keeps the runtime's monitor waking every 20 µs to take its processor
// back, which cost an idle-between-jobs child more CPU than a small job.
// Anything that is not an *os.File is returned as it is.
func pollable[T any](v T) T {
	f, ok := any(v).(*os.File)
	if !ok {
		return v
	}
	fd := f.Fd()
	if err := unix.SetNonblock(int(fd), true); err != nil {
		return v
	}
	nf, _ := any(os.NewFile(fd, f.Name())).(T)
	return nf
}

// watchParent exits when the worker is gone (the child was re-parented),
// in case the kernel's parent-death signal did not reach us.
func watchParent(ppid int) {
	for range time.Tick(200 * time.Millisecond) {
		if os.Getppid() != ppid {
			os.Exit(3)
		}
	}
}
