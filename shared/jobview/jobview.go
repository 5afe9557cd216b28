// Package jobview renders a stored job as the Job object the API returns and
// webhook payloads carry (docs/API.md).
//
// Outputs are the one part of a Job whose size a guest chooses (up to its
// max_output_bytes), so they are rendered with care: JSON is written
// without HTML escaping (a '<' stays one byte, not the six of \u003c), an
// output whose JSON string would be more than twice its size is carried as
// base64 instead (see IsText), and Encode writes a job's outputs straight
// from their bytes without building the encoded text in memory.
package jobview

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/wasmwizard/wasmwizard/shared/store"
)

// Error is a job's error.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Limits are a job's limits.
type Limits struct {
	TimeoutMS      int `json:"timeout_ms"`
	MemoryLimitMB  int `json:"memory_limit_mb"`
	MaxOutputBytes int `json:"max_output_bytes"`
}

// Usage is what a job used.
type Usage struct {
	QueueMS         *int64 `json:"queue_ms"`
	RunMS           *int   `json:"run_ms"`
	MemoryPeakBytes *int64 `json:"memory_peak_bytes"`
}

// Job is the Job object of the API and of webhook payloads.
type Job struct {
	ID           uuid.UUID `json:"id"`
	ModuleID     uuid.UUID `json:"module_id"`
	Function     string    `json:"function"`
	Status       string    `json:"status"`
	ExitCode     *int      `json:"exit_code"`
	Stdout       *string   `json:"stdout"`
	Stderr       *string   `json:"stderr"`
	StdoutBase64 *string   `json:"stdout_base64,omitempty"`
	StderrBase64 *string   `json:"stderr_base64,omitempty"`
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
}

// From renders a stored job with its outputs. A job read without its
// outputs (see store.Job.OutputsLoaded) is rendered like Summary.
func From(j store.Job) Job {
	v := Summary(j)
	if !store.Terminal(j.Status) || !j.OutputsLoaded() {
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
		Limits:     Limits{TimeoutMS: j.TimeoutMS, MemoryLimitMB: j.MemoryLimitMB, MaxOutputBytes: j.MaxOutputBytes},
		Usage:      Usage{RunMS: j.RunMS, MemoryPeakBytes: j.MemoryPeakBytes},
		WebhookURL: j.WebhookURL, Metadata: j.Metadata.V,
		CreatedAt: j.CreatedAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt,
		OutputOmitted: store.Terminal(j.Status),
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
// included, is at most twice its size. Control characters cost six bytes
// each in JSON (\u0001); an output made mostly of them is smaller in
// base64 (4/3 of its size), so no output's JSON is more than about twice
// its size.
func IsText(b []byte) bool {
	n, valid := textLen(b)
	return valid && n <= 2*len(b)
}

// Encode writes the JSON of j's Job to w (with a trailing newline), like
// encoding/json without HTML escaping. A finished job's outputs are written
// from their bytes in pieces, so the memory Encode needs does not grow with
// them; the output fields come last in the object.
func Encode(w io.Writer, j store.Job) error {
	v := From(j)
	if v.Stdout == nil && v.StdoutBase64 == nil {
		return encodeValue(w, v)
	}
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
	head = bytes.TrimRight(head, "\n")
	ew := &errWriter{w: w}
	ew.write(head[:len(head)-1]) // without '}'
	writeOutput(ew, "stdout", j.Stdout)
	writeOutput(ew, "stderr", j.Stderr)
	ew.write([]byte("}\n"))
	return ew.err
}

// writeOutput writes `,"name":"text"` or `,"name":null,"name_base64":"…"`.
func writeOutput(w *errWriter, name string, b []byte) {
	if IsText(b) {
		w.write([]byte(`,"` + name + `":`))
		if w.err == nil {
			w.err = WriteString(w.w, b)
		}
		return
	}
	w.write([]byte(`,"` + name + `":null,"` + name + `_base64":"`))
	enc := base64.NewEncoder(base64.StdEncoding, w)
	for len(b) > 0 && w.err == nil {
		n := min(len(b), piece)
		_, _ = enc.Write(b[:n])
		b = b[n:]
	}
	_ = enc.Close()
	w.write([]byte(`"`))
}

// piece is how much of an output is encoded at a time.
const piece = 32 << 10

// WriteString writes b to w as a JSON string, as encoding/json encodes
// string(b) without HTML escaping (bytes that are not UTF-8 become
// U+FFFD), a piece at a time: the memory it needs does not grow with b.
func WriteString(w io.Writer, b []byte) error {
	ew := &errWriter{w: w}
	buf := make([]byte, 0, 6*piece+2)
	buf = append(buf, '"')
	for len(b) > 0 && ew.err == nil {
		// Cut on a rune boundary: a rune cut in two would be encoded as
		// two replacement characters.
		n := runeCut(b, min(len(b), piece))
		buf = AppendText(buf, b[:n])
		b = b[n:]
		if len(b) > 0 {
			ew.write(buf)
			buf = buf[:0]
		}
	}
	buf = append(buf, '"')
	ew.write(buf)
	return ew.err
}

// runeCut returns where to end a piece of b near n: n itself, unless a
// UTF-8 sequence straddles it, then the start of that sequence. Pieces cut
// there encode exactly as b does in one piece.
func runeCut(b []byte, n int) int {
	if n >= len(b) {
		return len(b)
	}
	for i := n; i >= 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if r, size := utf8.DecodeRune(b[i:]); (r != utf8.RuneError || size != 1) && i+size > n {
				return i
			}
			return n
		}
	}
	return n
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
