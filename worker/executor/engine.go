package executor

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"

	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
	"github.com/wasmwizard/wasmwizard/worker/jobfs"
)

// pageSize is the size of a WebAssembly memory page.
const pageSize = 64 << 10

// maxErrorMessage bounds the error text stored with a job.
const maxErrorMessage = 2048

// deterministicSeed seeds the random source of deterministic runs.
const deterministicSeed = 0x5741534d57495a // "WASMWIZ"

// EngineConfig configures an Engine.
type EngineConfig struct {
	// CacheDir holds wazero's on-disk compilation cache, shared by every
	// engine (process) pointed at it. Empty means in memory only.
	CacheDir string
	// CompiledModules bounds the in-memory LRU of compiled modules.
	CompiledModules int
	// Interruptible compiles guests with interruption checks so that a
	// context deadline stops them. It makes CPU-bound code much slower; the
	// sandbox child runs without it and is killed instead.
	Interruptible bool
	// Trees caches parsed asset trees; engines of one process may share
	// one. Nil: a cache of DefaultTreeCacheBytes of its own.
	Trees *TreeCache
}

// DefaultTreeCacheBytes bounds an engine's own asset-tree cache.
const DefaultTreeCacheBytes = 256 << 20

// Engine compiles and runs guests on one wazero runtime. Each run gets its
// own memory limit through a memory allocator, so one runtime (and one
// compiled-module cache) serves every job. Runs must not overlap unless the
// engine is Interruptible (the in-process executor).
type Engine struct {
	rt        wazero.Runtime
	compiled  *lru.Cache[string, *Compiled]
	interrupt bool
	memory    spareMemory
	trees     *TreeCache
}

// NewEngine creates the runtime, its compilation cache and WASI.
func NewEngine(ctx context.Context, cfg EngineConfig) (*Engine, error) {
	rc := wazero.NewRuntimeConfig().WithCloseOnContextDone(cfg.Interruptible)
	if cfg.CacheDir != "" {
		cache, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("compilation cache %s: %w", cfg.CacheDir, err)
		}
		rc = rc.WithCompilationCache(cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("instantiate wasi: %w", err)
	}
	size := cfg.CompiledModules
	if size <= 0 {
		size = 64
	}
	cache, err := lru.NewWithEvict(size, func(_ string, cm *Compiled) {
		_ = cm.Close(context.Background())
	})
	if err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("compiled module cache: %w", err)
	}
	trees := cfg.Trees
	if trees == nil {
		trees = NewTreeCache(DefaultTreeCacheBytes)
	}
	return &Engine{rt: rt, compiled: cache, interrupt: cfg.Interruptible, trees: trees}, nil
}

// Close releases the runtime and every compiled module.
func (e *Engine) Close(ctx context.Context) error {
	e.compiled.Purge()
	e.memory.release()
	return e.rt.Close(ctx)
}

// CompileError is a module that does not compile; its message is the job's
// error.
type CompileError struct{ Err error }

func (e *CompileError) Error() string { return "compile: " + e.Err.Error() }
func (e *CompileError) Unwrap() error { return e.Err }

// Compiled is a compiled module and what its tables can cost.
type Compiled struct {
	wazero.CompiledModule
	// TableBytes is what the module's tables take at most, at their
	// (capped) maximums.
	TableBytes uint64
}

// tableAllowance is what tables may take without being charged to the
// job's memory limit: the capped tables of any module with small declared
// minimums fit in it.
const tableAllowance = wasmmeta.TableElementsCap * wasmmeta.TableBytesPerElement

// Compile returns the compiled module for key, compiling the bytes load
// returns on a cache miss (wazero's on-disk cache may still spare the
// native compilation). Tables are capped first (wasmmeta.CapTables).
func (e *Engine) Compile(ctx context.Context, key string, load func() ([]byte, error)) (*Compiled, error) {
	if key != "" {
		if cm, ok := e.compiled.Get(key); ok {
			return cm, nil
		}
	}
	bin, err := load()
	if err != nil {
		return nil, fmt.Errorf("load module: %w", err)
	}
	// The counts that size the compiler's allocations are bounded first,
	// as at upload: modules uploaded before a limit existed reach here too.
	if err := wasmmeta.Precheck(bin); err != nil {
		return nil, &CompileError{Err: fmt.Errorf("the module is outside the platform's limits: %w", err)}
	}
	// table.grow is bounded only by a table's declared maximum, and wazero
	// allocates table elements outside the guest memory's allocator.
	bin, elems, err := wasmmeta.CapTables(bin)
	if err != nil {
		return nil, &CompileError{Err: fmt.Errorf("read the table section: %w", err)}
	}
	wcm, err := e.rt.CompileModule(ctx, bin)
	if err != nil {
		return nil, &CompileError{Err: err}
	}
	cm := &Compiled{CompiledModule: wcm, TableBytes: elems * wasmmeta.TableBytesPerElement}
	if key != "" {
		e.compiled.Add(key, cm)
	}
	return cm, nil
}

// Run executes one job on a compiled module. Guest failures are results.
// With an Interruptible engine, ctx's end stops the guest; otherwise the
// caller must kill the process.
func (e *Engine) Run(ctx context.Context, cm *Compiled, req Request) Result {
	start := time.Now()
	limit := uint64(req.MemoryLimitMB) << 20
	// Tables beyond the allowance count against the job's memory limit:
	// the guest's linear memory gets what they leave.
	if tables := cm.TableBytes; tables > tableAllowance {
		charge := tables - tableAllowance
		if charge > limit {
			return failed(CodeMemoryLimit, fmt.Sprintf("the module's tables need %d MiB, more than the job's limit of %d MiB",
				(tables+(1<<20)-1)>>20, req.MemoryLimitMB), start)
		}
		limit -= charge
	}
	if min := declaredMinMemory(cm); min > limit {
		return failed(CodeMemoryLimit, fmt.Sprintf("the module declares a minimum memory of %d MiB, more than the job's limit of %d MiB",
			min>>20, req.MemoryLimitMB), start)
	}

	streamOnly := req.StreamOnly && req.Output != nil
	stdout := &capped{limit: req.MaxOutputBytes, stream: StreamStdout, out: req.Output, discard: streamOnly}
	stderr := &capped{limit: req.MaxOutputBytes, stream: StreamStderr, out: req.Output, discard: streamOnly}
	mem := &memoryAllocator{limit: limit, spare: &e.memory}
	mc := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(). // _start and _initialize are called below
		WithStdin(bytes.NewReader(req.Stdin)).
		WithStdout(stdout).
		WithStderr(stderr).
		WithArgs(append([]string{"module"}, req.Args...)...)
	keys := make([]string, 0, len(req.Env))
	for k := range req.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		mc = mc.WithEnv(k, req.Env[k])
	}
	var now func() int64
	if req.Deterministic {
		// wazero's default clocks are fixed; the random source is seeded.
		mc = mc.WithRandSource(seededReader(deterministicSeed))
		now = func() int64 { return 0 }
	} else {
		mc = mc.WithSysWalltime().WithSysNanotime().WithSysNanosleep().WithRandSource(rand.Reader)
	}
	var jfs *jobfs.FS
	if req.Files != nil {
		var err error
		if jfs, err = buildFS(e.trees, req.Files, now); err == nil {
			var fsc wazero.FSConfig
			if fsc, err = fsConfig(jfs, req.Files); err == nil {
				mc = mc.WithFSConfig(fsc)
			}
		}
		if err != nil {
			return failed(CodeInstantiate, "the job's files: "+err.Error(), start)
		}
	}

	runCtx := experimental.WithMemoryAllocator(ctx, mem)
	if e.interrupt && req.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(runCtx, req.Timeout)
		defer cancel()
	}
	res := Result{}
	finish := func() Result {
		if jfs != nil {
			// Also after a failure, a timeout or a cancel: the guest is
			// stopped, its files are as it left them.
			arts, cut, err := collect(jfs, req.Files)
			if err != nil && res.ErrorMessage == "" {
				res.ErrorMessage = truncate("collect artifacts: " + err.Error())
			}
			res.Artifacts, res.ArtifactsTruncated = arts, cut
		}
		res.Stdout, res.StdoutTruncated = stdout.buf, stdout.truncated
		res.Stderr, res.StderrTruncated = stderr.buf, stderr.truncated
		res.MemoryPeakBytes = int64(mem.peak)
		res.RunTime = time.Since(start)
		if res.Status == jobstate.Failed && mem.refused && res.ErrorCode != CodeMemoryLimit {
			// The guest gave up after a refused memory.grow: that is the
			// memory limit, whatever way the guest reported it.
			res.ErrorCode = CodeMemoryLimit
			res.ErrorMessage = fmt.Sprintf("the guest hit the job's memory limit of %d MiB (%s)", req.MemoryLimitMB, res.ErrorMessage)
		}
		return res
	}

	mod, err := instantiate(runCtx, e.rt, cm.CompiledModule, mc)
	if err != nil {
		res.Status, res.ExitCode, res.ErrorCode, res.ErrorMessage = classify(ctx, runCtx, err, req.Timeout)
		if res.ErrorCode == CodeTrap && !isTrap(err) {
			res.ErrorCode, res.ErrorMessage = CodeInstantiate, truncate("instantiate: "+err.Error())
		}
		return finish()
	}
	defer func() { _ = mod.Close(context.WithoutCancel(ctx)) }()

	var callErr error
	if req.Function == "" || req.Function == "_start" {
		fn := mod.ExportedFunction("_start")
		if fn == nil {
			res = failed(CodeBadFunction, "the module does not export _start (it is not a WASI command); name an exported function instead", start)
			return finish()
		}
		_, callErr = fn.Call(runCtx)
	} else {
		fn := mod.ExportedFunction(req.Function)
		if fn == nil {
			res = failed(CodeBadFunction, fmt.Sprintf("the module does not export a function %q", req.Function), start)
			return finish()
		}
		params, perr := EncodeParams(fn.Definition().ParamTypes(), req.Params)
		if perr != nil {
			res = failed(CodeBadParams, perr.Error(), start)
			return finish()
		}
		if init := mod.ExportedFunction("_initialize"); init != nil {
			_, callErr = init.Call(runCtx)
		}
		if callErr == nil {
			var vals []uint64
			vals, callErr = fn.Call(runCtx, params...)
			if callErr == nil {
				res.ReturnValues = DecodeResults(fn.Definition().ResultTypes(), vals)
			}
		}
	}
	res.Status, res.ExitCode, res.ErrorCode, res.ErrorMessage = classify(ctx, runCtx, callErr, req.Timeout)
	return finish()
}

// instantiate runs the module's start section too; a panic from the memory
// allocator (a hidden memory whose minimum is over the limit) is an error.
func instantiate(ctx context.Context, rt wazero.Runtime, cm wazero.CompiledModule, mc wazero.ModuleConfig) (mod api.Module, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("memory allocation refused: %v", r)
		}
	}()
	return rt.InstantiateModule(ctx, cm, mc)
}

func declaredMinMemory(cm wazero.CompiledModule) uint64 {
	var min uint32
	for _, m := range cm.ImportedMemories() {
		min = max(min, m.Min())
	}
	for _, m := range cm.ExportedMemories() {
		min = max(min, m.Min())
	}
	return uint64(min) * pageSize
}

func isTrap(err error) bool { return strings.Contains(err.Error(), "wasm error:") }

func classify(parent, run context.Context, err error, timeout time.Duration) (status jobstate.Status, exit *int, code, msg string) {
	if err == nil {
		zero := 0
		return jobstate.Succeeded, &zero, "", ""
	}
	var exitErr *sys.ExitError
	if errors.As(err, &exitErr) {
		switch exitErr.ExitCode() {
		case sys.ExitCodeContextCanceled, sys.ExitCodeDeadlineExceeded:
			if parent.Err() != nil {
				return jobstate.Cancelled, nil, CodeCancelled, "the job was cancelled while running"
			}
			return jobstate.TimedOut, nil, CodeTimeout, fmt.Sprintf("the job ran longer than its timeout of %s", timeout)
		case 0:
			zero := 0
			return jobstate.Succeeded, &zero, "", ""
		default:
			c := int(exitErr.ExitCode())
			return jobstate.Failed, &c, CodeExitNonzero, fmt.Sprintf("the program exited with code %d", c)
		}
	}
	if run.Err() != nil {
		if parent.Err() != nil {
			return jobstate.Cancelled, nil, CodeCancelled, "the job was cancelled while running"
		}
		return jobstate.TimedOut, nil, CodeTimeout, fmt.Sprintf("the job ran longer than its timeout of %s", timeout)
	}
	return jobstate.Failed, nil, CodeTrap, truncate(err.Error())
}

func failed(code, msg string, start time.Time) Result {
	return Result{Outcome: jobstate.Outcome{Status: jobstate.Failed, ErrorCode: code, ErrorMessage: truncate(msg), RunTime: time.Since(start)}}
}

// truncate cuts msg to maxErrorMessage bytes, on a rune boundary. (The
// store still replaces NUL and bytes that are not UTF-8, which a guest can
// put in a trap's message through its functions' debug names.)
func truncate(msg string) string {
	if len(msg) <= maxErrorMessage {
		return msg
	}
	n := maxErrorMessage
	for i := n; i > n-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(msg[i]) {
			n = i
			break
		}
	}
	return msg[:n]
}

// memoryAllocator backs a guest memory with an anonymous mapping of at
// least the job's limit, refusing to grow past the limit and recording the
// peak size. Pages are committed only when the guest touches them and
// growth never copies. When the module closes, the mapping is zeroed and
// kept for the engine's next run (spareMemory): mapping and unmapping it
// for every job cost more than a small job's whole run (page tables built
// and torn down, and a TLB flush on every CPU the process ran on).
type memoryAllocator struct {
	limit   uint64
	peak    uint64
	refused bool
	mapped  []byte
	spare   *spareMemory
}

func (m *memoryAllocator) Allocate(_, _ uint64) experimental.LinearMemory { return m }

func (m *memoryAllocator) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.refused = true
		if m.mapped == nil {
			// The initial allocation: wazero requires the minimum; the
			// caller recovers from the resulting panic.
			panic(fmt.Sprintf("memory minimum of %d bytes is over the job's limit of %d bytes", size, m.limit))
		}
		return nil
	}
	if m.mapped == nil {
		if m.limit == 0 {
			return []byte{}
		}
		b, err := m.spare.take(m.limit)
		if err != nil {
			m.refused = true
			if size > 0 {
				panic(fmt.Sprintf("cannot map %d bytes of guest memory: %v", m.limit, err))
			}
			return nil
		}
		m.mapped = b
	}
	m.peak = max(m.peak, size)
	return m.mapped[:size:size]
}

func (m *memoryAllocator) Free() {
	if m.mapped != nil {
		m.spare.put(m.mapped, m.peak)
		m.mapped = nil
	}
}

// zeroInPlace is the largest used size that is cleared by writing zeros
// (the pages stay committed for the next run); larger memories are given
// back to the OS with MADV_DONTNEED, which also reads back as zeros.
const zeroInPlace = 1 << 20

// spareMemory keeps one zeroed guest-memory mapping between runs.
// Invariant: every byte of the spare mapping is zero.
type spareMemory struct {
	mu sync.Mutex
	b  []byte
}

// take returns a zeroed mapping of at least size bytes: the spare if it is
// large enough, else a new one (the smaller spare is unmapped first, so the
// process never holds both against its RLIMIT_DATA).
func (s *spareMemory) take(size uint64) ([]byte, error) {
	s.mu.Lock()
	b := s.b
	s.b = nil
	s.mu.Unlock()
	if uint64(len(b)) >= size {
		return b, nil
	}
	if b != nil {
		_ = unix.Munmap(b)
	}
	return unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE)
}

// put zeroes the first used bytes of b (nothing past them was ever
// exposed to the guest) and keeps it as the spare, or unmaps it if a
// spare is already kept. A mapping that cannot be zeroed is unmapped.
func (s *spareMemory) put(b []byte, used uint64) {
	used = min(used, uint64(len(b)))
	if used <= zeroInPlace {
		clear(b[:used])
	} else if err := unix.Madvise(b[:pageAlign(used, len(b))], unix.MADV_DONTNEED); err != nil {
		_ = unix.Munmap(b)
		return
	}
	s.mu.Lock()
	if s.b == nil {
		s.b, b = b, nil
	}
	s.mu.Unlock()
	if b != nil {
		_ = unix.Munmap(b)
	}
}

// release unmaps the spare.
func (s *spareMemory) release() {
	s.mu.Lock()
	b := s.b
	s.b = nil
	s.mu.Unlock()
	if b != nil {
		_ = unix.Munmap(b)
	}
}

// pageAlign rounds n up to the page size, at most to limit.
func pageAlign(n uint64, limit int) int {
	page := uint64(unix.Getpagesize())
	return int(min((n+page-1)/page*page, uint64(limit)))
}

// seededReader is a deterministic byte stream for deterministic runs.
func seededReader(seed uint64) io.Reader {
	return &chachaReader{r: mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24),
		byte(seed >> 32), byte(seed >> 40), byte(seed >> 48)})}
}

type chachaReader struct{ r *mrand.ChaCha8 }

func (c *chachaReader) Read(p []byte) (int, error) { return c.r.Read(p) }
