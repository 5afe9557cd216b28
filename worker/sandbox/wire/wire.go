// Package wire is the framed protocol between the worker and its sandbox child processes.
//
// It is spoken over the child's stdin (worker → child) and stdout (child →
// worker).
//
// A frame is a 4-byte big-endian payload length, a 1-byte kind and the
// payload. Frames larger than the reader's limit are refused before any
// allocation. The conversation:
//
//	child  → Ready                          once, when the child can take work
//	worker → Run (JSON RunRequest)          one job (or a compile-only request); its large
//	                                        input files are in the input arena (see SharedSlices)
//	worker → Input                          one per input file not in the input arena
//	child  → Compiled                       the module is compiled; the run's clock starts
//	child  → Output                         output waits in the shared buffer (at most one
//	                                        until the worker drains the buffer)
//	child  → OutputFull                     the buffer is full: the child waits for Ack
//	worker → Ack                            the worker drained the buffer
//	child  → Artifact, ArtifactData…        the collected files, if the job collects any
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

	"github.com/wasmwizard/wasmwizard/shared/jobstate"
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
	// Input carries one input file's bytes (worker → child, after Run, one
	// per RunRequest.Files.Inputs entry, in order).
	Input Kind = 8
	// Artifact (JSON ArtifactHeader) starts a collected file, whose bytes
	// follow in ArtifactData frames of at most ArtifactChunk bytes (child →
	// worker, before Result).
	Artifact     Kind = 9
	ArtifactData Kind = 10
)

// ArtifactChunk is the largest ArtifactData frame.
const ArtifactChunk = 1 << 20

// Bounds on the files of one request, checked before the child acts on it.
const (
	MaxInputs   = 4096
	MaxAssets   = 64
	MaxPreopens = 64
	MaxCollect  = 64
	MaxPathLen  = 4096
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
	case Input:
		return "input"
	case Artifact:
		return "artifact"
	case ArtifactData:
		return "artifact-data"
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
	// Files, when set, gives the guest a filesystem. The inputs' bytes
	// follow the Run frame in Input frames, or are in the input arena (see
	// SharedSlices).
	Files *Files `json:"files,omitempty"`
	// TimeoutNanos is the job's timeout, compilation included: a run with
	// collect patterns is stopped by the child itself at it (its guest is
	// compiled with interruption checks) so that its files can be collected.
	TimeoutNanos int64 `json:"timeout_nanos,omitempty"`
}

// Files describes a job's filesystem (see executor.Files).
type Files struct {
	Inputs           []InputHeader `json:"inputs,omitempty"`
	Assets           []Asset       `json:"assets,omitempty"`
	Preopens         []string      `json:"preopens,omitempty"`
	Collect          []string      `json:"collect,omitempty"`
	MaxFSBytes       int64         `json:"max_fs_bytes"`
	MaxArtifactBytes int64         `json:"max_artifact_bytes"`
	// SharedBytes is how far the Shared inputs extend in the input arena
	// (0: there are none).
	SharedBytes int64 `json:"shared_bytes,omitempty"`
}

// InputHeader is an input file of Size bytes: in an Input frame after the
// Run frame, or, if Shared, at Offset in the input arena.
type InputHeader struct {
	Path   string `json:"path"`
	Mode   string `json:"mode"`
	Size   int    `json:"size"`
	Shared bool   `json:"shared,omitempty"`
	Offset int64  `json:"offset,omitempty"`
}

// Asset is an asset tree: its tar on the worker's disk (TarPath), by SHA-256.
type Asset struct {
	Mount   string `json:"mount"`
	SHA256  string `json:"sha256"`
	TarPath string `json:"tar_path"`
}

// ArtifactHeader starts a collected file of Size bytes.
type ArtifactHeader struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// Validate checks the bounds of f.
func (f *Files) Validate() error {
	switch {
	case len(f.Inputs) > MaxInputs || len(f.Assets) > MaxAssets || len(f.Preopens) > MaxPreopens || len(f.Collect) > MaxCollect:
		return errors.New("wire: too many files, assets, preopens or patterns")
	case f.MaxFSBytes < 0 || f.MaxArtifactBytes < 0:
		return errors.New("wire: negative file limits")
	case f.SharedBytes < 0 || f.SharedBytes > MaxSharedBytes:
		return fmt.Errorf("wire: shared inputs extending to %d bytes", f.SharedBytes)
	}
	shared := false
	for _, in := range f.Inputs {
		if len(in.Path) > MaxPathLen || (in.Mode != "ro" && in.Mode != "rw") {
			return fmt.Errorf("wire: bad input %q", in.Path)
		}
		switch {
		case in.Shared:
			shared = true
			if !validShared(in, f.SharedBytes) {
				return fmt.Errorf("wire: shared input %q at %d, %d bytes, outside %d bytes", in.Path, in.Offset, in.Size, f.SharedBytes)
			}
		case in.Size < 0 || in.Size > MaxFrame || in.Offset != 0:
			return fmt.Errorf("wire: bad input %q", in.Path)
		}
	}
	if shared != (f.SharedBytes > 0) {
		return errors.New("wire: shared inputs without their extent, or an extent without them")
	}
	return nil
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
	case r.Files != nil:
		return r.Files.Validate()
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
	Status          jobstate.Status   `json:"status"`
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
	// ArtifactsTruncated: a file matching the collect patterns did not fit
	// in the job's max_artifact_bytes (the others came in Artifact frames).
	ArtifactsTruncated bool `json:"artifacts_truncated,omitempty"`
}
