// Package doorbell is the worker's fast path around asynq's polling. An
// idle asynq server finds a new task only at its next poll of Redis, so a
// short poll interval buys latency with a steady stream of Redis commands
// from every idle worker. Instead, the API pushes each new job's ID on a
// Redis list (tasks.DoorbellKey) and a worker with a free slot waits on that
// list with a blocking pop: a job is picked up within a network round trip,
// and an idle worker sends nothing but one BRPOP every few seconds.
//
// The doorbell only hints. The job is claimed in Postgres exactly as for an
// asynq delivery (jobrunner.Runner.Run), so a job rung twice, or also
// delivered by asynq, runs once; the asynq task stays queued as the durable
// copy and is acknowledged when asynq delivers it and finds the job
// terminal. Losing the doorbell list (Redis flushed, no worker listening)
// only costs latency. Jobs run from the doorbell are stopped by a client's
// cancel through tasks.CancelChannel, since asynq's cancellation only reaches
// the tasks asynq runs; with a Canceller runner, the channel reaches every
// run of the worker, asynq's included.
package doorbell

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/tasks"
)

// Runner runs one job; jobrunner.Runner.Run.
type Runner interface {
	Run(ctx context.Context, id uuid.UUID) error
}

// Canceller is a Runner that interrupts the run of a job itself, whichever
// delivery started it (jobrunner.Runner.Cancel). A delivery may run another
// job than the one it names (fair claims), so a Canceller's Cancel is used
// instead of interrupting the doorbell run that was given that job's ID.
type Canceller interface {
	Cancel(id uuid.UUID)
}

// Config configures a Doorbell.
type Config struct {
	Redis redis.UniversalClient
	// Queue is the jobs queue whose doorbell is read.
	Queue string
	// Slots is how many jobs the worker runs at once (asynq's and the
	// doorbell's together).
	Slots  int
	Runner Runner
	Log    *zap.Logger
	// MaxAge drops entries older than this: by then asynq has delivered
	// the job (default 2 s).
	MaxAge time.Duration
	// Block is how long one BRPOP waits before it is sent again (default
	// 2 s): the only Redis traffic of an idle doorbell.
	Block time.Duration
	// SlotWait is how long a task asynq delivers waits for a free slot
	// before it is handed back with ErrNoSlot (default 5 s).
	SlotWait time.Duration
	// Handoff is how long a slot that one of asynq's runs frees is kept
	// for asynq's next delivery before the doorbell may take it (default
	// 20 ms). Under load asynq acknowledges the finished task and fetches
	// the next one within a few Redis round trips; without the handoff the
	// doorbell would win nearly every freed slot, and every job it runs
	// costs a second, wasted delivery of its asynq task. An idle worker's
	// doorbell is never held up: it has no recent asynq run.
	Handoff time.Duration
}

// ErrNoSlot is returned for a task asynq delivered while every slot stayed
// busy (with doorbell runs) for Config.SlotWait. The job was not claimed;
// the task should be delivered again later, without counting as a failure.
var ErrNoSlot = errors.New("no free slot on this worker")

// Doorbell reads a queue's doorbell and runs the jobs it names.
type Doorbell struct {
	cfg Config
	log *zap.Logger

	mu     sync.Mutex
	closed bool // no more runs start (set under mu, so jobs.Add never races jobs.Wait)
	busy   int
	// handoffs are the deadlines of slots kept for asynq's next delivery.
	handoffs []time.Time
	running  map[uuid.UUID]context.CancelFunc
	freed    chan struct{} // closed (and replaced) whenever a slot frees

	stop     chan struct{}
	shutdown sync.Once
	subDone  chan struct{}  // the cancel subscription's loop ended
	jobs     sync.WaitGroup // doorbell runs
	pubsub   *redis.PubSub
	baseCtx  context.Context
	cancel   context.CancelFunc
}

// Start starts reading the doorbell.
func Start(cfg Config) *Doorbell {
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 2 * time.Second
	}
	if cfg.Block == 0 {
		cfg.Block = 2 * time.Second
	}
	if cfg.Slots < 1 {
		cfg.Slots = 1
	}
	if cfg.SlotWait == 0 {
		cfg.SlotWait = 5 * time.Second
	}
	if cfg.Handoff == 0 {
		cfg.Handoff = 20 * time.Millisecond
	}
	d := &Doorbell{cfg: cfg, log: cfg.Log, running: map[uuid.UUID]context.CancelFunc{},
		freed: make(chan struct{}), stop: make(chan struct{}), subDone: make(chan struct{})}
	d.baseCtx, d.cancel = context.WithCancel(context.Background())
	d.pubsub = cfg.Redis.Subscribe(d.baseCtx, tasks.CancelChannel(cfg.Queue))
	go d.popLoop()
	go d.cancelLoop()
	return d
}

// Track wraps the asynq handler of job runs so that asynq's runs and the
// doorbell's share the worker's slots: a task asynq delivers waits for a
// free slot before it claims its job, so a job is never running in
// Postgres while it waits for a sandbox.
func (d *Doorbell) Track(h asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		if !d.tryTake() {
			// Not until asynq's deadline: a delivery that runs out its
			// context counts as a failure, one handed back does not.
			wctx, cancel := context.WithTimeout(ctx, d.cfg.SlotWait)
			defer cancel()
			for !d.tryTake() {
				if !d.waitFree(wctx.Done()) {
					if ctx.Err() != nil {
						return fmt.Errorf("waiting for a free slot: %w", ctx.Err())
					}
					return ErrNoSlot
				}
			}
		}
		defer d.handOff()
		return h.ProcessTask(ctx, t)
	})
}

// tryTake takes a slot for one of asynq's deliveries, using up the oldest
// handoff if there is one.
func (d *Doorbell) tryTake() bool { return d.take(false) }

// tryTakeForBell takes a slot for a doorbell run: one that is free and not
// kept for asynq.
func (d *Doorbell) tryTakeForBell() bool { return d.take(true) }

func (d *Doorbell) take(forBell bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	taken := d.busy
	if forBell {
		d.pruneHandoffs(time.Now())
		taken += len(d.handoffs)
	}
	if taken >= d.cfg.Slots {
		return false
	}
	d.busy++
	if !forBell && len(d.handoffs) > 0 {
		d.handoffs = d.handoffs[1:]
	}
	return true
}

// handOff releases a slot that one of asynq's runs held, keeping it for
// asynq's next delivery for Config.Handoff.
func (d *Doorbell) handOff() {
	d.mu.Lock()
	d.handoffs = append(d.handoffs, time.Now().Add(d.cfg.Handoff))
	d.mu.Unlock()
	d.release()
}

// pruneHandoffs drops lapsed handoffs (d.mu held); they are in deadline order.
func (d *Doorbell) pruneHandoffs(now time.Time) {
	i := 0
	for i < len(d.handoffs) && !now.Before(d.handoffs[i]) {
		i++
	}
	d.handoffs = d.handoffs[i:]
}

func (d *Doorbell) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.busy--
	close(d.freed)
	d.freed = make(chan struct{})
}

// waitFree waits until a slot is free for one of asynq's deliveries
// (without taking it). It reports false if done or the doorbell's stop came
// first.
func (d *Doorbell) waitFree(done <-chan struct{}) bool { return d.waitSlot(done, false) }

// waitBellSlot waits until a slot is free and not kept for asynq (without
// taking it). It reports false if the doorbell's stop came first.
func (d *Doorbell) waitBellSlot() bool { return d.waitSlot(nil, true) }

// waitSlot waits until busy slots (plus, for the doorbell, the slots kept
// for asynq) leave one free.
func (d *Doorbell) waitSlot(done <-chan struct{}, forBell bool) bool {
	for {
		d.mu.Lock()
		taken := d.busy
		var lapse <-chan time.Time
		if forBell {
			now := time.Now()
			d.pruneHandoffs(now)
			taken += len(d.handoffs)
			if taken >= d.cfg.Slots && len(d.handoffs) > 0 {
				lapse = time.After(d.handoffs[0].Sub(now))
			}
		}
		free, ch := taken < d.cfg.Slots, d.freed
		d.mu.Unlock()
		if free {
			return true
		}
		select {
		case <-ch:
		case <-lapse:
		case <-done:
			return false
		case <-d.stop:
			return false
		}
	}
}

// popLoop takes jobs off the doorbell while a slot is free. It is not
// waited for at shutdown: a BRPOP cannot be interrupted, and whatever it
// returns after the stop is dropped (asynq delivers those jobs).
func (d *Doorbell) popLoop() {
	key := tasks.DoorbellKey(d.cfg.Queue)
	for {
		// Read only while a slot is free: a busy worker leaves the doorbell
		// to idle ones (and its jobs to asynq). The slot is not held while
		// blocked, so asynq's deliveries never wait for the doorbell.
		if !d.waitBellSlot() {
			return
		}
		res, err := d.cfg.Redis.BRPop(d.baseCtx, d.cfg.Block, key).Result()
		if d.stopping() {
			if err == nil {
				d.giveBack(key, res[1])
			}
			return
		}
		if err != nil {
			if !errors.Is(err, redis.Nil) {
				d.log.Warn("doorbell read failed; asynq's polling still delivers jobs", zap.Error(err))
				select {
				case <-time.After(time.Second):
				case <-d.stop:
					return
				}
			}
			continue
		}
		id, rung, err := tasks.ParseDoorbellEntry(res[1])
		if err != nil || time.Since(rung) > d.cfg.MaxAge {
			continue
		}
		if !d.tryTakeForBell() {
			// asynq took the last slot meanwhile: let another worker have it.
			d.giveBack(key, res[1])
			continue
		}
		if !d.run(id) {
			d.giveBack(key, res[1])
			return
		}
	}
}

// giveBack returns an entry to the end of the list it was popped from.
func (d *Doorbell) giveBack(key, entry string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = d.cfg.Redis.RPush(ctx, key, entry).Err()
}

func (d *Doorbell) stopping() bool {
	select {
	case <-d.stop:
		return true
	default:
		return false
	}
}

// run runs job id in its own goroutine, holding the slot taken for it. It
// reports false (and releases the slot) if the doorbell is shutting down.
func (d *Doorbell) run(id uuid.UUID) bool {
	ctx, cancel := context.WithCancel(d.baseCtx)
	d.mu.Lock()
	_, dup := d.running[id]
	if d.closed || dup {
		closed := d.closed
		d.mu.Unlock()
		cancel()
		d.release()
		return !closed
	}
	d.running[id] = cancel
	d.jobs.Add(1)
	d.mu.Unlock()
	go func() {
		defer d.jobs.Done()
		defer d.release()
		defer func() {
			d.mu.Lock()
			delete(d.running, id)
			d.mu.Unlock()
			cancel()
		}()
		if err := d.cfg.Runner.Run(ctx, id); err != nil {
			// The asynq task is still queued: it retries whatever failed.
			d.log.Debug("doorbell run did not complete", zap.String("job_id", id.String()), zap.Error(err))
		}
	}()
	return true
}

func (d *Doorbell) cancelLoop() {
	defer close(d.subDone)
	ch := d.pubsub.Channel()
	for {
		select {
		case <-d.stop:
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			id, err := uuid.Parse(m.Payload)
			if err != nil {
				continue
			}
			if c, ok := d.cfg.Runner.(Canceller); ok {
				c.Cancel(id)
				continue
			}
			d.mu.Lock()
			cancel := d.running[id]
			d.mu.Unlock()
			if cancel != nil {
				cancel()
			}
		}
	}
}

// Shutdown stops reading the doorbell, lets running jobs finish for up to
// grace, then interrupts them (the runner hands them back to the queue) and
// waits for them to return.
// Only the first call does anything.
func (d *Doorbell) Shutdown(grace time.Duration) {
	d.shutdown.Do(func() { d.doShutdown(grace) })
}

func (d *Doorbell) doShutdown(grace time.Duration) {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	close(d.stop)
	done := make(chan struct{})
	go func() { d.jobs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
	}
	d.cancel()
	<-done
	_ = d.pubsub.Close()
	<-d.subDone
}
