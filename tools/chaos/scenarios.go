package main

import (
	"context"
	"fmt"
	"net/http"
	"syscall"
	"time"
)

// sizes returns (jobs, iterations per job) for the mode.
func (h *harness) sizes(full, short int) int {
	if h.opts.short {
		return short
	}
	return full
}

// kill -9 of a worker while jobs run; a second worker finishes them.
func (h *harness) workerKill9(ctx context.Context, s *stage) error {
	w1, err := s.startWorker("worker-1", 8)
	if err != nil {
		return err
	}
	n := h.sizes(300, 60)
	s.load(ctx, n, 16, 60_000_000, nil)
	if err := s.waitFor(ctx, 30*time.Second, func() bool {
		return s.count(ctx, `SELECT count(*) FROM jobs WHERE status = 'running'`) >= 4
	}); err != nil {
		return fmt.Errorf("no jobs running: %w", err)
	}
	w1.kill(syscall.SIGKILL)
	w1.wait(10 * time.Second)
	_, err = s.startWorker("worker-2", 8)
	return err
}

// FLUSHALL on Redis while jobs are being submitted and run.
func (h *harness) redisFlushall(ctx context.Context, s *stage) error {
	if _, err := s.startWorker("worker-1", 4); err != nil {
		return err
	}
	n := h.sizes(300, 60)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { s.load(ctx, n, 8, 20_000_000, stop); close(done) }()
	_ = s.waitFor(ctx, 30*time.Second, func() bool {
		return s.count(ctx, `SELECT count(*) FROM jobs`) >= n/3
	})
	if err := h.rdb.FlushAll(ctx).Err(); err != nil {
		return err
	}
	<-done
	return nil
}

// Postgres restarted under load: the API answers 503 meanwhile, then recovers.
func (h *harness) postgresRestart(ctx context.Context, s *stage) error {
	if _, err := s.startWorker("worker-1", 4); err != nil {
		return err
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { s.load(ctx, -1, 8, 20_000_000, stop); close(done) }()
	time.Sleep(time.Duration(h.sizes(3000, 1500)) * time.Millisecond)
	if err := h.pgCtl(ctx, "restart"); err != nil {
		close(stop)
		<-done
		return err
	}
	time.Sleep(time.Duration(h.sizes(3000, 1500)) * time.Millisecond)
	close(stop)
	<-done
	// The API serves again without a restart.
	return s.waitFor(ctx, 10*time.Second, func() bool {
		code, _, err := s.request(ctx, http.MethodGet, "/readyz", "", nil)
		return err == nil && code == http.StatusOK
	})
}

// The API killed while accepting a burst, then started again.
func (h *harness) apiKill9(ctx context.Context, s *stage) error {
	if _, err := s.startWorker("worker-1", 4); err != nil {
		return err
	}
	s.h.mu.Lock()
	api := s.h.procs[0]
	s.h.mu.Unlock()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { s.load(ctx, -1, 32, 10_000_000, stop); close(done) }()
	time.Sleep(time.Duration(h.sizes(1500, 800)) * time.Millisecond)
	api.kill(syscall.SIGKILL)
	api.wait(10 * time.Second)
	if _, err := s.startAPI(ctx, "api-2"); err != nil {
		close(stop)
		<-done
		return err
	}
	time.Sleep(time.Duration(h.sizes(1500, 800)) * time.Millisecond)
	close(stop)
	<-done
	return nil
}

// SIGTERM to a worker with long jobs running: they finish or are handed back.
func (h *harness) workerSigterm(ctx context.Context, s *stage) error {
	w1, err := s.startWorker("worker-1", 4, "WIZARD_WORKER_SHUTDOWN_TIMEOUT=2s")
	if err != nil {
		return err
	}
	// ≈ 2.3 s of CPU each (4 sharing 2 cores): still running when the
	// grace period ends. (The count is a 32-bit long in wasm32.)
	s.timeoutMS = 30000
	s.load(ctx, h.sizes(16, 8), 4, 2_000_000_000, nil)
	if err := s.waitFor(ctx, 30*time.Second, func() bool {
		return s.count(ctx, `SELECT count(*) FROM jobs WHERE status = 'running'`) >= 2
	}); err != nil {
		return fmt.Errorf("no jobs running: %w", err)
	}
	w1.kill(syscall.SIGTERM)
	if !w1.wait(30 * time.Second) {
		return fmt.Errorf("the worker did not stop within 30 s of SIGTERM")
	}
	_, err = s.startWorker("worker-2", 4)
	return err
}
