package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/wasmwizard/wasmwizard/shared/jobview"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// ExcerptBytes bounds each output stream (stdout, stderr) in a payload: the
// payload carries the first ExcerptBytes of each, says whether it was cut,
// and links to the job, whose whole output GET /v1/jobs/{id} returns.
// With JSON's worst case of six bytes per byte (\u0001), a body stays under
// 1 MiB whatever the guest wrote.
const ExcerptBytes = 64 << 10

// excerptFields are added to the Job in the payload's data. (They are
// spliced into the Job's own encoding rather than embedding it, so that the
// Job renders exactly as jobview encodes it.)
type excerptFields struct {
	// StdoutExcerpt is true when stdout (or stdout_base64) holds only the
	// first ExcerptBytes of the job's stdout.
	StdoutExcerpt bool `json:"stdout_excerpt"`
	StderrExcerpt bool `json:"stderr_excerpt"`
	// StdoutBytes is the size of the job's whole stored stdout.
	StdoutBytes int64 `json:"stdout_bytes"`
	StderrBytes int64 `json:"stderr_bytes"`
}

// event is the body of a delivery.
type event struct {
	Data      json.RawMessage `json:"data"`
	Links     links           `json:"links"`
	Timestamp string          `json:"timestamp"`
	Type      string          `json:"type"`
}

type links struct {
	// Job is the path of the job on the API (GET it for the whole output).
	Job string `json:"job"`
}

// buildPayload renders the event of a delivery from a job whose output was
// read cut to ExcerptBytes.
func buildPayload(eventType string, j store.WebhookJob) ([]byte, error) {
	stdoutCut := j.StdoutBytes > int64(len(j.Stdout))
	stderrCut := j.StderrBytes > int64(len(j.Stderr))
	j.Stdout = trimPartialRune(j.Stdout, stdoutCut)
	j.Stderr = trimPartialRune(j.Stderr, stderrCut)
	ts := j.UpdatedAt
	if j.FinishedAt != nil {
		ts = *j.FinishedAt
	}
	job, err := encode(jobview.From(j.Job))
	if err != nil {
		return nil, err
	}
	extra, err := encode(excerptFields{StdoutExcerpt: stdoutCut, StderrExcerpt: stderrCut,
		StdoutBytes: j.StdoutBytes, StderrBytes: j.StderrBytes})
	if err != nil {
		return nil, err
	}
	if len(job) < 2 || job[len(job)-1] != '}' || job[len(job)-2] == '{' {
		return nil, fmt.Errorf("encode event: the job is not a JSON object")
	}
	data := append(append(job[:len(job)-1:len(job)-1], ','), extra[1:]...)
	return encode(event{
		Data:      data,
		Links:     links{Job: "/v1/jobs/" + j.ID.String()},
		Timestamp: ts.UTC().Format(time.RFC3339Nano),
		Type:      eventType,
	})
}

// encode is json.Marshal without HTML escaping: '<' stays one byte, not six.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// trimPartialRune drops the bytes of a UTF-8 sequence that the excerpt's cut
// split, so that text output stays text (and not base64) in the payload.
func trimPartialRune(b []byte, cut bool) []byte {
	if !cut || utf8.Valid(b) {
		return b
	}
	for i := 1; i <= utf8.UTFMax-1 && i < len(b); i++ {
		if utf8.Valid(b[:len(b)-i]) {
			return b[:len(b)-i]
		}
	}
	return b
}

// body builds the event the first time and returns the stored bytes after. A
// stored body too large to read back (from before bodies were bounded) is
// rebuilt and replaced.
func (s *Sender) body(ctx context.Context, d store.Delivery) ([]byte, error) {
	if d.Payload != nil {
		return d.Payload, nil
	}
	job, err := s.store.GetWebhookJob(ctx, d.AccountID, d.JobID, ExcerptBytes)
	if err != nil {
		return nil, err
	}
	b, err := buildPayload(d.EventType, job)
	if err != nil {
		return nil, err
	}
	return s.store.FixPayload(ctx, d.ID, b)
}
