package doorbell

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// A ring that finds the doorbell longer than backlog entries means no
// worker is waiting on it: every worker is busy, and asynq hands them the
// queued jobs as slots free up. Ringing would only cost a Redis round trip
// per job, so the Bell stays quiet for quiet (and looks again with its next
// ring). Idle workers empty the list within a round trip, so an idle
// platform never gets near it.
const (
	backlog = 64
	quiet   = 500 * time.Millisecond
)

// Bell is the API's side of the doorbell: it rings for new jobs and sends
// cancellations.
type Bell struct {
	rdb        redis.UniversalClient
	queue      string
	timeout    time.Duration
	quietUntil atomic.Int64 // unix ns; see backlog
}

// NewBell returns the Bell of queue's doorbell; timeout bounds each ring.
func NewBell(rdb redis.UniversalClient, queue string, timeout time.Duration) *Bell {
	return &Bell{rdb: rdb, queue: queue, timeout: timeout}
}

// Ring pushes job id on the doorbell, so that an idle worker starts it at
// once instead of at its next poll. It is only a hint: the queued task is
// what guarantees the run, so a caller may ignore the error. Jobs of tiers
// that weigh more than the lightest (weight > 1) ring at the end workers pop
// first, so that a flood of light jobs rung in the last moments does not
// stand before them.
func (b *Bell) Ring(ctx context.Context, id uuid.UUID, weight int) error {
	if time.Now().UnixNano() < b.quietUntil.Load() {
		return nil
	}
	key := Key(b.queue)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.timeout)
	defer cancel()
	var push *redis.IntCmd
	_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if weight > 1 {
			push = p.RPush(ctx, key, Entry(id, time.Now())) // popped next
		} else {
			push = p.LPush(ctx, key, Entry(id, time.Now()))
		}
		p.LTrim(ctx, key, 0, MaxEntries-1)
		p.PExpire(ctx, key, Expiry)
		return nil
	})
	if err != nil {
		return err
	}
	if push.Val() > backlog {
		b.quietUntil.Store(time.Now().Add(quiet).UnixNano())
	}
	return nil
}

// Cancel names job id on the cancel channel: the worker running it, from
// the doorbell or (with a Canceller runner) from any delivery, interrupts
// the run.
func (b *Bell) Cancel(ctx context.Context, id uuid.UUID) error {
	return b.rdb.Publish(ctx, CancelChannel(b.queue), id.String()).Err()
}
