// Package apiobject holds the JSON objects of the HTTP API (docs/API.md,
// "Objects") that the server writes and the Go SDK (api/client) reads with
// the very same Go types.
//
// It imports the standard library only, so the SDK depends on it without
// depending on anything of the server. The objects whose server side holds
// server types (a Job's uuid IDs and statuses, for one) are not here: the
// server and the SDK each have their own.
package apiobject

import "time"

// Import is one of a module's imports.
type Import struct {
	Module string `json:"module"`
	Name   string `json:"name"`
	Kind   string `json:"kind"`
}

// Export is one of a module's exports; Params and Results are set for
// functions.
type Export struct {
	Name    string   `json:"name"`
	Kind    string   `json:"kind"`
	Params  []string `json:"params,omitempty"`
	Results []string `json:"results,omitempty"`
}

// JobError says why a job did not succeed.
type JobError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// JobLimits are a job's effective limits. MaxFSBytes bounds what the job
// may write to its filesystem, MaxArtifactBytes what is kept of its
// artifacts (the tier's, at submit).
type JobLimits struct {
	TimeoutMS        int   `json:"timeout_ms"`
	MemoryLimitMB    int   `json:"memory_limit_mb"`
	MaxOutputBytes   int   `json:"max_output_bytes"`
	MaxFSBytes       int64 `json:"max_fs_bytes"`
	MaxArtifactBytes int64 `json:"max_artifact_bytes"`
}

// Artifact is a file a job kept (its request's collect patterns): in a Job,
// and listed by GET /v1/jobs/{id}/artifacts.
type Artifact struct {
	Path      string `json:"path"`
	SizeBytes int64  `json:"size_bytes"`
	SHA256    string `json:"sha256"` // hex
}

// Event is one audit row of a job (GET /v1/jobs/{id}/events).
type Event struct {
	ID        int64          `json:"id"`
	Action    string         `json:"action"`
	Actor     string         `json:"actor"`
	Data      map[string]any `json:"data"`
	CreatedAt time.Time      `json:"created_at"`
}

// Attempt is one attempt of a webhook delivery.
type Attempt struct {
	Attempt         int       `json:"attempt"`
	StatusCode      *int      `json:"status_code"`
	DurationMS      int64     `json:"duration_ms"`
	Error           *string   `json:"error"`
	ResponseExcerpt *string   `json:"response_excerpt"`
	CreatedAt       time.Time `json:"created_at"`
}

// Asset is a read-only tree attached to a module at a mount path.
type Asset struct {
	Mount     string    `json:"mount"`
	SHA256    string    `json:"sha256"` // of the tree's tar, hex
	SizeBytes int64     `json:"size_bytes"`
	Files     int64     `json:"files"`
	CreatedAt time.Time `json:"created_at"`
}

// AccountUsage is an account's activity today (UTC) and now.
type AccountUsage struct {
	RunsToday   int64 `json:"runs_today"`
	Running     int64 `json:"running"`
	Queued      int64 `json:"queued"`
	Modules     int64 `json:"modules"`
	ModuleBytes int64 `json:"module_bytes"`
}
