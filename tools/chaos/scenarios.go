package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
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

// kill -9 of a worker in the middle of long jobs, with the default settings
// (no shortened intervals or grace): the jobs run again on the other worker
// within 15 s, long before their 30 s timeout, and while the first worker
// was alive none was taken from it although they ran longer than the lease.
func (h *harness) workerKill9Long(ctx context.Context, s *stage) error {
	s.defaults()
	// Guests that loop until their timeout (30 s, the pro tier's maximum).
	code, body, err := s.request(ctx, http.MethodPost, "/v1/modules", "application/wasm", fixtures.Bytes(fixtures.Loop))
	if err != nil || (code != http.StatusCreated && code != http.StatusOK) {
		return fmt.Errorf("upload loop: %d %s: %w", code, body, err)
	}
	var mod struct{ ID string }
	_ = json.Unmarshal(body, &mod)
	s.moduleID, s.timeoutMS = mod.ID, 30000
	n := h.sizes(6, 4)
	w1, err := s.startWorker("worker-1", n)
	if err != nil {
		return err
	}
	s.load(ctx, n, n, 0, nil)
	if err := s.waitFor(ctx, 30*time.Second, func() bool {
		return s.count(ctx, `SELECT count(*) FROM jobs WHERE status = 'running'`) == n
	}); err != nil {
		return fmt.Errorf("jobs not all running on worker-1: %w", err)
	}
	var w1ID string
	if err := s.db.QueryRowContext(ctx, `SELECT worker_id FROM jobs WHERE status = 'running' LIMIT 1`).Scan(&w1ID); err != nil {
		return err
	}
	if _, err := s.startWorker("worker-2", n); err != nil {
		return err
	}
	if err := s.waitFor(ctx, 30*time.Second, func() bool {
		return s.count(ctx, `SELECT count(*) FROM workers WHERE stopped_at IS NULL`) == 2
	}); err != nil {
		return fmt.Errorf("worker-2 did not register: %w", err)
	}
	// Longer than the lease (10 s): a live worker's long jobs stay its own.
	time.Sleep(12 * time.Second)
	if taken := s.count(ctx, fmt.Sprintf(`SELECT count(*) FROM jobs WHERE status <> 'running' OR attempts <> 1 OR worker_id <> '%s'`, w1ID)); taken > 0 {
		return fmt.Errorf("%d jobs were taken from a live worker", taken)
	}
	var killedAt time.Time
	if err := s.db.QueryRowContext(ctx, `SELECT clock_timestamp()`).Scan(&killedAt); err != nil {
		return err
	}
	w1.kill(syscall.SIGKILL)
	w1.wait(10 * time.Second)
	// Each job's next attempt starts (started_at, on Postgres's clock) on
	// the other worker.
	if err := s.waitFor(ctx, time.Minute, func() bool {
		return s.count(ctx, fmt.Sprintf(`SELECT count(*) FROM jobs WHERE attempts >= 2 AND worker_id IS DISTINCT FROM '%s'`, w1ID)) == n
	}); err != nil {
		return fmt.Errorf("only %d of %d jobs running again after a minute", s.count(ctx, `SELECT count(*) FROM jobs WHERE attempts >= 2`), n)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT extract(epoch FROM started_at - $1) FROM jobs ORDER BY 1`, killedAt)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }()
	var secs []float64
	for rows.Next() {
		var v float64
		if err := rows.Scan(&v); err != nil {
			return err
		}
		secs = append(secs, v)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	p50, worst := secs[(len(secs)-1)/2], secs[len(secs)-1]
	s.measure = fmt.Sprintf("recovery after kill -9 (default settings, %d jobs with a 30 s timeout): p50 %.1f s, max %.1f s", len(secs), p50, worst)
	if worst > 15 {
		return fmt.Errorf("a job ran again only %.1f s after its worker was killed (at most 15 s)", worst)
	}
	return nil
}

// defaults drops the stage's shortened intervals and grace periods: workers
// started afterwards run with the built-in defaults.
func (s *stage) defaults() {
	tuned := []string{"WIZARD_WORKER_POLL_INTERVAL=", "WIZARD_COMPILE_TIMEOUT=", "WIZARD_RECONCILE_",
		"WIZARD_MAX_ATTEMPTS=", "WIZARD_WEBHOOK_SWEEP_AFTER="}
	env := s.env[:0:0]
	for _, kv := range s.env {
		keep := true
		for _, p := range tuned {
			if strings.HasPrefix(kv, p) {
				keep = false
			}
		}
		if keep {
			env = append(env, kv)
		}
	}
	s.env = env
}
