// Package slots shares a worker's job slots between asynq's deliveries and
// doorbell runs.
//
// A task asynq delivers waits for a free slot before it claims its job
// (Track), so a job is never running in Postgres while it waits for a
// sandbox; a doorbell run (shared/doorbell) takes a slot only when one is
// free and not kept for asynq. Under load asynq, not the doorbell, should
// hand out the jobs, since a job the doorbell runs costs a second, wasted
// delivery of its asynq task: so a slot one of asynq's runs frees is kept
// for asynq's next delivery for a short handoff before the doorbell may
// take it.
package slots

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"
)

// Config configures Slots.
type Config struct {
	// Slots is how many jobs the worker runs at once (asynq's and the
	// doorbell's together; at least 1).
	Slots int
	// SlotWait is how long a task asynq delivers waits for a free slot
	// before it is handed back with ErrNoSlot (default 5 s).
	SlotWait time.Duration
	// Handoff is how long a slot that one of asynq's runs frees is kept
	// for asynq's next delivery before the doorbell may take it (default
	// 20 ms). Under load asynq acknowledges the finished task and fetches
	// the next one within a few Redis round trips; without the handoff the
	// doorbell would win nearly every freed slot. An idle worker's
	// doorbell is never held up: it has no recent asynq run.
	Handoff time.Duration
}

// ErrNoSlot is returned for a task asynq delivered while every slot stayed
// busy (with doorbell runs) for Config.SlotWait, or when the slots were
// closed. The job was not claimed; the task should be delivered again later,
// without counting as a failure.
var ErrNoSlot = errors.New("no free slot on this worker")

// Slots counts a worker's busy slots. It implements doorbell.Slots.
type Slots struct {
	cfg Config

	mu   sync.Mutex
	busy int
	// handoffs are the deadlines of slots kept for asynq's next delivery.
	handoffs []time.Time
	freed    chan struct{} // closed (and replaced) whenever a slot frees

	closed    chan struct{}
	closeOnce sync.Once
}

// New returns cfg.Slots free slots.
func New(cfg Config) *Slots {
	if cfg.Slots < 1 {
		cfg.Slots = 1
	}
	if cfg.SlotWait == 0 {
		cfg.SlotWait = 5 * time.Second
	}
	if cfg.Handoff == 0 {
		cfg.Handoff = 20 * time.Millisecond
	}
	return &Slots{cfg: cfg, freed: make(chan struct{}), closed: make(chan struct{})}
}

// Track wraps the asynq handler of job runs so that each delivery holds a
// slot while it runs: it waits for a free one before it claims its job.
func (s *Slots) Track(h asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		if !s.take(false) {
			// Not until asynq's deadline: a delivery that runs out its
			// context counts as a failure, one handed back does not.
			wctx, cancel := context.WithTimeout(ctx, s.cfg.SlotWait)
			defer cancel()
			for !s.take(false) {
				if !s.wait(wctx.Done(), false) {
					if ctx.Err() != nil {
						return fmt.Errorf("waiting for a free slot: %w", ctx.Err())
					}
					return ErrNoSlot
				}
			}
		}
		defer s.handOff()
		return h.ProcessTask(ctx, t)
	})
}

// TakeForBell takes a slot for a doorbell run: one that is free and not
// kept for asynq.
func (s *Slots) TakeForBell() bool { return s.take(true) }

// WaitForBell waits until a slot is free and not kept for asynq (without
// taking it). It reports false if stop closed, or the slots were closed,
// first.
func (s *Slots) WaitForBell(stop <-chan struct{}) bool { return s.wait(stop, true) }

// Release frees a slot that TakeForBell took.
func (s *Slots) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy--
	close(s.freed)
	s.freed = make(chan struct{})
}

// Close ends every wait: deliveries waiting for a slot are handed back
// (ErrNoSlot), and WaitForBell reports false. Slots already taken are
// still released as their runs end.
func (s *Slots) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// take takes a slot for one of asynq's deliveries, using up the oldest
// handoff if there is one, or (forBell) for a doorbell run.
func (s *Slots) take(forBell bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	taken := s.busy
	if forBell {
		s.pruneHandoffs(time.Now())
		taken += len(s.handoffs)
	}
	if taken >= s.cfg.Slots {
		return false
	}
	s.busy++
	if !forBell && len(s.handoffs) > 0 {
		s.handoffs = s.handoffs[1:]
	}
	return true
}

// handOff releases a slot that one of asynq's runs held, keeping it for
// asynq's next delivery for Config.Handoff.
func (s *Slots) handOff() {
	s.mu.Lock()
	s.handoffs = append(s.handoffs, time.Now().Add(s.cfg.Handoff))
	s.mu.Unlock()
	s.Release()
}

// pruneHandoffs drops lapsed handoffs (s.mu held); they are in deadline order.
func (s *Slots) pruneHandoffs(now time.Time) {
	i := 0
	for i < len(s.handoffs) && !now.Before(s.handoffs[i]) {
		i++
	}
	s.handoffs = s.handoffs[i:]
}

// wait waits until busy slots (plus, for the doorbell, the slots kept for
// asynq) leave one free. It reports false if done or Close came first.
func (s *Slots) wait(done <-chan struct{}, forBell bool) bool {
	for {
		s.mu.Lock()
		taken := s.busy
		var lapse <-chan time.Time
		if forBell {
			now := time.Now()
			s.pruneHandoffs(now)
			taken += len(s.handoffs)
			if taken >= s.cfg.Slots && len(s.handoffs) > 0 {
				lapse = time.After(s.handoffs[0].Sub(now))
			}
		}
		free, ch := taken < s.cfg.Slots, s.freed
		s.mu.Unlock()
		if free {
			return true
		}
		select {
		case <-ch:
		case <-lapse:
		case <-done:
			return false
		case <-s.closed:
			return false
		}
	}
}
