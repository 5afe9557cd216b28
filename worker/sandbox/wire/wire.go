// Package wire is the framed protocol between the worker and its sandbox
// child processes, spoken over the child's stdin (worker → child) and stdout
// (child → worker).
//
// A frame is a 4-byte big-endian payload length, a 1-byte kind and the
// payload. Frames larger than the reader's limit are refused before any
// allocation. The conversation:
//
//	child  → Ready                          once, when the child can take work
//	worker → Run (JSON RunRequest)          one job (or a compile-only request)
//	child  → Compiled                       the module is compiled; the run's clock starts
//	child  → Output                         output waits in the shared buffer (at most one
//	                                        until the worker drains the buffer)
//	child  → OutputFull                     the buffer is full: the child waits for Ack
//	worker → Ack                            the worker drained the buffer
//	child  → Result (JSON ResultHeader)     the outcome; all output is in the buffer
//
// then the child waits for the next Run (skipping a late Ack). The worker
// kills the child to stop a run; the child exits when its stdin closes.
//
// The guest's output does not travel in frames: the child appends it to a
// ring buffer in memory it shares with the worker (see OutputRing), so the
// worker reads what the guest wrote up to the instant it was killed, and
// sees a write at once even while the guest then spins without another
// host call.
package wire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Kind says what a frame carries.
type Kind byte

// Frame kinds.
const (
	Ready    Kind = 1
	Run      Kind = 2
	Compiled Kind = 3
	Result   Kind = 4
	// Output, OutputFull and Ack carry no payload.
	Output     Kind = 5
	OutputFull Kind = 6
	Ack        Kind = 7
)

func (k Kind) String() string {
	switch k {
	case Ready:
		return "ready"
	case Run:
		return "run"
	case Compiled:
		return "compiled"
	case Result:
		return "result"
	case Output:
		return "output"
	case OutputFull:
		return "output-full"
	case Ack:
		return "ack"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// MaxFrame bounds any frame: 64 MiB covers the largest stdin plus JSON.
const MaxFrame = 64 << 20

// ErrTooLarge is returned for a frame over the reader's limit.
var ErrTooLarge = errors.New("wire: frame too large")

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, kind Kind, payload []byte) error {
	if len(payload) > MaxFrame {
		return ErrTooLarge
	}
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(payload)))
	hdr[4] = byte(kind)
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("wire: write header: %w", err)
	}
	if _, err := w.Write(payload); err != nil {
		return fmt.Errorf("wire: write payload: %w", err)
	}
	return nil
}

// ReadFrame reads one frame of at most limit payload bytes.
func ReadFrame(r io.Reader, limit int) (Kind, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if uint64(n) > uint64(limit) {
		return 0, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, limit)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("wire: read payload: %w", err)
	}
	return Kind(hdr[4]), payload, nil
}

// RunRequest asks the child to run one job, or only to compile a module.
type RunRequest struct {
	// ModuleKey names the module in the child's compiled-module cache (its
	// SHA-256, hex); ModulePath is the file its bytes are read from on a
	// cache miss.
	ModuleKey   string            `json:"module_key"`
	ModulePath  string            `json:"module_path"`
	CompileOnly bool              `json:"compile_only,omitempty"`
	Function    string            `json:"function"`
	Args        []string          `json:"args,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	Stdin       []byte            `json:"stdin,omitempty"`
	Params      []json.RawMessage `json:"params,omitempty"`
	// MemoryLimitMB and MaxOutputBytes are the job's limits; the timeout is
	// the worker's to enforce.
	MemoryLimitMB  int  `json:"memory_limit_mb"`
	MaxOutputBytes int  `json:"max_output_bytes"`
	Deterministic  bool `json:"deterministic,omitempty"`
}

// Validate checks a decoded request before the child acts on it.
func (r *RunRequest) Validate() error {
	switch {
	case r.ModuleKey == "" || r.ModulePath == "":
		return errors.New("wire: run request without a module")
	case r.CompileOnly:
		return nil
	case r.MemoryLimitMB <= 0 || r.MemoryLimitMB > 65536/16:
		return fmt.Errorf("wire: memory limit %d MiB out of range", r.MemoryLimitMB)
	case r.MaxOutputBytes < 0 || r.MaxOutputBytes > MaxFrame:
		return fmt.Errorf("wire: output limit %d out of range", r.MaxOutputBytes)
	}
	return nil
}

// DecodeRunRequest decodes and validates a Run payload.
func DecodeRunRequest(payload []byte) (RunRequest, error) {
	var r RunRequest
	if err := json.Unmarshal(payload, &r); err != nil {
		return RunRequest{}, fmt.Errorf("wire: decode run request: %w", err)
	}
	return r, r.Validate()
}

// ResultHeader is the outcome of a run, without its output (which is in the
// shared output buffer).
type ResultHeader struct {
	Status          string            `json:"status"`
	ExitCode        *int              `json:"exit_code,omitempty"`
	StdoutTruncated bool              `json:"stdout_truncated,omitempty"`
	StderrTruncated bool              `json:"stderr_truncated,omitempty"`
	ReturnValues    []json.RawMessage `json:"return_values,omitempty"`
	ErrorCode       string            `json:"error_code,omitempty"`
	ErrorMessage    string            `json:"error_message,omitempty"`
	MemoryPeakBytes int64             `json:"memory_peak_bytes"`
	RunNanos        int64             `json:"run_nanos"`
	// CompileNanos is the time spent compiling (0 on a cache hit).
	CompileNanos int64 `json:"compile_nanos"`
}
