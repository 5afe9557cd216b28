// Package jobview renders a stored job as the Job object the API returns and
// webhook payloads carry (docs/API.md).
package jobview

import (
	"encoding/base64"
	"encoding/json"
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
	ID              uuid.UUID         `json:"id"`
	ModuleID        uuid.UUID         `json:"module_id"`
	Function        string            `json:"function"`
	Status          string            `json:"status"`
	ExitCode        *int              `json:"exit_code"`
	Stdout          *string           `json:"stdout"`
	Stderr          *string           `json:"stderr"`
	StdoutBase64    *string           `json:"stdout_base64,omitempty"`
	StderrBase64    *string           `json:"stderr_base64,omitempty"`
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

// From renders a stored job.
func From(j store.Job) Job {
	v := Job{
		ID: j.ID, ModuleID: j.ModuleID, Function: j.Function, Status: j.Status, ExitCode: j.ExitCode,
		StdoutTruncated: j.StdoutTruncated, StderrTruncated: j.StderrTruncated,
		ReturnValues: j.ReturnValues.V, Attempts: j.Attempts,
		Limits:     Limits{TimeoutMS: j.TimeoutMS, MemoryLimitMB: j.MemoryLimitMB, MaxOutputBytes: j.MaxOutputBytes},
		Usage:      Usage{RunMS: j.RunMS, MemoryPeakBytes: j.MemoryPeakBytes},
		WebhookURL: j.WebhookURL, Metadata: j.Metadata.V,
		CreatedAt: j.CreatedAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt,
	}
	if v.Metadata == nil {
		v.Metadata = map[string]string{}
	}
	v.Stdout, v.StdoutBase64 = textOrBase64(j.Stdout, store.Terminal(j.Status))
	v.Stderr, v.StderrBase64 = textOrBase64(j.Stderr, store.Terminal(j.Status))
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

// textOrBase64 returns output as text when it is UTF-8, else as base64. Before
// a job is finished there is no output yet (null).
func textOrBase64(b []byte, finished bool) (text, b64 *string) {
	if !finished {
		return nil, nil
	}
	if utf8.Valid(b) {
		s := string(b)
		return &s, nil
	}
	s := base64.StdEncoding.EncodeToString(b)
	return nil, &s
}
