// Package jobview renders a stored job as the Job object of the API and
// webhooks.
//
// The API returns it and webhook payloads carry it (docs/API.md).
//
// Outputs are the one part of a Job whose size a guest chooses (up to its
// max_output_bytes), so they are rendered with care: JSON is written
// without HTML escaping (a '<' stays one byte, not the six of \u003c), an
// output whose JSON string would be more than twice its size (plus 1 KiB) is carried as
// base64 instead (see IsText), and Encode writes a job's outputs straight
// from their bytes without building the encoded text in memory.
package jobview

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/wasmwizard/wasmwizard/shared/apiobject"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// Error is a job's error.
type Error = apiobject.JobError

// Limits are a job's limits.
type Limits = apiobject.JobLimits

// Usage is what a job used.
type Usage struct {
	QueueMS         *int64 `json:"queue_ms"`
	RunMS           *int   `json:"run_ms"`
	MemoryPeakBytes *int64 `json:"memory_peak_bytes"`
}

// Artifact is a file a job kept: in a Job, and listed by GET
// /v1/jobs/{id}/artifacts.
type Artifact = apiobject.Artifact

// Artifacts renders stored artifacts (an empty list, never nil, when
// there are none).
func Artifacts(as []store.Artifact) []Artifact {
	out := make([]Artifact, len(as))
	for i, a := range as {
		out[i] = Artifact{Path: a.Path, SizeBytes: a.SizeBytes, SHA256: a.SHA256}
	}
	return out
}

// Job is the Job object of the API and of webhook payloads.
type Job struct {
	ID           uuid.UUID       `json:"id"`
	ModuleID     uuid.UUID       `json:"module_id"`
	Function     string          `json:"function"`
	Status       jobstate.Status `json:"status"`
	ExitCode     *int            `json:"exit_code"`
	Stdout       *string         `json:"stdout"`
	Stderr       *string         `json:"stderr"`
	StdoutBase64 *string         `json:"stdout_base64,omitempty"`
	StderrBase64 *string         `json:"stderr_base64,omitempty"`
	// OutputOmitted is true when a finished job is shown without its
	// outputs (list items): stdout and stderr are null although the job
	// has them; GET /v1/jobs/{id} returns them.
	OutputOmitted   bool              `json:"output_omitted,omitempty"`
	StdoutTruncated bool              `json:"stdout_truncated"`
	StderrTruncated bool              `json:"stderr_truncated"`
	ReturnValues    []json.RawMessage `json:"return_values"`
	Error           *Error            `json:"error"`
	Attempts        int               `json:"attempts"`
	Limits          Limits            `json:"limits"`
	Usage           Usage             `json:"usage"`
	WebhookURL      *string           `json:"webhook_url"`
	Metadata        map[string]string `json:"metadata"`
	CreatedAt       time.Time         `json:"created_at"`
	StartedAt       *time.Time        `json:"started_at"`
	FinishedAt      *time.Time        `json:"finished_at"`

	// Files: the request's preopens and collect patterns, how many input
	// files it brought (their contents are not shown), and the artifacts
	// kept after the run.
	Preopens           []string   `json:"preopens"`
	Collect            []string   `json:"collect"`
	InputFiles         int        `json:"input_files"`
	Artifacts          []Artifact `json:"artifacts"`
	ArtifactsTruncated bool       `json:"artifacts_truncated"`
}

// From renders a stored job with its outputs. A job read without its
// outputs (see store.Job.OutputsLoaded) is rendered like Summary.
func From(j store.Job) Job {
	v := Summary(j)
	if !j.Status.Terminal() || !j.OutputsLoaded() {
		return v
	}
	v.OutputOmitted = false
	v.Stdout, v.StdoutBase64 = textOrBase64(j.Stdout)
	v.Stderr, v.StderrBase64 = textOrBase64(j.Stderr)
	return v
}

// Summary renders a stored job without its outputs: stdout and stderr are
// null, and output_omitted is true once the job is finished. List items
// are summaries, so that a page costs no memory for its jobs' outputs.
func Summary(j store.Job) Job {
	v := Job{
		ID: j.ID, ModuleID: j.ModuleID, Function: j.Function, Status: j.Status, ExitCode: j.ExitCode,
		StdoutTruncated: j.StdoutTruncated, StderrTruncated: j.StderrTruncated,
		ReturnValues: j.ReturnValues.V, Attempts: j.Attempts,
		Limits: Limits{TimeoutMS: j.TimeoutMS, MemoryLimitMB: j.MemoryLimitMB, MaxOutputBytes: j.MaxOutputBytes,
			MaxFSBytes: j.MaxFSBytes, MaxArtifactBytes: j.MaxArtifactBytes},
		Usage:      Usage{RunMS: j.RunMS, MemoryPeakBytes: j.MemoryPeakBytes},
		WebhookURL: j.WebhookURL, Metadata: j.Metadata.V,
		CreatedAt: j.CreatedAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt,
		OutputOmitted: j.Status.Terminal(),
		Preopens:      j.Preopens, Collect: j.Collect, InputFiles: j.InputCount,
		Artifacts: Artifacts(j.Artifacts), ArtifactsTruncated: j.ArtifactsTruncated,
	}
	if v.Preopens == nil {
		v.Preopens = []string{}
	}
	if v.Collect == nil {
		v.Collect = []string{}
	}
	if v.Metadata == nil {
		v.Metadata = map[string]string{}
	}
	if j.ErrorCode != nil {
		v.Error = &Error{Code: *j.ErrorCode}
		if j.ErrorMessage != nil {
			v.Error.Message = *j.ErrorMessage
		}
	}
	if j.StartedAt != nil {
		ms := j.StartedAt.Sub(j.CreatedAt).Milliseconds()
		v.Usage.QueueMS = &ms
	}
	return v
}

// textOrBase64 returns output as text when IsText, else as base64.
func textOrBase64(b []byte) (text, b64 *string) {
	if IsText(b) {
		s := string(b)
		return &s, nil
	}
	s := base64.StdEncoding.EncodeToString(b)
	return nil, &s
}

// IsText reports whether an output is shown as text (stdout) rather than
// base64 (stdout_base64): when it is UTF-8 and its JSON string, escapes
// included, is at most twice its size plus textSlack. Control characters
// cost six bytes each in JSON (\u0001); an output made mostly of them is
// smaller in base64 (4/3 of its size), so no output's JSON is more than
// twice its size plus textSlack. (The slack keeps short outputs with a few
// control characters readable.)
func IsText(b []byte) bool {
	n, valid := textLen(b)
	return valid && n <= 2*len(b)+textSlack
}

// textSlack is how many bytes of escapes an output may have beyond its
// size and still be text.
const textSlack = 1 << 10

// An Output is a job's output, read a piece at a time: a *bytes.Reader
// for bytes in memory, or a reader of the database (the API reads large
// outputs from Postgres that way).
type Output interface {
	io.ReaderAt
	Size() int64
}

// Encode writes the JSON of j's Job to w (with a trailing newline), like
// encoding/json without HTML escaping. A finished job's outputs are written
// from their bytes in pieces, so the memory Encode needs does not grow with
// them; the output fields come last in the object.
func Encode(w io.Writer, j store.Job) error {
	if !j.Status.Terminal() || !j.OutputsLoaded() {
		return encodeValue(w, From(j))
	}
	return EncodeOutputs(w, j, bytes.NewReader(j.Stdout), bytes.NewReader(j.Stderr), 0)
}

// EncodeOutputs is Encode for a finished job whose outputs are read from
// stdout and stderr, piece bytes at a time (0: a default of 1 MiB): each
// is read twice, once to decide between text and base64 (IsText) and once
// to write it. The memory it needs is about 7 times piece, whatever the
// outputs' size.
func EncodeOutputs(w io.Writer, j store.Job, stdout, stderr Output, piece int) error {
	if piece <= 0 {
		piece = defaultPiece
	}
	piece = max(piece, utf8.UTFMax)
	v := Summary(j)
	v.OutputOmitted = false
	// The object without its outputs, then the outputs spliced in before
	// its closing brace. The shadowing fields hide the Job's own.
	head, err := marshal(struct {
		Job
		Stdout       *string `json:"stdout,omitempty"`
		Stderr       *string `json:"stderr,omitempty"`
		StdoutBase64 *string `json:"stdout_base64,omitempty"`
		StderrBase64 *string `json:"stderr_base64,omitempty"`
	}{Job: v})
	if err != nil {
		return err
	}
	buf := make([]byte, piece)
	textOut, err := outputIsText(stdout, buf)
	if err != nil {
		return err
	}
	textErr, err := outputIsText(stderr, buf)
	if err != nil {
		return err
	}
	head = bytes.TrimRight(head, "\n")
	ew := &errWriter{w: w}
	ew.write(head[:len(head)-1]) // without '}'
	writeOutput(ew, "stdout", stdout, textOut, buf)
	writeOutput(ew, "stderr", stderr, textErr, buf)
	ew.write([]byte("}\n"))
	return ew.err
}

// defaultPiece is how much of an output EncodeOutputs reads at a time, and
// escapePiece how much of it is escaped into one buffer.
const (
	defaultPiece = 1 << 20
	escapePiece  = 32 << 10
)

// outputIsText is IsText for an Output, read a piece at a time.
func outputIsText(o Output, buf []byte) (bool, error) {
	total := 0
	err := eachPiece(o, buf, true, func(p []byte) error {
		n, valid := textLen(p)
		if !valid {
			return errNotText
		}
		total += n
		return nil
	})
	if errors.Is(err, errNotText) {
		return false, nil
	}
	return err == nil && int64(total) <= 2*o.Size()+textSlack, err
}

var errNotText = errors.New("not text")

// eachPiece calls fn with o's bytes in order, a piece at a time. With
// runes, no piece ends inside a UTF-8 sequence that the next piece
// completes (the sequence is read again with the next piece), so pieces
// encode exactly as the whole does.
func eachPiece(o Output, buf []byte, runes bool, fn func([]byte) error) error {
	size := o.Size()
	for off := int64(0); off < size; {
		n, err := o.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if n == 0 {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // shorter than its size
			}
			return err
		}
		p := buf[:n]
		if runes && off+int64(n) < size {
			p = p[:tailCut(p)]
		}
		if err := fn(p); err != nil {
			return err
		}
		off += int64(len(p))
	}
	return nil
}

// tailCut returns the length of b without a UTF-8 sequence that b ends
// before it is complete (the bytes that follow b may complete it).
func tailCut(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) && i > 0 {
				return i
			}
			return len(b)
		}
	}
	return len(b)
}

// writeOutput writes `,"name":"text"` or `,"name":null,"name_base64":"…"`.
func writeOutput(w *errWriter, name string, o Output, text bool, buf []byte) {
	if text {
		w.write([]byte(`,"` + name + `":`))
		if w.err == nil {
			w.err = WriteString(w.w, o, buf)
		}
		return
	}
	w.write([]byte(`,"` + name + `":null,"` + name + `_base64":"`))
	enc := base64.NewEncoder(base64.StdEncoding, w)
	if err := eachPiece(o, buf, false, func(p []byte) error {
		_, err := enc.Write(p)
		return err
	}); err != nil && w.err == nil {
		w.err = err
	}
	_ = enc.Close()
	w.write([]byte(`"`))
}

// WriteString writes o to w as a JSON string, as encoding/json encodes
// string(bytes) without HTML escaping (bytes that are not UTF-8 become
// U+FFFD), reading it into buf a piece at a time (nil: 1 MiB): the memory
// it needs does not grow with o.
func WriteString(w io.Writer, o Output, buf []byte) error {
	if len(buf) < utf8.UTFMax {
		buf = make([]byte, defaultPiece)
	}
	ew := &errWriter{w: w}
	esc := make([]byte, 0, 6*escapePiece+2)
	esc = append(esc, '"')
	err := eachPiece(o, buf, true, func(p []byte) error {
		for len(p) > 0 && ew.err == nil {
			n := len(p)
			if n > escapePiece {
				n = tailCut(p[:escapePiece])
			}
			esc = AppendText(esc, p[:n])
			ew.write(esc)
			esc = esc[:0]
			p = p[n:]
		}
		return ew.err
	})
	if err != nil {
		return err
	}
	ew.write(append(esc, '"'))
	return ew.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) write(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *errWriter) Write(b []byte) (int, error) {
	e.write(b)
	if e.err != nil {
		return 0, e.err
	}
	return len(b), nil
}

// marshal encodes v as encoding/json does, without HTML escaping, with a
// trailing newline.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	err := encodeValue(&buf, v)
	return buf.Bytes(), err
}

func encodeValue(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
