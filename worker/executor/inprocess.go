package executor

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"
)

// InProcess runs guests inside the calling process on an Interruptible
// engine: a context deadline stops them, at a large cost to CPU-bound code.
// The worker uses sandbox child processes instead (worker/sandbox); this
// executor serves tests and benchmarks as the in-process baseline.
type InProcess struct {
	once   sync.Once
	cfg    EngineConfig
	engine *Engine
	err    error
}

// NewInProcess returns an in-process executor whose compiled code is cached
// in cacheDir (empty: in memory only).
func NewInProcess(cacheDir string) *InProcess {
	return &InProcess{cfg: EngineConfig{CacheDir: cacheDir, Interruptible: true}}
}

// Execute runs req to completion, timeout or cancellation.
func (p *InProcess) Execute(ctx context.Context, req Request) (Result, error) {
	p.once.Do(func() { p.engine, p.err = NewEngine(context.Background(), p.cfg) })
	if p.err != nil {
		return Result{}, p.err
	}
	cm, err := p.engine.Compile(ctx, req.ModuleKey, func() ([]byte, error) {
		if req.Module == nil && req.ModulePath != "" {
			return os.ReadFile(req.ModulePath)
		}
		return req.Module, nil
	})
	if err != nil {
		var ce *CompileError
		if errors.As(err, &ce) {
			return failed(CodeInstantiate, ce.Error(), time.Now()), nil
		}
		return Result{}, err
	}
	return p.engine.Run(ctx, cm, req), nil
}
