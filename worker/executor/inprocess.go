package executor

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// pageSize is the size of a WebAssembly memory page.
const pageSize = 64 << 10

// maxErrorMessage bounds the error text stored with a job.
const maxErrorMessage = 2048

// InProcess runs guests inside the calling process, one wazero runtime per
// run so that each run has its own memory limit. It interrupts guests through
// context cancellation (WithCloseOnContextDone), which costs CPU-bound code
// dearly; sandbox processes replace it (see docs/RATIONALE.md).
type InProcess struct {
	cache wazero.CompilationCache
}

// NewInProcess returns an executor whose runtimes share cache for compiled
// code (nil for none).
func NewInProcess(cache wazero.CompilationCache) *InProcess {
	return &InProcess{cache: cache}
}

// Execute runs req to completion, timeout or cancellation.
func (e *InProcess) Execute(ctx context.Context, req Request) (Result, error) {
	start := time.Now()
	cfg := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(uint32(req.MemoryLimitMB) * (1 << 20 / pageSize))
	if e.cache != nil {
		cfg = cfg.WithCompilationCache(e.cache)
	}
	// The runtime outlives ctx's cancellation long enough to be closed.
	rt := wazero.NewRuntimeWithConfig(context.WithoutCancel(ctx), cfg)
	defer func() { _ = rt.Close(context.WithoutCancel(ctx)) }()
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return Result{}, fmt.Errorf("instantiate wasi: %w", err)
	}
	compiled, err := rt.CompileModule(ctx, req.Module)
	if err != nil {
		// wazero checks the declared minimum memory against the limit here.
		if msg := err.Error(); strings.Contains(msg, "memory") && strings.Contains(msg, "over limit") {
			return failed(CodeMemoryLimit, fmt.Sprintf("the module needs more memory than the job's limit of %d MiB: %s", req.MemoryLimitMB, msg), start), nil
		}
		return failed(CodeInstantiate, "compile: "+err.Error(), start), nil
	}

	stdout := &capped{limit: req.MaxOutputBytes}
	stderr := &capped{limit: req.MaxOutputBytes}
	mc := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
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
	if !req.Deterministic {
		// wazero's defaults are a fixed clock and a fixed random source;
		// ordinary jobs get the real ones.
		mc = mc.WithSysWalltime().WithSysNanotime().WithSysNanosleep().WithRandSource(rand.Reader)
	}

	runCtx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	res := Result{}
	finish := func() Result {
		res.Stdout, res.StdoutTruncated = stdout.buf, stdout.truncated
		res.Stderr, res.StderrTruncated = stderr.buf, stderr.truncated
		res.RunTime = time.Since(start)
		return res
	}

	mod, err := rt.InstantiateModule(runCtx, compiled, mc)
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "memory") && (strings.Contains(msg, "limit") || strings.Contains(msg, "exceeds")) {
			res = failed(CodeMemoryLimit, fmt.Sprintf("the module needs more memory than the job's limit of %d MiB: %s", req.MemoryLimitMB, msg), start)
			return finish(), nil
		}
		res = failed(CodeInstantiate, "instantiate: "+msg, start)
		return finish(), nil
	}
	defer func() { _ = mod.Close(context.WithoutCancel(ctx)) }()

	var callErr error
	if req.Function == "" || req.Function == "_start" {
		fn := mod.ExportedFunction("_start")
		if fn == nil {
			res = failed(CodeBadFunction, "the module does not export _start (it is not a WASI command); name an exported function instead", start)
			return finish(), nil
		}
		_, callErr = fn.Call(runCtx)
	} else {
		fn := mod.ExportedFunction(req.Function)
		if fn == nil {
			res = failed(CodeBadFunction, fmt.Sprintf("the module does not export a function %q", req.Function), start)
			return finish(), nil
		}
		params, perr := EncodeParams(fn.Definition().ParamTypes(), req.Params)
		if perr != nil {
			res = failed(CodeBadParams, perr.Error(), start)
			return finish(), nil
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
	if mem := mod.Memory(); mem != nil {
		res.MemoryPeakBytes = int64(mem.Size())
	}
	res.Status, res.ExitCode, res.ErrorCode, res.ErrorMessage = classify(ctx, runCtx, callErr, req.Timeout)
	return finish(), nil
}

func classify(parent, run context.Context, err error, timeout time.Duration) (status string, exit *int, code, msg string) {
	if err == nil {
		zero := 0
		return Succeeded, &zero, "", ""
	}
	var exitErr *sys.ExitError
	if errors.As(err, &exitErr) {
		switch exitErr.ExitCode() {
		case sys.ExitCodeContextCanceled, sys.ExitCodeDeadlineExceeded:
			if parent.Err() != nil {
				return Cancelled, nil, CodeCancelled, "the job was cancelled while running"
			}
			return TimedOut, nil, CodeTimeout, fmt.Sprintf("the job ran longer than its timeout of %s", timeout)
		case 0:
			zero := 0
			return Succeeded, &zero, "", ""
		default:
			c := int(exitErr.ExitCode())
			return Failed, &c, CodeExitNonzero, fmt.Sprintf("the program exited with code %d", c)
		}
	}
	if run.Err() != nil {
		if parent.Err() != nil {
			return Cancelled, nil, CodeCancelled, "the job was cancelled while running"
		}
		return TimedOut, nil, CodeTimeout, fmt.Sprintf("the job ran longer than its timeout of %s", timeout)
	}
	m := err.Error()
	if len(m) > maxErrorMessage {
		m = m[:maxErrorMessage]
	}
	return Failed, nil, CodeTrap, m
}

func failed(code, msg string, start time.Time) Result {
	if len(msg) > maxErrorMessage {
		msg = msg[:maxErrorMessage]
	}
	return Result{Status: Failed, ErrorCode: code, ErrorMessage: msg, RunTime: time.Since(start)}
}
