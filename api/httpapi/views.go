package httpapi

import (
	"encoding/hex"
	"time"

	"github.com/google/uuid"

	"github.com/wasmwizard/wasmwizard/shared/jobview"
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

// jobView is the Job of docs/API.md; the worker renders the same shape for
// webhook payloads, so it lives in shared/jobview.
type jobView = jobview.Job

func viewJob(j store.Job) jobView { return jobview.From(j) }

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
