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
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/oslimit"
	"github.com/wasmwizard/wasmwizard/worker/executor"
	"github.com/wasmwizard/wasmwizard/worker/sandbox/wire"
)

// Environment of a child process. The child gets nothing else from its
// parent's environment: no database URL, no tokens.
const (
	EnvChild       = "WIZARD_SANDBOX_CHILD"         // "1" in a child
	EnvCacheDir    = "WIZARD_SANDBOX_CACHE_DIR"     // wazero's compilation cache
	EnvMemoryMB    = "WIZARD_SANDBOX_MEMORY_MB"     // RLIMIT_DATA of the child, MiB (0: none)
	EnvLRU         = "WIZARD_SANDBOX_COMPILED_LRU"  // compiled modules kept in memory
	EnvParentCheck = "WIZARD_SANDBOX_PARENT_PID"    // the worker's pid
	EnvOutputFD    = "WIZARD_SANDBOX_OUTPUT_FD"     // the shared output ring (wire.RingSize bytes)
	EnvInputFD     = "WIZARD_SANDBOX_INPUT_FD"      // the input arena, read-only (wire.SharedSlices)
	EnvTreeCache   = "WIZARD_SANDBOX_TREE_CACHE_MB" // parsed asset trees kept in memory, MiB
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
	treeMB, _ := strconv.Atoi(os.Getenv(EnvTreeCache))
	trees := executor.NewTreeCache(executor.DefaultTreeCacheBytes)
	if treeMB > 0 {
		trees = executor.NewTreeCache(int64(treeMB) << 20)
	}
	engines := &engines{cfg: executor.EngineConfig{CacheDir: os.Getenv(EnvCacheDir), CompiledModules: lru, Trees: trees}}
	if _, err := engines.get(ctx, false); err != nil {
		fmt.Fprintf(logw, "sandbox: %v\n", err)
		return 1
	}
	// SIGUSR1 stops the running guest, if it is interruptible (a run that
	// collects files), so that its files are collected: the worker's cancel.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGUSR1)
	go func() {
		for range stop {
			if c := engines.cancel.Load(); c != nil {
				(*c)()
			}
		}
	}()
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
	arenaFD, err := strconv.Atoi(os.Getenv(EnvInputFD))
	if err != nil || arenaFD < 3 {
		fmt.Fprintf(logw, "sandbox: no input arena (%s=%q)\n", EnvInputFD, os.Getenv(EnvInputFD))
		return 1
	}
	inputs := &inputArena{fd: arenaFD}
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
		if err := serve(ctx, engines, req, r, inputs, rw, send); err != nil {
			fmt.Fprintf(logw, "sandbox: %v\n", err)
			return 1
		}
	}
}

// engines are the child's engines: the one jobs run on (without
// interruption checks), and, made on first use, the interruptible one that
// runs jobs that collect files. They share the asset-tree cache.
type engines struct {
	cfg           executor.EngineConfig
	fast, stopper *executor.Engine
	// cancel stops the run on the interruptible engine (SIGUSR1).
	cancel atomic.Pointer[context.CancelFunc]
}

func (e *engines) get(ctx context.Context, interruptible bool) (*executor.Engine, error) {
	var err error
	switch {
	case !interruptible && e.fast == nil:
		e.fast, err = executor.NewEngine(ctx, e.cfg)
	case interruptible && e.stopper == nil:
		cfg := e.cfg
		cfg.Interruptible = true
		e.stopper, err = executor.NewEngine(ctx, cfg)
	}
	if interruptible {
		return e.stopper, err
	}
	return e.fast, err
}

// readFiles reads the inputs that follow a Run frame; shared holds the
// bytes of the inputs in the input arena (wire.SharedSlices).
func readFiles(r io.Reader, wf *wire.Files, shared [][]byte) (*executor.Files, error) {
	f := &executor.Files{Preopens: wf.Preopens, Collect: wf.Collect, MaxFSBytes: wf.MaxFSBytes,
		MaxArtifactBytes: wf.MaxArtifactBytes}
	for i, in := range wf.Inputs {
		if in.Shared {
			// Borrowed from the read-only mapping: the job's filesystem
			// never writes borrowed bytes (it copies a file on its
			// first change).
			f.Inputs = append(f.Inputs, executor.Input{Path: in.Path, Mode: in.Mode, Content: shared[i]})
			continue
		}
		kind, b, err := wire.ReadFrame(r, in.Size)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", in.Path, err)
		}
		if kind != wire.Input || len(b) != in.Size {
			return nil, fmt.Errorf("input %q: a %s frame of %d bytes", in.Path, kind, len(b))
		}
		f.Inputs = append(f.Inputs, executor.Input{Path: in.Path, Mode: in.Mode, Content: b})
	}
	for _, a := range wf.Assets {
		f.Assets = append(f.Assets, executor.Asset{Mount: a.Mount, SHA256: a.SHA256, TarPath: a.TarPath})
	}
	return f, nil
}

// sendArtifacts sends the collected files before the result.
func sendArtifacts(arts []executor.Artifact, send func(wire.Kind, []byte, bool) error) error {
	for _, a := range arts {
		hdr, err := json.Marshal(wire.ArtifactHeader{Path: a.Path, Size: int64(len(a.Content))})
		if err != nil {
			return err
		}
		if err := send(wire.Artifact, hdr, false); err != nil {
			return err
		}
		for b := a.Content; len(b) > 0; {
			n := min(len(b), wire.ArtifactChunk)
			if err := send(wire.ArtifactData, b[:n], false); err != nil {
				return err
			}
			b = b[n:]
		}
	}
	return nil
}

func serve(ctx context.Context, engs *engines, req wire.RunRequest, r io.Reader, inputs *inputArena, rw *wire.RingWriter,
	send func(wire.Kind, []byte, bool) error) error {
	var files *executor.Files
	if req.Files != nil {
		var shared [][]byte
		if req.Files.SharedBytes > 0 {
			mem, err := inputs.mapping()
			if err != nil {
				return err
			}
			// Nothing of the job refers to the mapping once the run is
			// over and its artifacts (copies) are sent: the worker may
			// then write the arena for the next job, or shrink it.
			if shared, err = wire.SharedSlices(req.Files, mem); err != nil {
				return err
			}
		}
		var err error
		if files, err = readFiles(r, req.Files, shared); err != nil {
			return err
		}
	}
	// A run that collects files stops itself at its timeout (or at the
	// worker's SIGUSR1) and collects them; the worker kills it only if it
	// does not answer within a grace period.
	stoppable := files != nil && len(files.Collect) > 0 && req.TimeoutNanos > 0
	engine, err := engs.get(ctx, stoppable)
	if err != nil {
		return err
	}
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
		res = executor.Result{Outcome: jobstate.Outcome{Status: jobstate.Failed, ErrorCode: executor.CodeInstantiate, ErrorMessage: ce.Error()}}
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
		runCtx := ctx
		var timeout time.Duration
		if stoppable {
			var cancel context.CancelFunc
			runCtx, cancel = context.WithCancel(ctx)
			engs.cancel.Store(&cancel)
			defer func() {
				engs.cancel.Store(nil)
				cancel()
			}()
			timeout = max(time.Duration(req.TimeoutNanos)-time.Since(compileStart), time.Millisecond)
		}
		res = engine.Run(runCtx, cm, executor.Request{
			ModuleKey: req.ModuleKey, Function: req.Function, Args: req.Args, Env: req.Env, Stdin: req.Stdin,
			Params: req.Params, MemoryLimitMB: req.MemoryLimitMB, MaxOutputBytes: req.MaxOutputBytes + 1,
			Deterministic: req.Deterministic, StreamOnly: true, Timeout: timeout, Files: files,
			Output: func(s executor.Stream, chunk []byte) { rw.Write(uint8(s), chunk) },
		})
		if err := rw.Err(); err != nil {
			return err
		}
	}
	if req.CompileOnly && cm != nil {
		res.Status = jobstate.Succeeded
	}
	hdr.Status, hdr.ExitCode = res.Status, res.ExitCode
	hdr.StdoutTruncated, hdr.StderrTruncated = res.StdoutTruncated, res.StderrTruncated // the ring's cut flags say it too
	hdr.ReturnValues, hdr.ErrorCode, hdr.ErrorMessage = res.ReturnValues, res.ErrorCode, res.ErrorMessage
	hdr.MemoryPeakBytes, hdr.RunNanos = res.MemoryPeakBytes, res.RunTime.Nanoseconds()
	hdr.ArtifactsTruncated = res.ArtifactsTruncated
	if err := sendArtifacts(res.Artifacts, send); err != nil {
		return err
	}
	b, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	// Every byte of output is in the ring before the outcome leaves.
	return send(wire.Result, b, true)
}

// inputArena is the child's side of its input arena: the read-only
// descriptor the worker passed, and a read-only shared mapping of it as
// large as the arena was when last mapped.
type inputArena struct {
	fd  int
	mem []byte
}

// mapping returns the arena mapped whole, remapped if the worker resized
// it since. Its length is the arena's real size (fstat), against which the
// request's offsets and sizes are then checked.
func (a *inputArena) mapping() ([]byte, error) {
	var st unix.Stat_t
	if err := unix.Fstat(a.fd, &st); err != nil {
		return nil, fmt.Errorf("input arena: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size < 0 || st.Size > wire.MaxSharedBytes+arenaGrain {
		return nil, fmt.Errorf("input arena: mode %#o, %d bytes", st.Mode, st.Size)
	}
	if int64(len(a.mem)) == st.Size {
		return a.mem, nil
	}
	if a.mem != nil {
		if err := unix.Munmap(a.mem); err != nil {
			return nil, fmt.Errorf("input arena: %w", err)
		}
		a.mem = nil
	}
	if st.Size == 0 {
		return nil, nil
	}
	m, err := unix.Mmap(a.fd, 0, int(st.Size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map the input arena: %w", err)
	}
	a.mem = m
	return m, nil
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
