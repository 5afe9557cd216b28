// Package doorbell is the fast path around asynq's polling: the API rings,
// idle workers answer.
//
// An idle asynq server finds a new task only at its next poll of Redis, so a
// short poll interval buys latency with a steady stream of Redis commands
// from every idle worker. Instead, after it enqueues a job's task, the API
// rings (Bell.Ring): it pushes an entry "<job id> <unix ms>" (Entry) on the
// deployment's doorbell, a Redis list named after the base queue (Key),
// trimmed to MaxEntries entries and expiring after Expiry when no worker
// reads it. A worker with a free slot waits on that list with a blocking pop
// (Listener): a job is picked up within a network round trip, and an idle
// worker sends nothing but one BRPOP every few seconds.
//
// The doorbell only hints. The job is claimed in Postgres exactly as for an
// asynq delivery (jobrunner.Runner.Run), so a job rung twice, or also
// delivered by asynq, runs once; the asynq task stays queued as the durable
// copy and is acknowledged when asynq delivers it and finds the job
// terminal. Losing the list (Redis flushed, no worker listening) only costs
// latency.
//
// A worker's slots are shared between asynq's deliveries and the doorbell's
// runs (Slots, which worker/slots implements): the listener reads only while
// a slot is free for it, and never holds one while it is blocked.
//
// The doorbell also carries cancellations: asynq's cancellation only reaches
// the tasks asynq runs, so the API names the job whose run must stop on the
// queue's cancel channel too (Bell.Cancel, CancelChannel). The listener
// cancels a doorbell run of that job or, with a Canceller runner, asks the
// runner, which reaches every run of the worker, asynq's included.
package doorbell

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// A doorbell list holds hints only: at most MaxEntries of them, and it
// expires Expiry after the last ring.
const (
	MaxEntries = 1000
	Expiry     = time.Minute
)

// Key is the Redis list of the doorbell of queue (tasks.Queue).
func Key(queue string) string { return "wasmwizard:{" + queue + "}:doorbell" }

// CancelChannel is the Redis pub/sub channel on which the API names jobs
// whose running attempt must stop. The message is the job ID.
func CancelChannel(queue string) string { return "wasmwizard:{" + queue + "}:cancel" }

// Entry encodes a doorbell entry for job id rung at t.
func Entry(id uuid.UUID, t time.Time) string {
	return fmt.Sprintf("%s %d", id, t.UnixMilli())
}

// ParseEntry decodes a doorbell entry.
func ParseEntry(s string) (uuid.UUID, time.Time, error) {
	idPart, msPart, ok := strings.Cut(s, " ")
	if !ok {
		return uuid.Nil, time.Time{}, fmt.Errorf("doorbell entry %q: want \"<id> <ms>\"", s)
	}
	id, err := uuid.Parse(idPart)
	if err != nil {
		return uuid.Nil, time.Time{}, fmt.Errorf("doorbell entry %q: %w", s, err)
	}
	ms, err := strconv.ParseInt(msPart, 10, 64)
	if err != nil {
		return uuid.Nil, time.Time{}, fmt.Errorf("doorbell entry %q: %w", s, err)
	}
	return id, time.UnixMilli(ms), nil
}
