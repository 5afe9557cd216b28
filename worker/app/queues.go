package app

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
)

// tierRefresh is how often the worker re-reads the tiers: a new tier or a
// new weight takes effect within this period, without a restart.
const tierRefresh = 5 * time.Second

// jobServer is the asynq server that runs jobs, listening to one queue per
// tier weighted by the tier's queue_weight (plus the base queue, weight 1,
// for pre-compiles). When the tiers change it starts a server with the new
// weights and lets the old one finish its running jobs.
type jobServer struct {
	// build makes a server for queues whose asynq health check reports to
	// health.
	build     func(queues map[string]int, health func(error)) *asynq.Server
	handler   asynq.Handler
	store     *store.Store
	namespace string
	log       *zap.Logger

	mu       sync.Mutex
	srv      *asynq.Server
	queues   map[string]int
	retiring sync.WaitGroup
	stop     chan struct{}
	done     chan struct{}
	// running is true from start to shutdown.
	running  bool
	shutOnce sync.Once
	// healthErr is the current server's failing health check (asynq pings
	// Redis with it), failing since healthSince.
	healthErr   error
	healthSince time.Time
}

// health records an asynq health check of server srv.
func (j *jobServer) health(srv **asynq.Server) func(error) {
	return func(err error) {
		j.mu.Lock()
		defer j.mu.Unlock()
		if *srv != j.srv {
			return // a retired server's report
		}
		switch {
		case err == nil:
			j.healthErr = nil
		case j.healthErr == nil:
			j.healthErr, j.healthSince = err, time.Now()
		default:
			j.healthErr = err
		}
	}
}

// healthy reports an error when the server does not take jobs: it is not
// running, or its health check has failed for longer than lease.
func (j *jobServer) healthy(lease time.Duration) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.running || j.srv == nil {
		return errors.New("the queue server is not running")
	}
	if j.healthErr != nil {
		if d := time.Since(j.healthSince); d > lease {
			return fmt.Errorf("the queue server's health check has failed for %s: %w", d.Round(time.Second), j.healthErr)
		}
	}
	return nil
}

func (j *jobServer) tierQueues(ctx context.Context) (map[string]int, error) {
	tiers, err := j.store.ListTiers(ctx)
	if err != nil {
		return nil, err
	}
	q := map[string]int{tasks.Queue(j.namespace): 1}
	for _, t := range tiers {
		q[tasks.TierQueue(j.namespace, t.Name)] = max(t.QueueWeight, 1)
	}
	return q, nil
}

// start starts the first server and the refresh loop.
func (j *jobServer) start(ctx context.Context) error {
	q, err := j.tierQueues(ctx)
	if err != nil {
		return err
	}
	srv := new(*asynq.Server)
	*srv = j.build(q, j.health(srv))
	if err := (*srv).Start(j.handler); err != nil {
		return err
	}
	j.mu.Lock()
	j.srv, j.queues, j.running = *srv, q, true
	j.mu.Unlock()
	j.stop, j.done = make(chan struct{}), make(chan struct{})
	go j.refresh() //nolint:gosec // runs for the worker's life, stopped by shutdown, not by the start context
	return nil
}

func (j *jobServer) refresh() {
	defer close(j.done)
	t := time.NewTicker(tierRefresh)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		q, err := j.tierQueues(ctx)
		cancel()
		if err != nil {
			j.log.Warn("could not re-read the tiers; keeping the current queues", zap.Error(err))
			continue
		}
		j.mu.Lock()
		if maps.Equal(q, j.queues) {
			j.mu.Unlock()
			continue
		}
		next := new(*asynq.Server)
		*next = j.build(q, j.health(next))
		if err := (*next).Start(j.handler); err != nil {
			j.mu.Unlock()
			j.log.Warn("could not start a server for the new tiers", zap.Error(err))
			continue
		}
		old := j.srv
		j.srv, j.queues, j.healthErr = *next, q, nil
		j.retiring.Add(1)
		j.mu.Unlock()
		j.log.Info("tiers changed: listening to the new queues", zap.Any("queues", q))
		go func() {
			defer j.retiring.Done()
			old.Shutdown() // its running jobs finish (or are handed back)
		}()
	}
}

// shutdown stops the refresh loop and every server. Calls after the first
// only wait for it.
func (j *jobServer) shutdown() {
	j.shutOnce.Do(j.shutdownOnce)
}

func (j *jobServer) shutdownOnce() {
	if j.stop != nil {
		close(j.stop)
		<-j.done
	}
	j.mu.Lock()
	srv := j.srv
	j.running = false
	j.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
	}
	j.retiring.Wait()
}
