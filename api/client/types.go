package client

import (
	"encoding/json"
	"time"

	"github.com/wasmwizard/wasmwizard/shared/apiobject"
)

// The JSON objects of the HTTP API (docs/API.md, "Objects"). They are the
// client's own types, or the server's own from shared/apiobject (which
// imports the standard library only): the package depends on nothing else
// of the server.

// The objects the server writes with the same types (shared/apiobject).
type (
	// Import is one of a module's imports.
	Import = apiobject.Import
	// Export is one of a module's exports; Params and Results are set for
	// functions.
	Export = apiobject.Export
	// JobError says why a job did not succeed.
	JobError = apiobject.JobError
	// JobLimits are a job's effective limits. MaxFSBytes bounds what the
	// job may write to its filesystem, MaxArtifactBytes what is kept of
	// its artifacts (the tier's, at submit).
	JobLimits = apiobject.JobLimits
	// Artifact is a file a job kept (its request's collect patterns).
	Artifact = apiobject.Artifact
	// Event is one audit row of a job.
	Event = apiobject.Event
	// Attempt is one attempt of a webhook delivery.
	Attempt = apiobject.Attempt
	// Asset is a read-only tree attached to a module at a mount path.
	Asset = apiobject.Asset
	// AccountUsage is an account's usage now.
	AccountUsage = apiobject.AccountUsage
)

// Job statuses.
const (
	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusTimedOut  = "timed_out"
	StatusCancelled = "cancelled"
)

// Terminal reports whether a job status is final.
func Terminal(status string) bool {
	switch status {
	case StatusSucceeded, StatusFailed, StatusTimedOut, StatusCancelled:
		return true
	}
	return false
}

// Page is one page of a cursor-paginated list. NextCursor is empty on the
// last page.
type Page[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"next_cursor"`
}

// ListOptions page through a list: Limit 0 is the server's default (50).
type ListOptions struct {
	Limit  int
	Cursor string
}

// Module is an uploaded module.
type Module struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	SHA256    string    `json:"sha256"`
	SizeBytes int64     `json:"size_bytes"`
	Imports   []Import  `json:"imports"`
	Exports   []Export  `json:"exports"`
	WASI      bool      `json:"wasi"`
	CreatedAt time.Time `json:"created_at"`
}

// File is an input file of a job (docs/API.md, "Files, assets, artifacts").
type File struct {
	Path     string `json:"path"`
	Content  string `json:"content"`
	Encoding string `json:"encoding,omitempty"` // "utf8" (default) or "base64"
	Mode     string `json:"mode,omitempty"`     // "rw" (default) or "ro"
}

// JobRequest is the body of POST /v1/jobs. Zero values are left out, so the
// tier's defaults apply.
type JobRequest struct {
	ModuleID       string            `json:"module_id"`
	Function       string            `json:"function,omitempty"`
	Args           []string          `json:"args,omitempty"`
	Env            map[string]string `json:"env,omitempty"`
	Stdin          *string           `json:"stdin,omitempty"`
	StdinBase64    *string           `json:"stdin_base64,omitempty"`
	Params         []json.RawMessage `json:"params,omitempty"`
	TimeoutMS      int               `json:"timeout_ms,omitempty"`
	MemoryLimitMB  int               `json:"memory_limit_mb,omitempty"`
	MaxOutputBytes int               `json:"max_output_bytes,omitempty"`
	Deterministic  bool              `json:"deterministic,omitempty"`
	WebhookURL     string            `json:"webhook_url,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	Files          []File            `json:"files,omitempty"`
	Preopens       []string          `json:"preopens,omitempty"`
	Collect        []string          `json:"collect,omitempty"`
}

// Job is a job and, once it is terminal, its result.
type Job struct {
	ID              string            `json:"id"`
	ModuleID        string            `json:"module_id"`
	Function        string            `json:"function"`
	Status          string            `json:"status"`
	ExitCode        *int              `json:"exit_code"`
	Stdout          *string           `json:"stdout"`
	Stderr          *string           `json:"stderr"`
	StdoutBase64    *string           `json:"stdout_base64,omitempty"`
	StderrBase64    *string           `json:"stderr_base64,omitempty"`
	OutputOmitted   bool              `json:"output_omitted,omitempty"`
	StdoutTruncated bool              `json:"stdout_truncated"`
	StderrTruncated bool              `json:"stderr_truncated"`
	ReturnValues    []json.RawMessage `json:"return_values"`
	Error           *JobError         `json:"error"`
	Attempts        int               `json:"attempts"`
	Limits          JobLimits         `json:"limits"`
	Usage           JobUsage          `json:"usage"`
	WebhookURL      *string           `json:"webhook_url"`
	Metadata        map[string]string `json:"metadata"`
	CreatedAt       time.Time         `json:"created_at"`
	StartedAt       *time.Time        `json:"started_at"`
	FinishedAt      *time.Time        `json:"finished_at"`

	// The job's files (docs/API.md, "Files, assets, artifacts"): the
	// request's preopens (with their default) and collect patterns, how
	// many input files it brought (their contents are not returned), and
	// the artifacts kept after the run, with ArtifactsTruncated when some
	// matching files were left out (max_artifact_bytes).
	Preopens           []string   `json:"preopens"`
	Collect            []string   `json:"collect"`
	InputFiles         int        `json:"input_files"`
	Artifacts          []Artifact `json:"artifacts"`
	ArtifactsTruncated bool       `json:"artifacts_truncated"`
}

// Terminal reports whether the job is finished.
func (j *Job) Terminal() bool { return Terminal(j.Status) }

// JobUsage is what a job used.
type JobUsage struct {
	QueueMS         *int64 `json:"queue_ms"`
	RunMS           *int64 `json:"run_ms"`
	MemoryPeakBytes *int64 `json:"memory_peak_bytes"`
}

// JobFilter selects jobs in ListJobs.
type JobFilter struct {
	Status        string
	ModuleID      string
	CreatedAfter  time.Time
	CreatedBefore time.Time
	ListOptions
}

// BatchItem is one answer of SubmitBatch: the Job, or the Error refusing
// that request.
type BatchItem struct {
	Job   *Job   `json:"job,omitempty"`
	Error *Error `json:"error,omitempty"`
}

// Delivery is a job's webhook delivery.
type Delivery struct {
	ID            string     `json:"id"`
	JobID         string     `json:"job_id"`
	URL           string     `json:"url"`
	EventType     string     `json:"event_type"`
	Status        string     `json:"status"`
	Attempts      []Attempt  `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	CreatedAt     time.Time  `json:"created_at"`
	DeliveredAt   *time.Time `json:"delivered_at"`
}

// Account is the caller's account with its tier's limits and its usage.
type Account struct {
	ID            string         `json:"id"`
	Name          string         `json:"name"`
	Tier          string         `json:"tier"`
	WebhookSecret string         `json:"webhook_secret"`
	CreatedAt     time.Time      `json:"created_at"`
	Limits        map[string]any `json:"limits"`
	Usage         AccountUsage   `json:"usage"`
}

// SecretRotation is the answer of RotateWebhookSecret.
type SecretRotation struct {
	WebhookSecret         string    `json:"webhook_secret"`
	PreviousSecretExpires time.Time `json:"previous_secret_expires"`
}
