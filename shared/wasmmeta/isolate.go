package wasmmeta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wasmwizard/wasmwizard/shared/oslimit"
)

// Environment of an upload-check child. It gets nothing else from its
// parent's environment.
const (
	EnvCheckChild    = "WIZARD_UPLOAD_CHECK_CHILD"     // "1" in a child
	EnvCheckMemoryMB = "WIZARD_UPLOAD_CHECK_MEMORY_MB" // its RLIMIT_DATA, MiB
	EnvCheckMaxBytes = "WIZARD_UPLOAD_CHECK_MAX_BYTES" // the module's size
)

// Budgets of an isolated check. wazero's interpreter, which validates a
// module, lowers every function to its own instructions at up to ~250
// bytes of memory per byte of code (straight-line code is the worst case),
// so a large module is checked in a child process that cannot hold more
// than MemoryPerByte times the module's size plus MemoryBaseMB. The base is
// what RLIMIT_DATA counts for a Go process that validates a 100 KB module
// (112 MiB, though its resident size is 21 MiB: the runtime's heap
// metadata and reservations count), with a margin.
const (
	MemoryPerByte = 64
	MemoryBaseMB  = 128
	// InProcessMax is the largest module checked inside the calling
	// process: at ~250 bytes per byte plus the locals Precheck allows, it
	// costs at most a few tens of MiB, less than starting a child.
	InProcessMax = 64 << 10
)

// IsolateConfig makes an Inspector check modules larger than InProcessMax
// in a child process.
type IsolateConfig struct {
	// Command starts a child: a binary whose main calls CheckChildMain when
	// IsCheckChild (the API binary itself).
	Command []string
	// Timeout bounds one check's wall-clock time.
	Timeout time.Duration
	// Concurrency bounds the checks running at once (each may use its
	// whole memory budget).
	Concurrency int
}

// NewIsolatedInspector returns an Inspector that checks modules larger than
// InProcessMax in a child process started with cfg.Command, under an OS
// memory limit of MemoryPerByte times the module's size plus MemoryBaseMB
// and cfg.Timeout: a module that needs more is refused as too complex, and
// the caller's process never holds it.
func NewIsolatedInspector(ctx context.Context, cfg IsolateConfig) (*Inspector, error) {
	if len(cfg.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("upload check: find own executable: %w", err)
		}
		cfg.Command = []string{exe}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 2
	}
	in := NewInspector(ctx)
	in.isolate = &cfg
	in.slots = make(chan struct{}, cfg.Concurrency)
	return in, nil
}

// IsCheckChild reports whether this process was started as an upload-check
// child.
func IsCheckChild() bool { return os.Getenv(EnvCheckChild) == "1" }

// checkReply is what a child writes to its stdout.
type checkReply struct {
	Meta    *Meta  `json:"meta,omitempty"`
	Invalid string `json:"invalid,omitempty"`
	Error   string `json:"error,omitempty"`
}

// CheckChildMain is an upload-check child: it limits its own memory, reads
// one module from in, inspects it and writes the outcome to out as JSON.
// It returns the process exit code.
func CheckChildMain(in io.Reader, out io.Writer, logw io.Writer) int {
	oslimit.NotDumpable()
	oslimit.PreferOOMKill()
	mb, _ := strconv.Atoi(os.Getenv(EnvCheckMemoryMB))
	if raceBuild {
		mb = 0
	}
	if err := oslimit.LimitMemory(mb); err != nil {
		fmt.Fprintf(logw, "upload check: %v\n", err)
		return 1
	}
	if mb > 0 {
		// Collect harder near the limit rather than die with garbage.
		debug.SetMemoryLimit(int64(mb) << 20 * 3 / 4)
	}
	max, _ := strconv.Atoi(os.Getenv(EnvCheckMaxBytes))
	bin, err := io.ReadAll(io.LimitReader(in, int64(max)))
	if err != nil {
		fmt.Fprintf(logw, "upload check: read module: %v\n", err)
		return 1
	}
	ctx := context.Background()
	insp := NewInspector(ctx)
	meta, err := insp.Inspect(ctx, bin)
	var reply checkReply
	var inv *InvalidError
	switch {
	case errors.As(err, &inv):
		reply.Invalid = inv.Reason
	case err != nil:
		reply.Error = err.Error()
	default:
		reply.Meta = &meta
	}
	if err := json.NewEncoder(out).Encode(reply); err != nil {
		return 1
	}
	return 0
}

// inspectIsolated runs the check of bin in a child process.
func (in *Inspector) inspectIsolated(ctx context.Context, bin []byte) (Meta, error) {
	cfg := in.isolate
	select {
	case in.slots <- struct{}{}:
		defer func() { <-in.slots }()
	case <-ctx.Done():
		return Meta{}, ctx.Err()
	}
	budgetMB := MemoryBaseMB + (MemoryPerByte*len(bin)+(1<<20)-1)>>20
	runCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, cfg.Command[0], cfg.Command[1:]...)
	cmd.Env = []string{
		EnvCheckChild + "=1",
		EnvCheckMemoryMB + "=" + strconv.Itoa(budgetMB),
		EnvCheckMaxBytes + "=" + strconv.Itoa(len(bin)),
	}
	cmd.Stdin = bytes.NewReader(bin)
	var stdout bytes.Buffer
	stderr := &limitedBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = &limitedBuffer{max: 4 << 20, buf: &stdout}, stderr
	// The child dies with the API.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	runErr := cmd.Run()
	if runErr == nil {
		var reply checkReply
		if err := json.Unmarshal(stdout.Bytes(), &reply); err != nil {
			return Meta{}, fmt.Errorf("upload check: decode the child's answer: %w", err)
		}
		switch {
		case reply.Invalid != "":
			return Meta{}, &InvalidError{Reason: reply.Invalid}
		case reply.Error != "" || reply.Meta == nil:
			return Meta{}, fmt.Errorf("upload check: %s", reply.Error)
		}
		m := *reply.Meta
		for i, e := range m.Exports { // JSON drops empty lists
			if e.Kind == "function" && e.Params == nil {
				m.Exports[i].Params = []string{}
			}
			if e.Kind == "function" && e.Results == nil {
				m.Exports[i].Results = []string{}
			}
		}
		return m, nil
	}
	if ctx.Err() != nil {
		return Meta{}, ctx.Err()
	}
	var exitErr *exec.ExitError
	if !errors.As(runErr, &exitErr) {
		return Meta{}, fmt.Errorf("upload check: start the child: %w", runErr)
	}
	if runCtx.Err() != nil {
		return Meta{}, &InvalidError{Reason: fmt.Sprintf(
			"the module is too complex to validate within its budget: validation took longer than %s", cfg.Timeout)}
	}
	// The child died on its own: out of memory (the Go runtime exits 2 with
	// "out of memory" when its limit refuses a mapping), or a failure of the
	// validator on these bytes; either way the module is refused.
	// A SIGKILL we did not send is the OOM killer's (the container's memory
	// ran out; the child is its first choice).
	killed := false
	if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		killed = true
	}
	if killed || outOfResources(stderr.bytes()) {
		return Meta{}, &InvalidError{Reason: fmt.Sprintf(
			"the module is too complex to validate within its budget: validation needs more than %d MiB (%d times its size plus %d MiB)",
			budgetMB, MemoryPerByte, MemoryBaseMB)}
	}
	return Meta{}, &InvalidError{Reason: fmt.Sprintf("invalid WebAssembly module: the validator failed on it (%s%s)", exitErr.ProcessState, firstLine(stderr.bytes()))}
}

// outOfResources reports whether a check child's stderr shows that the Go
// runtime died for want of memory: "out of memory" from the allocator, or
// ENOMEM (errno 12) when its limit refused a thread's stack ("newosproc")
// or another mapping. Both are the module's budget running out.
func outOfResources(stderr []byte) bool {
	for _, sign := range []string{"out of memory", "cannot allocate memory", "errno=12", "newosproc", "runtime: cannot map pages"} {
		if bytes.Contains(stderr, []byte(sign)) {
			return true
		}
	}
	return false
}

// firstLine is the first line of a child's stderr, cut to 200 bytes, as
// ": line" (or nothing): what the runtime said when it died.
func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 200 {
		b = b[:200]
	}
	if len(b) == 0 {
		return ""
	}
	return ": " + strings.ToValidUTF8(string(b), "?")
}

// limitedBuffer keeps the first max bytes written to it and drops the rest.
type limitedBuffer struct {
	max int
	buf *bytes.Buffer
}

func (l *limitedBuffer) bytes() []byte {
	if l.buf == nil {
		return nil
	}
	return l.buf.Bytes()
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.buf == nil {
		l.buf = &bytes.Buffer{}
	}
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
