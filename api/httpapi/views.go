package httpapi

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

// The JSON shapes of docs/API.md.

type moduleView struct {
	ID        uuid.UUID         `json:"id"`
	Name      string            `json:"name"`
	SHA256    string            `json:"sha256"`
	SizeBytes int64             `json:"size_bytes"`
	Imports   []wasmmeta.Import `json:"imports"`
	Exports   []wasmmeta.Export `json:"exports"`
	WASI      bool              `json:"wasi"`
	CreatedAt time.Time         `json:"created_at"`
}

func viewModule(m store.Module) moduleView {
	imports, exports := m.Imports.V, m.Exports.V
	if imports == nil {
		imports = []wasmmeta.Import{}
	}
	if exports == nil {
		exports = []wasmmeta.Export{}
	}
	return moduleView{ID: m.ID, Name: m.Name, SHA256: hex.EncodeToString(m.SHA256), SizeBytes: m.SizeBytes,
		Imports: imports, Exports: exports, WASI: m.WASI, CreatedAt: m.CreatedAt}
}

type jobError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type jobLimits struct {
	TimeoutMS      int `json:"timeout_ms"`
	MemoryLimitMB  int `json:"memory_limit_mb"`
	MaxOutputBytes int `json:"max_output_bytes"`
}

type jobUsage struct {
	QueueMS         *int64 `json:"queue_ms"`
	RunMS           *int   `json:"run_ms"`
	MemoryPeakBytes *int64 `json:"memory_peak_bytes"`
}

type jobView struct {
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
	Error           *jobError         `json:"error"`
	Attempts        int               `json:"attempts"`
	Limits          jobLimits         `json:"limits"`
	Usage           jobUsage          `json:"usage"`
	WebhookURL      *string           `json:"webhook_url"`
	Metadata        map[string]string `json:"metadata"`
	CreatedAt       time.Time         `json:"created_at"`
	StartedAt       *time.Time        `json:"started_at"`
	FinishedAt      *time.Time        `json:"finished_at"`
}

func viewJob(j store.Job) jobView {
	v := jobView{
		ID: j.ID, ModuleID: j.ModuleID, Function: j.Function, Status: j.Status, ExitCode: j.ExitCode,
		StdoutTruncated: j.StdoutTruncated, StderrTruncated: j.StderrTruncated,
		ReturnValues: j.ReturnValues.V, Attempts: j.Attempts,
		Limits:     jobLimits{TimeoutMS: j.TimeoutMS, MemoryLimitMB: j.MemoryLimitMB, MaxOutputBytes: j.MaxOutputBytes},
		Usage:      jobUsage{RunMS: j.RunMS, MemoryPeakBytes: j.MemoryPeakBytes},
		WebhookURL: j.WebhookURL, Metadata: j.Metadata.V,
		CreatedAt: j.CreatedAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt,
	}
	if v.Metadata == nil {
		v.Metadata = map[string]string{}
	}
	v.Stdout, v.StdoutBase64 = textOrBase64(j.Stdout, store.Terminal(j.Status))
	v.Stderr, v.StderrBase64 = textOrBase64(j.Stderr, store.Terminal(j.Status))
	if j.ErrorCode != nil {
		v.Error = &jobError{Code: *j.ErrorCode}
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

type listView[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

func viewPage[S, T any](p store.Page[S], view func(S) T) listView[T] {
	out := listView[T]{Data: make([]T, len(p.Items))}
	for i, it := range p.Items {
		out.Data[i] = view(it)
	}
	if p.NextCursor != "" {
		c := p.NextCursor
		out.NextCursor = &c
	}
	return out
}

type eventView struct {
	ID        int64          `json:"id"`
	Action    string         `json:"action"`
	Actor     string         `json:"actor"`
	Data      map[string]any `json:"data"`
	CreatedAt time.Time      `json:"created_at"`
}

func viewEvent(e store.Event) eventView {
	return eventView{ID: e.ID, Action: e.Action, Actor: e.ActorName, Data: e.Data, CreatedAt: e.CreatedAt}
}
