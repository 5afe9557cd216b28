// Package liveness is the worker's heartbeat and the checks its /healthz
// answers from.
//
// The heartbeat proves to the reconciler that the worker is alive (a row in
// the workers table, refreshed every few seconds); the named checks cover
// the parts without which the worker takes jobs it cannot run (its queue
// server, its sandbox pool, its heartbeat).
package liveness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Heartbeat sends beats every Interval and remembers when one last
// succeeded.
type Heartbeat struct {
	// Beat records one heartbeat (store.Store.Heartbeat).
	Beat func(ctx context.Context) error
	// Interval between beats.
	Interval time.Duration
	// Lease is how long beats may fail before Check reports the worker
	// unhealthy: by then the reconciler may have taken its jobs.
	Lease time.Duration
	Log   *zap.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	mu      sync.Mutex
	lastOK  time.Time
	lastErr error
}

func (h *Heartbeat) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// Start sends the first beat and reports its error: a worker that cannot
// register must not take jobs, since nobody could tell whether it is alive.
func (h *Heartbeat) Start(ctx context.Context) error {
	return h.beat(ctx)
}

func (h *Heartbeat) beat(ctx context.Context) error {
	// A beat that takes longer than the interval is as good as lost.
	bctx, cancel := context.WithTimeout(ctx, max(h.Interval, time.Second))
	defer cancel()
	err := h.Beat(bctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.lastOK, h.lastErr = h.now(), nil
	} else {
		h.lastErr = err
	}
	return err
}

// Run beats every Interval until ctx ends.
func (h *Heartbeat) Run(ctx context.Context) {
	t := time.NewTicker(h.Interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := h.beat(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			if h.Log != nil {
				h.Log.Warn("heartbeat failed; the worker's jobs are taken over if this lasts longer than the lease",
					zap.Duration("lease", h.Lease), zap.Error(err))
			}
		case err == nil && failing:
			failing = false
			if h.Log != nil {
				h.Log.Info("heartbeat recorded again")
			}
		}
	}
}

// Check reports an error once no beat has succeeded for longer than Lease.
func (h *Heartbeat) Check() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	cause := h.lastErr
	if cause == nil {
		cause = errors.New("no beat sent")
	}
	if h.lastOK.IsZero() {
		return fmt.Errorf("no heartbeat recorded yet: %w", cause)
	}
	if age := h.now().Sub(h.lastOK); age > h.Lease {
		return fmt.Errorf("no heartbeat recorded for %s (lease %s): %w", age.Round(time.Millisecond), h.Lease, cause)
	}
	return nil
}

// Check is one named health check; Fn returns nil when healthy.
type Check struct {
	Name string
	Fn   func() error
}

// Handler answers 200 {"status":"ok"} when every check passes, and 503 with
// each failing check's name and error otherwise.
func Handler(checks []Check, log *zap.Logger) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		failed := map[string]string{}
		for _, c := range checks {
			if err := c.Fn(); err != nil {
				failed[c.Name] = err.Error()
			}
		}
		rw.Header().Set("Content-Type", "application/json")
		if len(failed) == 0 {
			_, _ = rw.Write([]byte(`{"status":"ok"}`))
			return
		}
		if log != nil {
			log.Warn("unhealthy", zap.Any("checks", failed))
		}
		rw.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(rw).Encode(map[string]any{"status": "unhealthy", "checks": failed})
	})
}
