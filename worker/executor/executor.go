// Package executor runs one job's guest code and reports what happened. The
// Executor interface is what the worker's job handler depends on; InProcess
// runs the guest inside the worker process with wazero.
package executor

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/wasmwizard/wasmwizard/shared/jobstate"
)

// Job failure codes reported in Result.ErrorCode.
const (
	CodeExitNonzero    = "exit_nonzero"
	CodeTrap           = "trap"
	CodeMemoryLimit    = "memory_limit"
	CodeTimeout        = "timeout"
	CodeCancelled      = "cancelled"
	CodeBadFunction    = "function_not_found"
	CodeBadParams      = "invalid_params"
	CodeInstantiate    = "instantiate_failed"
	CodeSandboxCrashed = "sandbox_crashed"
)

// Stream names one of the guest's output streams.
type Stream uint8

// The guest's output streams.
const (
	StreamStdout Stream = 1
	StreamStderr Stream = 2
)

func (s Stream) String() string {
	switch s {
	case StreamStdout:
		return "stdout"
	case StreamStderr:
		return "stderr"
	}
	return "stream(" + strconv.Itoa(int(s)) + ")"
}

// Request is one execution.
type Request struct {
	// ModuleKey identifies Module's bytes (its SHA-256, hex) for caches.
	ModuleKey string
	// Module holds the bytes, or ModulePath names the file holding them
	// (sandbox children read modules from the worker's local store).
	Module     []byte
	ModulePath string
	// Function is "_start" for a WASI command, or an exported function
	// called with Params.
	Function       string
	Args           []string
	Env            map[string]string
	Stdin          []byte
	Params         []json.RawMessage
	Timeout        time.Duration
	MemoryLimitMB  int
	MaxOutputBytes int
	// Deterministic fixes the clock and the random source.
	Deterministic bool
	// Output, when set, receives the guest's output as it is written, in
	// order, from one goroutine; chunk is only valid during the call; the
	// total per stream never exceeds MaxOutputBytes; it is never called
	// after Execute returns. The Result still carries the whole output.
	Output func(s Stream, chunk []byte)
	// StreamOnly, with Output set, keeps no copy of the output: Result's
	// Stdout and Stderr stay empty (the truncation flags are set). The
	// sandbox child streams its output to the worker this way.
	StreamOnly bool
	// Files, when set, gives the guest a filesystem (worker/jobfs) and
	// says which of its files to keep.
	Files *Files
}

// Result is what the guest did: the outcome the store writes, and what only
// the worker needs. Guest failures (non-zero exit, trap, timeout) are
// results, not errors.
type Result struct {
	jobstate.Outcome
	// CompileTime is the time spent compiling the module for this run (zero
	// when a compiled copy was in memory).
	CompileTime time.Duration
	// Artifacts are the files matching Files.Collect, in path order, at
	// most Files.MaxArtifactBytes in total; ArtifactsTruncated says some
	// matching file did not fit.
	Artifacts []Artifact
}

// Executor runs guests. Execute returns an error only when the platform
// failed to run the job (it may be retried); ctx cancellation by the caller
// ends the run with status cancelled.
type Executor interface {
	Execute(ctx context.Context, req Request) (Result, error)
}
