// Package jobstate defines a job's status and the outcome of an attempt.
//
// It is the one definition the API, the store and the worker's executor
// share. It depends on nothing of the platform, so that the executor (which
// runs in the sandbox child, away from the database) returns outcomes
// without importing the store.
package jobstate

import (
	"encoding/json"
	"time"
)

// Status is a job's status: queued → running → one terminal status; a
// terminal status never changes again. The values are the jobs table's
// (its CHECK constraint) and the API's.
type Status string

// The job statuses.
const (
	Queued    Status = "queued"
	Running   Status = "running"
	Succeeded Status = "succeeded"
	Failed    Status = "failed"
	TimedOut  Status = "timed_out"
	Cancelled Status = "cancelled"
)

// Terminal reports whether s is final.
func (s Status) Terminal() bool {
	switch s {
	case Succeeded, Failed, TimedOut, Cancelled:
		return true
	}
	return false
}

// Valid reports whether s is a job status.
func (s Status) Valid() bool { return s == Queued || s == Running || s.Terminal() }

// Outcome is what an attempt produced: the worker's executor returns it
// (within its Result) and the store writes it as the job's result
// (FinishJob). Guest failures (non-zero exit, trap, timeout) are outcomes,
// not errors.
type Outcome struct {
	Status          Status
	ExitCode        *int
	Stdout, Stderr  []byte
	StdoutTruncated bool
	StderrTruncated bool
	ReturnValues    []json.RawMessage
	ErrorCode       string
	ErrorMessage    string
	MemoryPeakBytes int64
	// RunTime is how long the guest ran (stored in milliseconds).
	RunTime time.Duration
	// ArtifactsTruncated: some files matching the job's collect patterns
	// were not kept (max_artifact_bytes).
	ArtifactsTruncated bool
}
