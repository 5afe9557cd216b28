// Package jobstate defines a job's status.
//
// It is the one definition the API, the store and the worker's executor
// share. It depends on nothing, so that the executor (which runs in the
// sandbox child, away from the database) names statuses without importing
// the store.
package jobstate

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
