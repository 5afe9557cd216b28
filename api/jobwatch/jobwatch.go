// Package jobwatch tells API requests when a job becomes terminal, for
// ?wait= long-polls. One Postgres connection per process LISTENs on the
// channel the jobs_notify_terminal trigger notifies (lib/pq's Listener) and
// fans each notification out to the in-memory watches of that job, so any
// number of waiting requests costs one database connection.
//
// A watch only says "look again": the caller registers a watch, then reads
// the job, and waits on the watch only if the job is not terminal yet, so a
// job finishing between the read and the wait is never missed. When the
// connection is lost and re-established, notifications sent meanwhile are
// lost, so every watch fires and every waiter reads its job again.
package jobwatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
	"go.uber.org/zap"
)

// Channel is the notification channel; the payload is the job ID.
const Channel = "wasmwizard_job_terminal"

// pingInterval is how often an idle listener checks its connection.
const pingInterval = 30 * time.Second

// Hub holds the listener and the watches.
type Hub struct {
	listener *pq.Listener
	log      *zap.Logger

	mu      sync.Mutex
	watches map[uuid.UUID]map[*Watch]struct{}
	closed  bool

	stop    chan struct{}
	stopped chan struct{} // run returned
	pinged  chan struct{} // ping returned
}

// Watch fires (its channel is closed) when its job may have become terminal,
// or when the hub closes.
type Watch struct {
	hub  *Hub
	id   uuid.UUID
	c    chan struct{}
	once sync.Once
}

// C is closed when the job should be read again.
func (w *Watch) C() <-chan struct{} { return w.c }

func (w *Watch) fire() { w.once.Do(func() { close(w.c) }) }

// Stop unregisters the watch. It is safe to call more than once and on a
// watch that fired.
func (w *Watch) Stop() {
	h := w.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if set := h.watches[w.id]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(h.watches, w.id)
		}
	}
}

// Start connects the listener to dsn and starts fanning out notifications.
// It fails if the LISTEN is not in place within timeout.
func Start(ctx context.Context, dsn string, timeout time.Duration, log *zap.Logger) (*Hub, error) {
	h := &Hub{log: log, watches: map[uuid.UUID]map[*Watch]struct{}{},
		stop: make(chan struct{}), stopped: make(chan struct{}), pinged: make(chan struct{})}
	h.listener = pq.NewListener(dsn, 50*time.Millisecond, 5*time.Second, h.event)
	listened := make(chan error, 1)
	go func() { listened <- h.listener.Listen(Channel) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-listened:
		if err != nil {
			_ = h.listener.Close()
			return nil, fmt.Errorf("listen for job notifications: %w", err)
		}
	case <-t.C:
		_ = h.listener.Close()
		return nil, errors.New("listen for job notifications: postgres did not answer in time")
	case <-ctx.Done():
		_ = h.listener.Close()
		return nil, fmt.Errorf("listen for job notifications: %w", ctx.Err())
	}
	go h.run()
	go h.ping()
	return h, nil
}

func (h *Hub) event(ev pq.ListenerEventType, err error) {
	switch ev {
	case pq.ListenerEventDisconnected:
		h.log.Warn("job notification listener lost its connection; reconnecting", zap.Error(err))
	case pq.ListenerEventConnectionAttemptFailed:
		h.log.Warn("job notification listener could not reconnect", zap.Error(err))
	case pq.ListenerEventReconnected:
		h.log.Info("job notification listener reconnected; waiters re-read their jobs")
	}
}

func (h *Hub) run() {
	defer close(h.stopped)
	for {
		select {
		case <-h.stop:
			return
		case n, ok := <-h.listener.Notify:
			switch {
			case !ok:
				return
			case n == nil:
				// The connection was re-established: what was notified
				// while it was down is lost.
				h.fireAll()
			default:
				if id, err := uuid.Parse(n.Extra); err == nil {
					h.fire(id)
				}
			}
		}
	}
}

// ping checks the idle listener's connection every pingInterval, so that a
// connection lost without a word is noticed (and re-established). It runs
// beside run, which must keep reading notifications while a ping waits for
// its answer on the same connection.
func (h *Hub) ping() {
	defer close(h.pinged)
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			_ = h.listener.Ping()
		}
	}
}

// Watch registers interest in job id. Call Stop when done with it.
func (h *Hub) Watch(id uuid.UUID) *Watch {
	w := &Watch{hub: h, id: id, c: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		w.fire()
		return w
	}
	set := h.watches[id]
	if set == nil {
		set = map[*Watch]struct{}{}
		h.watches[id] = set
	}
	set[w] = struct{}{}
	return w
}

// Closed reports whether the hub stopped; its watches fire at once.
func (h *Hub) Closed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// Waiting returns how many watches are registered.
func (h *Hub) Waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, set := range h.watches {
		n += len(set)
	}
	return n
}

func (h *Hub) fire(id uuid.UUID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watches[id] {
		w.fire()
	}
	delete(h.watches, id)
}

func (h *Hub) fireAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.watches {
		for w := range set {
			w.fire()
		}
	}
	clear(h.watches)
}

// Close stops listening and fires every watch, so that waiting requests
// answer with what they have (the server is shutting down).
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	h.fireAll()
	close(h.stop)
	err := h.listener.Close()
	<-h.stopped
	<-h.pinged
	return err
}
