package doorbell

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
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

// Slots is the worker's slot accounting, shared with asynq's deliveries
// (worker/slots). A doorbell run needs a slot that is free and not kept for
// asynq.
type Slots interface {
	// TakeForBell takes such a slot, if there is one.
	TakeForBell() bool
	// WaitForBell waits until there is one, without taking it. It reports
	// false if stop closed (or the slots were closed) first.
	WaitForBell(stop <-chan struct{}) bool
	// Release frees a slot TakeForBell took.
	Release()
}

// Config configures a Listener.
type Config struct {
	Redis redis.UniversalClient
	// Queue is the jobs queue whose doorbell is read.
	Queue string
	// Slots are the worker's slots; a doorbell run holds one.
	Slots  Slots
	Runner Runner
	Log    *zap.Logger
	// MaxAge drops entries older than this: by then asynq has delivered
	// the job (default 2 s).
	MaxAge time.Duration
	// Block is how long one BRPOP waits before it is sent again (default
	// 2 s): the only Redis traffic of an idle doorbell.
	Block time.Duration
}

// Listener is the worker's side of the doorbell: it reads a queue's
// doorbell and runs the jobs it names, and interrupts runs named on the
// cancel channel.
type Listener struct {
	cfg Config
	log *zap.Logger

	mu      sync.Mutex
	closed  bool // no more runs start (set under mu, so jobs.Add never races jobs.Wait)
	running map[uuid.UUID]context.CancelFunc

	stop     chan struct{}
	shutdown sync.Once
	subDone  chan struct{}  // the cancel subscription's loop ended
	popDone  chan struct{}  // the pop loop ended
	jobs     sync.WaitGroup // doorbell runs
	pubsub   *redis.PubSub
	baseCtx  context.Context
	cancel   context.CancelFunc
}

// Listen starts reading the doorbell.
func Listen(cfg Config) *Listener {
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 2 * time.Second
	}
	if cfg.Block == 0 {
		cfg.Block = 2 * time.Second
	}
	l := &Listener{cfg: cfg, log: cfg.Log, running: map[uuid.UUID]context.CancelFunc{},
		stop: make(chan struct{}), subDone: make(chan struct{}), popDone: make(chan struct{})}
	l.baseCtx, l.cancel = context.WithCancel(context.Background())
	l.pubsub = cfg.Redis.Subscribe(l.baseCtx, CancelChannel(cfg.Queue))
	go l.popLoop()
	go l.cancelLoop()
	return l
}

// popLoop takes jobs off the doorbell while a slot is free. A BRPOP under
// way when the listener stops cannot be interrupted: Shutdown waits for it
// (at most Config.Block), and an entry it returns then is given back.
func (l *Listener) popLoop() {
	defer close(l.popDone)
	key := Key(l.cfg.Queue)
	for {
		// Read only while a slot is free: a busy worker leaves the doorbell
		// to idle ones (and its jobs to asynq). The slot is not held while
		// blocked, so asynq's deliveries never wait for the doorbell.
		if !l.cfg.Slots.WaitForBell(l.stop) {
			return
		}
		res, err := l.cfg.Redis.BRPop(l.baseCtx, l.cfg.Block, key).Result()
		if l.stopping() {
			if err == nil {
				l.giveBack(key, res[1])
			}
			return
		}
		if err != nil {
			if !errors.Is(err, redis.Nil) {
				l.log.Warn("doorbell read failed; asynq's polling still delivers jobs", zap.Error(err))
				select {
				case <-time.After(time.Second):
				case <-l.stop:
					return
				}
			}
			continue
		}
		id, rung, err := ParseEntry(res[1])
		if err != nil || time.Since(rung) > l.cfg.MaxAge {
			continue
		}
		if !l.cfg.Slots.TakeForBell() {
			// asynq took the last slot meanwhile: let another worker have it.
			l.giveBack(key, res[1])
			continue
		}
		if !l.run(id) {
			l.giveBack(key, res[1])
			return
		}
	}
}

// giveBack returns an entry to the end of the list it was popped from.
func (l *Listener) giveBack(key, entry string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.cfg.Redis.RPush(ctx, key, entry).Err()
}

func (l *Listener) stopping() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// run runs job id in its own goroutine, holding the slot taken for it. It
// reports false (and releases the slot) if the listener is shutting down.
func (l *Listener) run(id uuid.UUID) bool {
	ctx, cancel := context.WithCancel(l.baseCtx)
	l.mu.Lock()
	_, dup := l.running[id]
	if l.closed || dup {
		closed := l.closed
		l.mu.Unlock()
		cancel()
		l.cfg.Slots.Release()
		return !closed
	}
	l.running[id] = cancel
	l.jobs.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.jobs.Done()
		defer l.cfg.Slots.Release()
		defer func() {
			l.mu.Lock()
			delete(l.running, id)
			l.mu.Unlock()
			cancel()
		}()
		if err := l.cfg.Runner.Run(ctx, id); err != nil {
			// The asynq task is still queued: it retries whatever failed.
			l.log.Debug("doorbell run did not complete", zap.String("job_id", id.String()), zap.Error(err))
		}
	}()
	return true
}

func (l *Listener) cancelLoop() {
	defer close(l.subDone)
	ch := l.pubsub.Channel()
	for {
		select {
		case <-l.stop:
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			id, err := uuid.Parse(m.Payload)
			if err != nil {
				continue
			}
			if c, ok := l.cfg.Runner.(Canceller); ok {
				c.Cancel(id)
				continue
			}
			l.mu.Lock()
			cancel := l.running[id]
			l.mu.Unlock()
			if cancel != nil {
				cancel()
			}
		}
	}
}

// Shutdown stops reading the doorbell, lets running jobs finish for up to
// grace, then interrupts them (the runner hands them back to the queue) and
// waits for them, and for the pop under way (at most Config.Block), to
// return. Only the first call does anything.
func (l *Listener) Shutdown(grace time.Duration) {
	l.shutdown.Do(func() { l.doShutdown(grace) })
}

func (l *Listener) doShutdown(grace time.Duration) {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	done := make(chan struct{})
	go func() { l.jobs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
	}
	l.cancel()
	<-done
	_ = l.pubsub.Close()
	<-l.subDone
	<-l.popDone
}
