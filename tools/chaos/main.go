// Command chaos is the fault-injection suite (`make chaos`). It starts the
// real binaries (bin/wasmwizard-api, bin/wasmwizard-worker) as separate
// processes against a private Postgres cluster and a private Redis server,
// both on loopback ports of their own, injects one fault per scenario under
// load, and reports for each: jobs accepted (201), finished, lost, finished
// twice, and jobs that exist although no client was told about them.
//
// Run from the repository root after `make build`:
//
//	go run ./tools/chaos            # full
//	go run ./tools/chaos -short     # the CI form
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/lib/pq" // Postgres driver
	"github.com/redis/go-redis/v9"
)

type options struct {
	short     bool
	only      string
	binDir    string
	fixture   string
	keepLogs  bool
	reportOut string
}

func main() {
	var o options
	flag.BoolVar(&o.short, "short", false, "fewer jobs and shorter loads (CI)")
	flag.StringVar(&o.only, "only", "", "comma-separated scenario names to run")
	flag.StringVar(&o.binDir, "bin", "bin", "directory holding wasmwizard-api and wasmwizard-worker")
	flag.StringVar(&o.fixture, "module", "shared/fixtures/wasm/cpuloop.wasm", "module the jobs run")
	flag.BoolVar(&o.keepLogs, "keep", false, "keep the scratch directory with every process's log")
	flag.StringVar(&o.reportOut, "report", "", "also write the results table (Markdown) to this file")
	flag.Parse()
	os.Exit(run(o))
}

func run(o options) int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	scratch, err := os.MkdirTemp("", "wasmwizard-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h := &harness{opts: o, dir: scratch}
	defer func() {
		h.stopAll()
		if o.keepLogs {
			fmt.Println("logs kept in", scratch)
		} else {
			_ = os.RemoveAll(scratch)
		}
	}()
	if err := h.startServices(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	scenarios := []scenario{
		{"worker-kill9", "kill -9 of a worker while jobs run; a second worker finishes them", h.workerKill9},
		{"redis-flushall", "FLUSHALL on Redis under load", h.redisFlushall},
		{"postgres-restart", "Postgres restarted under load", h.postgresRestart},
		{"api-kill9", "the API killed while accepting a burst", h.apiKill9},
		{"worker-sigterm", "SIGTERM to a worker with long jobs running", h.workerSigterm},
		{"redis-down", "Redis stopped under load, then started again (empty)", h.redisDown},
		{"webhook-worker-kill9", "kill -9 of a worker while it delivers webhooks", h.webhookWorkerKill9},
		{"worker-kill9-long", "kill -9 of a worker mid long jobs, default settings: running again elsewhere within 15 s", h.workerKill9Long},
	}
	var results []result
	failed := false
	for _, s := range scenarios {
		if o.only != "" && !strings.Contains(","+o.only+",", ","+s.name+",") {
			continue
		}
		fmt.Printf("== %s: %s\n", s.name, s.what)
		r := h.runScenario(ctx, s)
		results = append(results, r)
		fmt.Printf("   %s\n", r.line())
		if r.err != nil || r.lost > 0 || r.twice > 0 {
			failed = true
		}
	}
	table := report(results, o.short)
	fmt.Println()
	fmt.Print(table)
	if o.reportOut != "" {
		_ = os.WriteFile(o.reportOut, []byte(table), 0o600)
	}
	if failed {
		return 1
	}
	return 0
}

type scenario struct {
	name, what string
	fn         func(ctx context.Context, s *stage) error
}

type result struct {
	name                                    string
	accepted, finished, lost, twice, untold int
	untoldFinished                          int
	unavailable                             int
	maxFailMS                               int64
	seconds                                 float64
	note                                    string
	// measure is a scenario's own measurement, reported below the table.
	measure string
	err     error
}

func (r result) line() string {
	s := fmt.Sprintf("accepted %d, finished %d, lost %d, finished twice %d, untold %d (finished %d), 503s %d, slowest refusal %d ms, %.1fs",
		r.accepted, r.finished, r.lost, r.twice, r.untold, r.untoldFinished, r.unavailable, r.maxFailMS, r.seconds)
	if r.note != "" {
		s += "; " + r.note
	}
	if r.measure != "" {
		s += "; " + r.measure
	}
	if r.err != nil {
		s += "; ERROR: " + r.err.Error()
	}
	return s
}

func report(rs []result, short bool) string {
	var b strings.Builder
	mode := "full"
	if short {
		mode = "short"
	}
	fmt.Fprintf(&b, "| scenario (%s) | accepted | finished | lost | finished twice | untold (finished) | 503 answers | slowest refusal | time |\n", mode)
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		status := ""
		if r.err != nil {
			status = " (error: " + r.err.Error() + ")"
		}
		fmt.Fprintf(&b, "| %s%s | %d | %d | %d | %d | %d (%d) | %d | %d ms | %.0f s |\n", r.name, status,
			r.accepted, r.finished, r.lost, r.twice, r.untold, r.untoldFinished, r.unavailable, r.maxFailMS, r.seconds)
	}
	for _, r := range rs {
		if r.measure != "" {
			fmt.Fprintf(&b, "\n%s: %s\n", r.name, r.measure)
		}
	}
	return b.String()
}

// harness owns the private Postgres and Redis and the processes it starts.
type harness struct {
	opts      options
	dir       string
	pgBin     string
	pgData    string
	pgPort    int
	asPG      []string // prefix to run Postgres tools as its owner
	redisPort int
	redisCmd  *exec.Cmd
	rdb       *redis.Client
	module    []byte
	mu        sync.Mutex
	procs     []*proc
	scenarioN int
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func freePort() int {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

func (h *harness) startServices(ctx context.Context) error {
	var err error
	if h.module, err = os.ReadFile(h.opts.fixture); err != nil {
		return fmt.Errorf("module: %w (run from the repository root)", err)
	}
	for _, b := range []string{"wasmwizard-api", "wasmwizard-worker"} {
		if _, err := os.Stat(filepath.Join(h.opts.binDir, b)); err != nil {
			return fmt.Errorf("%s: %w (run make build)", b, err)
		}
	}
	// Postgres: a private cluster, so restarting it touches nothing else.
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	if len(dirs) == 0 {
		return errors.New("no PostgreSQL server binaries under /usr/lib/postgresql (run scripts/deps.sh)")
	}
	h.pgBin = dirs[len(dirs)-1]
	h.pgData = filepath.Join(h.dir, "pg")
	h.pgPort = freePort()
	if err := os.MkdirAll(h.pgData, 0o700); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		// Postgres refuses to run as root: run it as the postgres user.
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		_ = os.Chmod(h.dir, 0o755) //nolint:gosec // the postgres user must reach its data directory
		if err := os.Chown(h.pgData, uid, gid); err != nil {
			return err
		}
		h.asPG = []string{"runuser", "-u", "postgres", "--"}
	}
	if out, err := h.pgTool(ctx, "initdb", "-D", h.pgData, "-A", "trust", "-U", "postgres", "--no-sync"); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, out)
	}
	if err := h.pgCtl(ctx, "start"); err != nil {
		return err
	}
	// Redis: a private server without persistence.
	h.redisPort = freePort()
	h.rdb = redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", h.redisPort)})
	return h.startRedis(ctx)
}

// startRedis (re)starts the private Redis server on its port.
func (h *harness) startRedis(ctx context.Context) error {
	h.redisCmd = exec.Command("redis-server", "--port", strconv.Itoa(h.redisPort), "--bind", "127.0.0.1", //nolint:noctx // stopped explicitly
		"--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction")
	h.redisCmd.Stdout, h.redisCmd.Stderr = h.logFile("redis"), h.logFile("redis")
	if err := h.redisCmd.Start(); err != nil {
		return fmt.Errorf("redis-server: %w", err)
	}
	for i := 0; ; i++ {
		if h.rdb.Ping(ctx).Err() == nil {
			return nil
		}
		if i > 100 {
			return errors.New("redis-server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopRedis kills the private Redis server (its data is gone: no persistence).
func (h *harness) stopRedis() {
	if h.redisCmd != nil && h.redisCmd.Process != nil {
		_ = h.redisCmd.Process.Kill()
		_ = h.redisCmd.Wait()
	}
}

func (h *harness) pgTool(ctx context.Context, tool string, args ...string) ([]byte, error) {
	argv := append(append([]string{}, h.asPG...), filepath.Join(h.pgBin, tool))
	argv = append(argv, args...)
	return exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
}

func (h *harness) pgCtl(ctx context.Context, action string) error {
	args := []string{"-D", h.pgData, "-w", "-t", "60", "-l", filepath.Join(h.pgData, "server.log"),
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", h.pgPort, h.pgData)}
	if action == "restart" || action == "stop" {
		args = append(args, "-m", "fast")
	}
	out, err := h.pgTool(ctx, "pg_ctl", append([]string{action}, args...)...)
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %w: %s", action, err, out)
	}
	return nil
}

func (h *harness) logFile(name string) io.Writer {
	f, err := os.OpenFile(filepath.Join(h.dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600) //nolint:gosec // our own scratch directory
	if err != nil {
		return io.Discard
	}
	return f
}

func (h *harness) stopAll() {
	h.mu.Lock()
	procs := h.procs
	h.mu.Unlock()
	for _, p := range procs {
		p.kill(syscall.SIGKILL)
	}
	h.stopRedis()
	if h.pgData != "" {
		_ = h.pgCtl(context.Background(), "stop")
	}
}

func (p *proc) kill(sig syscall.Signal) {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

func (p *proc) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// stage is one scenario's world: its own database and a flushed Redis.
type stage struct {
	h        *harness
	name     string
	db       *sql.DB
	dbURL    string
	env      []string
	apiAddr  string
	key      string
	moduleID string
	client   *http.Client
	// timeoutMS is the jobs' timeout.
	timeoutMS int
	// webhookURL, when set, is given to every job.
	webhookURL string
	// lostDeliveries counts webhook deliveries that never arrived.
	lostDeliveries int
	deliveryNote   string
	// measure is what the scenario measured (reported with the results).
	measure string

	mu          sync.Mutex
	accepted    map[string]bool
	unavailable int
	maxFail     time.Duration
}

func (h *harness) runScenario(ctx context.Context, sc scenario) result {
	start := time.Now()
	r := result{name: sc.name}
	s, err := h.newStage(ctx, sc.name)
	if err == nil {
		err = sc.fn(ctx, s)
		if err == nil {
			err = s.awaitAll(ctx, 3*time.Minute)
		}
		r = s.tally(ctx, r)
	}
	h.mu.Lock()
	procs := h.procs
	h.procs = nil
	h.mu.Unlock()
	for _, p := range procs {
		p.kill(syscall.SIGKILL)
		p.wait(5 * time.Second)
	}
	if s != nil && s.db != nil {
		_ = s.db.Close()
	}
	r.err = err
	r.seconds = time.Since(start).Seconds()
	return r
}

func (h *harness) newStage(ctx context.Context, name string) (*stage, error) {
	h.scenarioN++
	dbName := fmt.Sprintf("chaos_%d", h.scenarioN)
	admin, err := sql.Open("postgres", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", h.pgPort))
	if err != nil {
		return nil, err
	}
	_, err = admin.ExecContext(ctx, "CREATE DATABASE "+dbName)
	_ = admin.Close()
	if err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	if err := h.rdb.FlushAll(ctx).Err(); err != nil {
		return nil, err
	}
	s := &stage{h: h, name: name, accepted: map[string]bool{},
		dbURL:  fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=2", h.pgPort, dbName),
		client: &http.Client{Timeout: 10 * time.Second}, timeoutMS: 5000}
	s.env = []string{
		"WIZARD_DATABASE_URL=" + s.dbURL,
		fmt.Sprintf("WIZARD_REDIS_URL=redis://127.0.0.1:%d/0", h.redisPort),
		"WIZARD_LOG_FORMAT=json", "WIZARD_LOG_LEVEL=info",
		"WIZARD_WORKER_POLL_INTERVAL=20ms",
		"WIZARD_COMPILE_TIMEOUT=5s",
		"WIZARD_RECONCILE_INTERVAL=1s", "WIZARD_RECONCILE_QUEUED_AFTER=3s", "WIZARD_RECONCILE_RUNNING_GRACE=15s",
		"WIZARD_MAX_ATTEMPTS=5",
		"WIZARD_WEBHOOK_ALLOW_PRIVATE=true", "WIZARD_WEBHOOK_ALLOW_HTTP=true", "WIZARD_WEBHOOK_SWEEP_AFTER=20s",
		"PATH=" + os.Getenv("PATH"),
	}
	if s.db, err = sql.Open("postgres", s.dbURL); err != nil {
		return nil, err
	}
	if out, err := s.command(ctx, "wasmwizard-api", "migrate"); err != nil {
		return nil, fmt.Errorf("migrate: %w: %s", err, out)
	}
	// The suite measures what faults do to accepted jobs, not the tiers'
	// rate limits (0 = unlimited).
	if _, err := s.db.ExecContext(ctx, `UPDATE tiers SET runs_per_minute = 0, runs_per_day = 0, max_concurrent_runs = 0, reads_per_minute = 0`); err != nil {
		return nil, fmt.Errorf("lift limits: %w", err)
	}
	out, err := s.command(ctx, "wasmwizard-api", "accounts", "create", "--name", "chaos", "--tier", "pro")
	if err != nil {
		return nil, fmt.Errorf("create account: %w: %s", err, out)
	}
	var acct struct{ ID string }
	if err := json.Unmarshal(out, &acct); err != nil {
		return nil, err
	}
	if out, err = s.command(ctx, "wasmwizard-api", "keys", "create", "--account", acct.ID); err != nil {
		return nil, fmt.Errorf("create key: %w: %s", err, out)
	}
	var key struct{ Key string }
	if err := json.Unmarshal(out, &key); err != nil {
		return nil, err
	}
	s.key = key.Key
	s.apiAddr = fmt.Sprintf("127.0.0.1:%d", freePort())
	if _, err := s.startAPI(ctx, "api"); err != nil {
		return nil, err
	}
	res, body, err := s.request(ctx, http.MethodPost, "/v1/modules", "application/wasm", h.module)
	if err != nil || (res != http.StatusCreated && res != http.StatusOK) {
		return nil, fmt.Errorf("upload: %d %s: %w", res, body, err)
	}
	var mod struct{ ID string }
	_ = json.Unmarshal(body, &mod)
	s.moduleID = mod.ID
	return s, nil
}

func (s *stage) command(ctx context.Context, bin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.h.opts.binDir, bin), args...)
	cmd.Env = s.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return append(out, stderr.Bytes()...), err
	}
	return out, nil
}

func (s *stage) start(name, bin string, extra ...string) (*proc, error) {
	cmd := exec.Command(filepath.Join(s.h.opts.binDir, bin), "serve") //nolint:noctx // killed explicitly
	cmd.Env = append(append([]string{}, s.env...), extra...)
	logw := s.h.logFile(s.name + "-" + name)
	cmd.Stdout, cmd.Stderr = logw, logw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	s.h.mu.Lock()
	s.h.procs = append(s.h.procs, p)
	s.h.mu.Unlock()
	return p, nil
}

func (s *stage) startAPI(ctx context.Context, name string) (*proc, error) {
	p, err := s.start(name, "wasmwizard-api", "WIZARD_HTTP_ADDR="+s.apiAddr, "WIZARD_SHUTDOWN_TIMEOUT=5s")
	if err != nil {
		return nil, err
	}
	for i := 0; i < 200; i++ {
		if code, _, err := s.request(ctx, http.MethodGet, "/readyz", "", nil); err == nil && code == http.StatusOK {
			return p, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, errors.New("the API did not become ready")
}

func (s *stage) startWorker(name string, concurrency int, extra ...string) (*proc, error) {
	env := append([]string{
		fmt.Sprintf("WIZARD_WORKER_HTTP_ADDR=127.0.0.1:%d", freePort()),
		"WIZARD_WORKER_CONCURRENCY=" + strconv.Itoa(concurrency),
		"WIZARD_DATA_DIR=" + filepath.Join(s.h.dir, s.name+"-"+name),
	}, extra...)
	return s.start(name, "wasmwizard-worker", env...)
}

func (s *stage) request(ctx context.Context, method, path, ct string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+s.apiAddr+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	res, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// submit sends one job and records what the client was told.
func (s *stage) submit(ctx context.Context, iterations int) {
	req := map[string]any{"module_id": s.moduleID, "args": []string{strconv.Itoa(iterations)}, "timeout_ms": s.timeoutMS}
	if s.webhookURL != "" {
		req["webhook_url"] = s.webhookURL
	}
	body, _ := json.Marshal(req)
	start := time.Now()
	code, resp, err := s.request(ctx, http.MethodPost, "/v1/jobs", "application/json", body)
	elapsed := time.Since(start)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && code == http.StatusCreated {
		var j struct{ ID string }
		if json.Unmarshal(resp, &j) == nil && j.ID != "" {
			s.accepted[j.ID] = true
		}
		return
	}
	if code == http.StatusServiceUnavailable {
		s.unavailable++
	}
	if elapsed > s.maxFail {
		s.maxFail = elapsed
	}
}

// load submits n jobs from conc goroutines (n < 0: until stop closes).
func (s *stage) load(ctx context.Context, n, conc, iterations int, stop <-chan struct{}) {
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if n >= 0 && sent.Add(1) > int64(n) {
					return
				}
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				s.submit(ctx, iterations)
			}
		}()
	}
	wg.Wait()
}

func (s *stage) count(ctx context.Context, query string) int {
	var n int
	_ = s.db.QueryRowContext(ctx, query).Scan(&n)
	return n
}

func (s *stage) waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("timed out waiting")
}

// awaitAll waits until every job in the database is terminal.
func (s *stage) awaitAll(ctx context.Context, d time.Duration) error {
	err := s.waitFor(ctx, d, func() bool {
		return s.count(ctx, `SELECT count(*) FROM jobs WHERE status IN ('queued','running')`) == 0
	})
	if err != nil {
		return fmt.Errorf("jobs still unfinished after %s: %d", d,
			s.count(ctx, `SELECT count(*) FROM jobs WHERE status IN ('queued','running')`))
	}
	return nil
}

func (s *stage) tally(ctx context.Context, r result) result {
	rows, err := s.db.QueryContext(ctx, `
		SELECT j.id::text, j.status IN ('succeeded','failed','timed_out','cancelled'),
			(SELECT count(*) FROM audit_events e WHERE e.job_id = j.id AND e.action = 'job.finished')
		FROM jobs j`)
	if err != nil {
		r.note = "tally: " + err.Error()
		return r
	}
	defer func() { _ = rows.Close() }()
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	failedGuest := 0
	for rows.Next() {
		var id string
		var done bool
		var finishedEvents int
		if rows.Scan(&id, &done, &finishedEvents) != nil {
			continue
		}
		seen[id] = true
		if finishedEvents > 1 {
			r.twice++
		}
		if s.accepted[id] {
			if done {
				r.finished++
			}
		} else {
			r.untold++
			if done {
				r.untoldFinished++
			}
		}
	}
	_ = rows.Err()
	for id := range s.accepted {
		if !seen[id] {
			r.lost++ // told 201, not in the database
		}
	}
	r.accepted = len(s.accepted)
	r.lost += s.lostDeliveries
	if s.deliveryNote != "" {
		r.note = strings.TrimPrefix(r.note+"; "+s.deliveryNote, "; ")
	}
	r.lost += r.accepted - r.finished - (r.accepted - len(intersect(s.accepted, seen)))
	r.unavailable = s.unavailable
	r.measure = s.measure
	r.maxFailMS = s.maxFail.Milliseconds()
	failedGuest = s.count(ctx, `SELECT count(*) FROM jobs WHERE status <> 'succeeded'`)
	if failedGuest > 0 {
		r.note = fmt.Sprintf("%d jobs ended other than succeeded", failedGuest)
	}
	if n := s.count(ctx, `SELECT count(*) FROM audit_events WHERE action = 'job.requeued'`); n > 0 {
		r.note = strings.TrimPrefix(r.note+fmt.Sprintf("; %d attempts handed back or recovered", n), "; ")
	}
	return r
}

func intersect(a, b map[string]bool) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		if b[k] {
			out[k] = true
		}
	}
	return out
}
