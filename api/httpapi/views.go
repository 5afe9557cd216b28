package httpapi

import (
	"encoding/hex"
	"time"

	"github.com/google/uuid"

	"github.com/wasmwizard/wasmwizard/shared/apiobject"
	"github.com/wasmwizard/wasmwizard/shared/jobview"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

// The JSON shapes of docs/API.md that several resources share; each
// resource's own are in its file. Every answer is a view type (or the Job
// of shared/jobview, api/scaling's Figures, or a Problem): store rows and
// maps are never written as they are. The views the SDK reads with the
// same Go types are aliases of shared/apiobject's.
//
// The types that replaced maps list their fields in the maps' key order
// (encoding/json sorts map keys), so that the bytes on the wire stayed the
// same.

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

// listView is a page of a paginated list.
type listView[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

func viewPage[S, T any](p store.Page[S], view func(S) T) listView[T] {
	out := listView[T]{Data: viewAll(p.Items, view)}
	if p.NextCursor != "" {
		c := p.NextCursor
		out.NextCursor = &c
	}
	return out
}

// eventView is one audit row of a job (the SDK reads it with the same
// type).
type eventView = apiobject.Event

func viewEvent(e store.Event) eventView {
	return eventView{ID: e.ID, Action: e.Action, Actor: e.ActorName, Data: e.Data, CreatedAt: e.CreatedAt}
}

// dataView is a list answered whole, not by pages.
type dataView[T any] struct {
	Data []T `json:"data"`
}

// viewAll renders each item; the list is empty, never nil (null), when
// there are none.
func viewAll[S, T any](items []S, view func(S) T) []T {
	out := make([]T, len(items))
	for i, it := range items {
		out[i] = view(it)
	}
	return out
}
