package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
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

// Redis stopped under load (its data lost), then started again.
func (h *harness) redisDown(ctx context.Context, s *stage) error {
	if _, err := s.startWorker("worker-1", 4); err != nil {
		return err
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { s.load(ctx, -1, 8, 20_000_000, stop); close(done) }()
	time.Sleep(time.Duration(h.sizes(2000, 1000)) * time.Millisecond)
	h.stopRedis()
	time.Sleep(time.Duration(h.sizes(3000, 1500)) * time.Millisecond)
	code, _, err := s.request(ctx, http.MethodGet, "/readyz", "", nil)
	if err != nil || code != http.StatusServiceUnavailable {
		close(stop)
		<-done
		return fmt.Errorf("/readyz answered %d with Redis down, want 503 (%w)", code, err)
	}
	if err := h.startRedis(ctx); err != nil {
		close(stop)
		<-done
		return err
	}
	time.Sleep(time.Duration(h.sizes(2000, 1000)) * time.Millisecond)
	close(stop)
	<-done
	return s.waitFor(ctx, 10*time.Second, func() bool {
		code, _, err := s.request(ctx, http.MethodGet, "/readyz", "", nil)
		return err == nil && code == http.StatusOK
	})
}

// kill -9 of a worker while it delivers webhooks to a slow receiver: every
// delivery still arrives.
func (h *harness) webhookWorkerKill9(ctx context.Context, s *stage) error {
	var mu sync.Mutex
	seen := map[string]int{}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Second) // slow: deliveries are in flight when the worker dies
		mu.Lock()
		seen[r.Header.Get("webhook-id")]++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close() }()
	s.webhookURL = "http://" + ln.Addr().String() + "/hook"

	w1, err := s.startWorker("worker-1", 4, "WIZARD_WEBHOOK_CONCURRENCY=4")
	if err != nil {
		return err
	}
	n := h.sizes(40, 12)
	s.load(ctx, n, 4, 1_000_000, nil)
	if err := s.waitFor(ctx, 30*time.Second, func() bool {
		return s.count(ctx, `SELECT count(*) FROM webhook_deliveries`) >= 4
	}); err != nil {
		return fmt.Errorf("no deliveries: %w", err)
	}
	time.Sleep(time.Second) // deliveries in flight, held by the slow receiver
	w1.kill(syscall.SIGKILL)
	w1.wait(10 * time.Second)
	if _, err := s.startWorker("worker-2", 4, "WIZARD_WEBHOOK_CONCURRENCY=8"); err != nil {
		return err
	}
	if err := s.awaitAll(ctx, 2*time.Minute); err != nil {
		return err
	}
	deadline := 3 * time.Minute
	err = s.waitFor(ctx, deadline, func() bool {
		return s.count(ctx, `SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'`) == 0
	})
	undelivered := s.count(ctx, `SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'`)
	total := s.count(ctx, `SELECT count(*) FROM webhook_deliveries`)
	mu.Lock()
	unique, dup := len(seen), 0
	for _, c := range seen {
		if c > 1 {
			dup++
		}
	}
	mu.Unlock()
	s.lostDeliveries = undelivered + max(0, total-unique)
	s.deliveryNote = fmt.Sprintf("webhooks: %d deliveries, %d arrived, %d arrived more than once (same webhook-id)", total, unique, dup)
	if err != nil {
		return fmt.Errorf("%d deliveries undelivered after %s", undelivered, deadline)
	}
	return nil
}
