// Command bench is the platform's benchmark harness (`make bench`,
// `make bench-quick`). On the machine it runs on it measures the floors —
// asynq with a no-op handler, Postgres doing one job's insert and two
// updates, uninterrupted wazero instantiate+run — and the platform itself,
// run as the project's own binaries (bin/wasmwizard-api, bin/wasmwizard-worker)
// against the local Postgres and Redis (its own database and queue
// namespace), driven by a Go load generator; it prints one table with each
// platform figure's ratio to its floor and rewrites the table in
// docs/BENCHMARKS.md.
//
//	go run ./tools/bench [-quick] [-write=false]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // Postgres driver

	"github.com/wasmwizard/wasmwizard/migrations"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
	"github.com/wasmwizard/wasmwizard/worker/executor"
	"github.com/wasmwizard/wasmwizard/worker/sandbox"
)

func main() {
	// The harness doubles as the sandbox child for the overhead measurement.
	if sandbox.IsChild() {
		os.Exit(sandbox.ChildMain(os.Stdin, os.Stdout, os.Stderr))
	}
	quick := flag.Bool("quick", false, "smaller counts (under 2 minutes)")
	write := flag.Bool("write", true, "rewrite the table in docs/BENCHMARKS.md")
	profiles := flag.String("profiles", "", "save CPU profiles of the API and worker under end-to-end load in this directory")
	profileFor := flag.Duration("profile-for", 0, "how long the CPU profiles run from the start of the end-to-end load (default 5s, quick 2s)")
	only := flag.String("only", "", "comma-separated steps to run (floors,idle,get,submit,e2e,fairness,large,live,sandbox); default all")
	flag.Parse()
	if *only != "" {
		*write = false // a partial run does not replace the table
	}
	b := &bench{quick: *quick, profiles: *profiles, only: map[string]bool{}, profileFor: *profileFor}
	if b.profileFor == 0 {
		b.profileFor = time.Duration(b.n(5, 2)) * time.Second
	}
	for _, step := range strings.Split(*only, ",") {
		if step != "" {
			b.only[step] = true
		}
	}
	if b.profiles != "" {
		if err := os.MkdirAll(b.profiles, 0o750); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	if err := b.run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		b.cleanup()
		os.Exit(1)
	}
	b.cleanup()
	table := b.table()
	fmt.Print(table)
	if *write {
		if err := writeDoc("docs/BENCHMARKS.md", table); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Println("written to docs/BENCHMARKS.md")
	}
}

type row struct {
	name, value, floor, ratio, target string
}

type bench struct {
	quick  bool
	rows   []row
	dbName string
	dbURL  string
	ns     string
	procs  []*exec.Cmd
	api    string
	key    string
	// limitedKey is a key of an account of the tier "limited".
	limitedKey string
	// env is the platform's environment (for the command line).
	env      []string
	scratch  string
	started  time.Time
	floorPG  float64
	floorAQ  float64
	floorWZ  time.Duration
	platform struct{ conc int }

	pprofAPI, pprofWorker string
	workerHTTP            string
	// submitted counts the jobs the API accepted (drain waits for them).
	submitted atomic.Int64
	// Profiles is where CPU profiles of the end-to-end run are saved.
	profiles   string
	profileFor time.Duration
	// only names the steps to run; empty runs all.
	only map[string]bool
}

func (b *bench) wants(step string) bool { return len(b.only) == 0 || b.only[step] }

func (b *bench) n(full, quick int) int {
	if b.quick {
		return quick
	}
	return full
}

func (b *bench) add(r row) {
	b.rows = append(b.rows, r)
	fmt.Printf("  %-52s %s\n", r.name, r.value)
}

func (b *bench) run() error {
	ctx := context.Background()
	b.started = time.Now()
	var err error
	if b.scratch, err = os.MkdirTemp("", "wasmwizard-bench-"); err != nil {
		return err
	}
	if err := b.setupDB(ctx); err != nil {
		return err
	}
	if b.wants("floors") {
		fmt.Println("floors:")
		for _, floor := range []func(context.Context) error{b.floorPostgres, b.floorAsynq, b.floorWazero} {
			if err := floor(ctx); err != nil {
				return err
			}
		}
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{{"idle", b.idleWait}, {"get", b.getLatency}, {"submit", b.submitThroughput}, {"e2e", b.endToEnd}, {"fairness", b.fairness}, {"large", b.largeModule}, {"live", b.liveLatency}}
	fmt.Println("platform:")
	started := false
	for _, step := range steps {
		if !b.wants(step.name) {
			continue
		}
		if !started {
			if err := b.startPlatform(ctx); err != nil {
				return err
			}
			started = true
		}
		if err := step.fn(ctx); err != nil {
			return err
		}
	}
	if !b.wants("sandbox") {
		return nil
	}
	return b.sandboxFigures(ctx)
}

func (b *bench) setupDB(ctx context.Context) error {
	b.dbName = fmt.Sprintf("ww_bench_%d", time.Now().Unix())
	admin, err := sqlx.Open("postgres", testenv.DatabaseURL())
	if err != nil {
		return err
	}
	defer func() { _ = admin.Close() }()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+b.dbName); err != nil {
		return fmt.Errorf("create database (run scripts/deps.sh): %w", err)
	}
	b.dbURL = strings.Replace(testenv.DatabaseURL(), "/postgres?", "/"+b.dbName+"?", 1)
	db, err := sqlx.Open("postgres", b.dbURL)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	if _, err := migrations.Up(ctx, db.DB); err != nil {
		return err
	}
	// The benchmark measures the platform, not the tiers' limits. The tier
	// "limited" is pro with its concurrency limit (high enough that the
	// load never reaches it): submits to it pay for counting the limit.
	if _, err = db.ExecContext(ctx, `
		INSERT INTO tiers (name, runs_per_minute, runs_per_day, max_concurrent_runs,
			default_timeout_ms, max_timeout_ms, default_memory_mb, max_memory_mb,
			default_output_bytes, max_output_bytes, max_module_bytes, queue_weight, reads_per_minute)
		SELECT 'limited', 0, 0, $1, default_timeout_ms, max_timeout_ms, default_memory_mb, max_memory_mb,
			default_output_bytes, max_output_bytes, max_module_bytes, queue_weight, 0
		FROM tiers WHERE name = 'pro'`, limitedConcurrency); err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, `UPDATE tiers SET runs_per_minute = 0, runs_per_day = 0, max_concurrent_runs = 0, reads_per_minute = 0
		WHERE name <> 'limited'`)
	b.ns = "bench-" + uuid.NewString()[:8] + ":"
	return err
}

func (b *bench) cleanup() {
	for _, p := range b.procs {
		_ = p.Process.Kill()
		_ = p.Wait()
	}
	if b.dbName != "" {
		if admin, err := sqlx.Open("postgres", testenv.DatabaseURL()); err == nil {
			_, _ = admin.Exec("DROP DATABASE IF EXISTS " + b.dbName + " WITH (FORCE)")
			_ = admin.Close()
		}
	}
	if b.scratch != "" {
		_ = os.RemoveAll(b.scratch)
	}
}

// floorPostgres: the floor is what the same Postgres does for one job at its
// barest — an insert of a job row and two updates (claim, finish), each its
// own commit — from the connection count the platform uses, on a table with
// only a primary key. The store's own lifecycle (the same three commits
// with audit rows, the platform's indexes and triggers) is measured beside
// it, for information: it is the platform's cost, not a floor.
func (b *bench) floorPostgres(ctx context.Context) error {
	db, err := sqlx.Open("postgres", b.dbURL)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	const conc = 8
	db.SetMaxOpenConns(conc)
	db.SetMaxIdleConns(conc)
	if _, err := db.ExecContext(ctx, `CREATE TABLE bench_floor_jobs (
		id uuid PRIMARY KEY, account_id uuid NOT NULL, module_id uuid NOT NULL, status text NOT NULL,
		request jsonb NOT NULL, stdout bytea, exit_code int, created_at timestamptz NOT NULL DEFAULT now(),
		started_at timestamptz, finished_at timestamptz)`); err != nil {
		return err
	}
	total := b.n(6000, 1500)
	account, module := uuid.New(), uuid.New()
	var next atomic.Int64
	start := time.Now()
	err = parallel(conc, func() error {
		for next.Add(1) <= int64(total) {
			id, _ := uuid.NewV7()
			if _, err := db.ExecContext(ctx, `INSERT INTO bench_floor_jobs (id, account_id, module_id, status, request)
				VALUES ($1, $2, $3, 'queued', '{"function":"_start"}')`, id, account, module); err != nil {
				return err
			}
			if _, err := db.ExecContext(ctx, `UPDATE bench_floor_jobs SET status = 'running', started_at = now()
				WHERE id = $1 AND status = 'queued'`, id); err != nil {
				return err
			}
			if _, err := db.ExecContext(ctx, `UPDATE bench_floor_jobs SET status = 'succeeded', finished_at = now(), exit_code = 0,
				stdout = $2 WHERE id = $1 AND status = 'running'`, id, []byte("hello, world\n")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.floorPG = float64(total) / time.Since(start).Seconds()
	b.add(row{name: fmt.Sprintf("Postgres job lifecycle (insert + 2 updates, %d conns)", conc), value: fmt.Sprintf("%.0f jobs/s", b.floorPG)})
	return b.storeLifecycle(ctx, conc)
}

// storeLifecycle: the same three commits through the platform's store.
func (b *bench) storeLifecycle(ctx context.Context, conc int) error {
	st, err := store.Open(ctx, b.dbURL, conc)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	a, err := st.CreateAccount(ctx, store.Actor{Name: "bench"}, "floor", "pro")
	if err != nil {
		return err
	}
	m, _, err := st.CreateModule(ctx, store.Actor{Name: "bench"}, a.ID, "hello", fixtures.Bytes(fixtures.Hello), emptyMeta)
	if err != nil {
		return err
	}
	total := b.n(6000, 1500)
	var next atomic.Int64
	start := time.Now()
	err = parallel(conc, func() error {
		for next.Add(1) <= int64(total) {
			j, err := st.CreateJob(ctx, store.Actor{Name: "bench"}, store.Job{AccountID: a.ID, ModuleID: m.ID,
				ModuleSHA256: m.SHA256, Queue: "floor", Function: "_start", TimeoutMS: 1000, MemoryLimitMB: 16, MaxOutputBytes: 100})
			if err != nil {
				return err
			}
			if _, err := st.ClaimJob(ctx, j.ID, "floor"); err != nil {
				return err
			}
			zero := 0
			if _, err := st.FinishJob(ctx, j.ID, 1, "floor", store.Result{Status: store.StatusSucceeded, ExitCode: &zero, Stdout: []byte("hello, world\n")}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	rate := float64(total) / time.Since(start).Seconds()
	b.add(row{name: "  the store's lifecycle (same commits + audit rows, indexes, triggers)", value: fmt.Sprintf("%.0f jobs/s", rate),
		floor: fmt.Sprintf("%.0f jobs/s (Postgres)", b.floorPG), ratio: fmt.Sprintf("%.0f %%", 100*rate/b.floorPG)})
	return nil
}

// floorAsynq: tasks through asynq with a handler that does nothing.
func (b *bench) floorAsynq(ctx context.Context) error {
	opt, err := asynq.ParseRedisURI(testenv.RedisURL())
	if err != nil {
		return err
	}
	queue := b.ns + "floor"
	total := b.n(20000, 4000)
	var done atomic.Int64
	finished := make(chan struct{})
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 8, Queues: map[string]int{queue: 1}, LogLevel: asynq.ErrorLevel,
		TaskCheckInterval: 10 * time.Millisecond})
	mux := asynq.NewServeMux()
	mux.HandleFunc("noop", func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(total) {
			close(finished)
		}
		return nil
	})
	if err := srv.Start(mux); err != nil {
		return err
	}
	defer srv.Shutdown()
	client := asynq.NewClient(opt)
	defer func() { _ = client.Close() }()
	start := time.Now()
	var next atomic.Int64
	if err := parallel(8, func() error {
		for next.Add(1) <= int64(total) {
			if _, err := client.EnqueueContext(ctx, asynq.NewTask("noop", nil), asynq.Queue(queue)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	select {
	case <-finished:
	case <-time.After(5 * time.Minute):
		return errors.New("asynq floor did not finish")
	}
	b.floorAQ = float64(total) / time.Since(start).Seconds()
	b.add(row{name: "asynq, no-op handler (enqueue + process)", value: fmt.Sprintf("%.0f tasks/s", b.floorAQ)})
	return nil
}

// floorWazero: instantiate + run + close of the hello-world module, compiled
// once, without interruption checks.
func (b *bench) floorWazero(ctx context.Context) error {
	engine, err := executor.NewEngine(ctx, executor.EngineConfig{})
	if err != nil {
		return err
	}
	defer func() { _ = engine.Close(ctx) }()
	req := executor.Request{Function: "_start", MemoryLimitMB: 16, MaxOutputBytes: 1 << 10}
	cm, err := engine.Compile(ctx, "hello", func() ([]byte, error) { return fixtures.Bytes(fixtures.Hello), nil })
	if err != nil {
		return err
	}
	n := b.n(5000, 1000)
	start := time.Now()
	for range n {
		engine.Run(ctx, cm, req)
	}
	b.floorWZ = time.Since(start) / time.Duration(n)
	b.add(row{name: "wazero instantiate + run + close, hello (C)", value: fmt.Sprintf("%.0f µs", us(b.floorWZ))})
	return nil
}

func (b *bench) startPlatform(ctx context.Context) error {
	env := []string{
		"WIZARD_DATABASE_URL=" + b.dbURL,
		"WIZARD_REDIS_URL=" + testenv.RedisURL(),
		"WIZARD_QUEUE_NAMESPACE=" + b.ns,
		"WIZARD_LOG_LEVEL=warn",
		"PATH=" + os.Getenv("PATH"),
	}
	b.env = env
	var err error
	if b.key, err = b.newAccount(ctx, env, "bench", "pro"); err != nil {
		return err
	}
	if b.limitedKey, err = b.newAccount(ctx, env, "bench-limited", "limited"); err != nil {
		return err
	}
	b.api = "127.0.0.1:" + strconv.Itoa(freePort())
	b.platform.conc = runtime.NumCPU() * 2
	b.pprofAPI = "127.0.0.1:" + strconv.Itoa(freePort())
	b.pprofWorker = "127.0.0.1:" + strconv.Itoa(freePort())
	if err := b.start(env, "bin/wasmwizard-api", "serve", "WIZARD_HTTP_ADDR="+b.api, "WIZARD_PPROF_ADDR="+b.pprofAPI); err != nil {
		return err
	}
	b.workerHTTP = "127.0.0.1:" + strconv.Itoa(freePort())
	if err := b.start(env, "bin/wasmwizard-worker", "serve", "WIZARD_WORKER_HTTP_ADDR="+b.workerHTTP,
		"WIZARD_WORKER_CONCURRENCY="+strconv.Itoa(b.platform.conc), "WIZARD_DATA_DIR="+filepath.Join(b.scratch, "worker"),
		"WIZARD_DB_MAX_OPEN_CONNS=16", "WIZARD_PPROF_ADDR="+b.pprofWorker); err != nil {
		return err
	}
	for range 200 {
		if code, _, err := b.do(ctx, http.MethodGet, "/readyz", "", nil); err == nil && code == 200 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("the API did not become ready")
}

// newAccount creates an account of tier through the API's command line and
// returns a key of it.
func (b *bench) newAccount(ctx context.Context, env []string, name, tier string) (string, error) {
	out, err := command(ctx, env, "bin/wasmwizard-api", "accounts", "create", "--name", name, "--tier", tier)
	if err != nil {
		return "", fmt.Errorf("%w: %s (run make build)", err, out)
	}
	var acct struct{ ID string }
	_ = json.Unmarshal(out, &acct)
	if out, err = command(ctx, env, "bin/wasmwizard-api", "keys", "create", "--account", acct.ID); err != nil {
		return "", fmt.Errorf("%w: %s", err, out)
	}
	var key struct{ Key string }
	_ = json.Unmarshal(out, &key)
	return key.Key, nil
}

func (b *bench) start(env []string, bin, arg string, extra ...string) error {
	cmd := exec.Command(bin, arg) //nolint:noctx // killed at cleanup
	cmd.Env = append(append([]string{}, env...), extra...)
	logf, err := os.Create(filepath.Join(b.scratch, filepath.Base(bin)+".log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	b.procs = append(b.procs, cmd)
	return nil
}

var client = &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 512}}

func (b *bench) do(ctx context.Context, method, path, ct string, body []byte) (int, []byte, error) {
	return b.doAs(ctx, b.key, method, path, ct, body)
}

func (b *bench) doAs(ctx context.Context, key, method, path, ct string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+b.api+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = res.Body.Close() }()
	out, err := io.ReadAll(res.Body)
	return res.StatusCode, out, err
}

func (b *bench) upload(ctx context.Context, fixture string) (string, error) {
	return b.uploadAs(ctx, b.key, fixture)
}

func (b *bench) uploadAs(ctx context.Context, key, fixture string) (string, error) {
	code, out, err := b.doAs(ctx, key, http.MethodPost, "/v1/modules?name="+fixture, "application/wasm", fixtures.Bytes(fixture))
	if err != nil || (code != 201 && code != 200) {
		return "", fmt.Errorf("upload %s: %d %s %w", fixture, code, out, err)
	}
	var m struct{ ID string }
	_ = json.Unmarshal(out, &m)
	return m.ID, nil
}

func (b *bench) submit(ctx context.Context, module, query string) (map[string]any, time.Duration, error) {
	return b.submitAs(ctx, b.key, module, query)
}

func (b *bench) submitAs(ctx context.Context, key, module, query string) (map[string]any, time.Duration, error) {
	body, _ := json.Marshal(map[string]any{"module_id": module})
	start := time.Now()
	code, out, err := b.doAs(ctx, key, http.MethodPost, "/v1/jobs"+query, "application/json", body)
	d := time.Since(start)
	if err != nil || code != 201 {
		return nil, d, fmt.Errorf("submit: %d %s %w", code, out, err)
	}
	b.submitted.Add(1)
	var j map[string]any
	err = json.Unmarshal(out, &j)
	return j, d, err
}

// idleWait: POST /v1/jobs?wait=5s for hello on an idle platform, one at a
// time, after a pause.
func (b *bench) idleWait(ctx context.Context) error {
	hello, err := b.upload(ctx, fixtures.Hello)
	if err != nil {
		return err
	}
	_, _, _ = b.submit(ctx, hello, "?wait=5s") // warm
	var lat []time.Duration
	for range b.n(200, 50) {
		time.Sleep(20 * time.Millisecond)
		j, d, err := b.submit(ctx, hello, "?wait=5s")
		if err != nil {
			return err
		}
		if j["status"] != "succeeded" {
			return fmt.Errorf("idle wait: job %v", j["status"])
		}
		lat = append(lat, d)
	}
	p50, p99 := pct(lat, 50), pct(lat, 99)
	b.add(row{name: "idle submit-with-wait (hello) p50 / p99", value: fmt.Sprintf("%.1f / %.1f ms", ms(p50), ms(p99)),
		floor: fmt.Sprintf("%.0f µs (wazero)", us(b.floorWZ)), ratio: fmt.Sprintf("%.0f× / %.0f×", ratio(p50, b.floorWZ), ratio(p99, b.floorWZ)),
		target: "≤ 10 / 30 ms"})
	return nil
}

// liveLatency: how long a guest's write takes to reach a client of GET
// /v1/jobs/{id}/stream on an idle platform. The ticker fixture writes the
// wall clock 100 times, 20 ms apart; each line's delay is the time its
// event arrives minus the time it holds (one machine, one clock).
func (b *bench) liveLatency(ctx context.Context) error {
	ticker, err := b.upload(ctx, fixtures.Ticker)
	if err != nil {
		return err
	}
	var lat []time.Duration
	for range b.n(10, 3) {
		j, _, err := b.submit(ctx, ticker, "")
		if err != nil {
			return err
		}
		d, err := b.streamDelays(ctx, j["id"].(string))
		if err != nil {
			return err
		}
		lat = append(lat, d...)
	}
	if len(lat) == 0 {
		return errors.New("live: no output arrived")
	}
	p50, p99 := pct(lat, 50), pct(lat, 99)
	b.add(row{name: fmt.Sprintf("live output: guest write → SSE event p50 / p99 (%d writes)", len(lat)),
		value: fmt.Sprintf("%.1f / %.1f ms", ms(p50), ms(p99)), floor: "—", ratio: "—", target: "p99 ≤ 100 ms"})
	return nil
}

// streamDelays reads job id's stream to its end and returns each stdout
// line's delay.
func (b *bench) streamDelays(ctx context.Context, id string) ([]time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.api+"/v1/jobs/"+id+"/stream", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+b.key)
	res, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("stream: %d", res.StatusCode)
	}
	var delays []time.Duration
	var partial string // a line split between events
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		now := time.Now()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
			if event == "end" {
				return delays, nil
			}
		case strings.HasPrefix(line, "data: ") && event == "stdout":
			var d struct{ Text string }
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d); err != nil {
				return nil, err
			}
			text := partial + d.Text
			lines := strings.Split(text, "\n")
			partial = lines[len(lines)-1]
			for _, l := range lines[:len(lines)-1] {
				ns, err := strconv.ParseInt(l, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("live: ticker line %q: %w", l, err)
				}
				delays = append(delays, now.Sub(time.Unix(0, ns)))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("live: the stream ended without its end event")
}

// getLatency: GET /v1/jobs/{id} at a fixed 1,000 requests/s (open loop).
func (b *bench) getLatency(ctx context.Context) error {
	hello, err := b.upload(ctx, fixtures.Hello)
	if err != nil {
		return err
	}
	j, _, err := b.submit(ctx, hello, "?wait=5s")
	if err != nil {
		return err
	}
	path := "/v1/jobs/" + j["id"].(string)
	rate := 1000
	var mu sync.Mutex
	var lat []time.Duration
	var failures atomic.Int64
	fire := func(dur time.Duration, record bool) {
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		end := time.Now().Add(dur)
		for time.Now().Before(end) {
			<-tick.C
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				code, _, err := b.do(ctx, http.MethodGet, path, "", nil)
				d := time.Since(start)
				if !record {
					return
				}
				if err != nil || code != 200 {
					failures.Add(1)
					return
				}
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	// A second at the same rate first, unrecorded: the API's connection
	// pools (clients, Postgres) grow to what the rate needs.
	fire(time.Second, false)
	fire(time.Duration(b.n(10, 3))*time.Second, true)
	b.add(row{name: fmt.Sprintf("GET /v1/jobs/{id} at %d req/s p50 / p99", rate),
		value: fmt.Sprintf("%.2f / %.2f ms (%d failed)", ms(pct(lat, 50)), ms(pct(lat, 99)), failures.Load()), target: "p99 ≤ 5 ms"})
	return nil
}

// submitThroughput: accepted jobs per second from 32 concurrent clients of
// one account, on a tier without a concurrency limit and on one with
// (alternating, so that both see the same machine and table sizes).
func (b *bench) submitThroughput(ctx context.Context) error {
	hello, err := b.upload(ctx, fixtures.Hello)
	if err != nil {
		return err
	}
	limitedHello, err := b.uploadAs(ctx, b.limitedKey, fixtures.Hello)
	if err != nil {
		return err
	}
	dur := time.Duration(b.n(5, 2)) * time.Second
	measure := func(key, module string) float64 {
		var accepted atomic.Int64
		end := time.Now().Add(dur)
		start := time.Now()
		_ = parallel(32, func() error {
			for time.Now().Before(end) {
				if _, _, err := b.submitAs(ctx, key, module, ""); err == nil {
					accepted.Add(1)
				}
			}
			return nil
		})
		return float64(accepted.Load()) / time.Since(start).Seconds()
	}
	var unlimited, limited float64
	for range 2 {
		unlimited += measure(b.key, hello) / 2
		if err := b.drain(ctx, 2*time.Minute); err != nil {
			return err
		}
		limited += measure(b.limitedKey, limitedHello) / 2
		if err := b.drain(ctx, 2*time.Minute); err != nil {
			return err
		}
	}
	b.add(row{name: "submit throughput (accepted, 32 clients)", value: fmt.Sprintf("%.0f jobs/s", unlimited),
		floor: fmt.Sprintf("%.0f jobs/s (Postgres)", b.floorPG), ratio: fmt.Sprintf("%.0f %%", 100*unlimited/b.floorPG)})
	b.add(row{name: fmt.Sprintf("  same, one account with a concurrency limit (%d)", limitedConcurrency),
		value: fmt.Sprintf("%.0f jobs/s", limited), ratio: fmt.Sprintf("%.2f× unlimited", limited/unlimited), target: "≥ 0.9×"})
	return nil
}

// limitedConcurrency is the tier "limited"'s max_concurrent_runs: more than
// the submit step ever has queued, so that every submit is admitted and
// pays for the count.
const limitedConcurrency = 100_000

// endToEnd: hello jobs submitted by 32 clients and run to the end: finished
// jobs per second over the whole run.
func (b *bench) endToEnd(ctx context.Context) error {
	hello, err := b.upload(ctx, fixtures.Hello)
	if err != nil {
		return err
	}
	total := b.n(6000, 1500)
	var next atomic.Int64
	start := time.Now()
	cpuBefore := sampleCPU()
	profDone := b.profile(ctx, b.profileFor)
	if err := parallel(32, func() error {
		for next.Add(1) <= int64(total) {
			if _, _, err := b.submit(ctx, hello, ""); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := b.drain(ctx, 5*time.Minute); err != nil {
		return err
	}
	wall := time.Since(start)
	cpu := perJob(cpuBefore, sampleCPU(), total, wall)
	rate := float64(total) / wall.Seconds()
	<-profDone
	b.add(row{name: "end-to-end hello jobs (submitted and finished)", value: fmt.Sprintf("%.0f jobs/s", rate),
		floor: fmt.Sprintf("%.0f jobs/s (Postgres)", b.floorPG), ratio: fmt.Sprintf("%.0f %%", 100*rate/b.floorPG), target: "≥ 40 %"})
	b.add(row{name: "  same, against the asynq floor", value: "", floor: fmt.Sprintf("%.0f tasks/s (asynq)", b.floorAQ),
		ratio: fmt.Sprintf("%.0f %%", 100*rate/b.floorAQ)})
	b.add(row{name: "  CPU per finished job", value: cpu})
	b.add(row{name: "  deliveries by source and claim", value: b.deliveries(ctx)})
	return nil
}

// fairness: one pro account keeps a backlog of CPU-bound jobs queued (a
// batch ahead of the measurement, topped up as it runs) while two other
// accounts, one of the same tier and one of basic, submit a hello job at a
// time; each victim's job's time from created_at to started_at.
func (b *bench) fairness(ctx context.Context) error {
	victimPro, err := b.newAccount(ctx, b.env, "victim-pro", "pro")
	if err != nil {
		return err
	}
	victimBasic, err := b.newAccount(ctx, b.env, "victim-basic", "basic")
	if err != nil {
		return err
	}
	loop, err := b.upload(ctx, fixtures.CPULoop)
	if err != nil {
		return err
	}
	helloPro, err := b.uploadAs(ctx, victimPro, fixtures.Hello)
	if err != nil {
		return err
	}
	helloBasic, err := b.uploadAs(ctx, victimBasic, fixtures.Hello)
	if err != nil {
		return err
	}
	batch := make([]map[string]any, 100)
	for i := range batch {
		batch[i] = map[string]any{"module_id": loop, "args": []string{"100000000"}} // ≈ 0.1 s of CPU each
	}
	body, _ := json.Marshal(map[string]any{"jobs": batch})
	flood := func() error {
		code, out, err := b.do(ctx, http.MethodPost, "/v1/jobs/batch", "application/json", body)
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("flood: %d %s %w", code, out, err)
		}
		b.submitted.Add(int64(len(batch)))
		return nil
	}
	for range b.n(4, 2) {
		if err := flood(); err != nil {
			return err
		}
	}
	samples := b.n(60, 20)
	var same, cross []time.Duration
	for i := range samples {
		if i%10 == 9 {
			if err := flood(); err != nil { // the backlog never drains
				return err
			}
		}
		for _, v := range []struct {
			key, module string
			into        *[]time.Duration
		}{{victimPro, helloPro, &same}, {victimBasic, helloBasic, &cross}} {
			j, _, err := b.submitAs(ctx, v.key, v.module, "?wait=60s")
			if err != nil {
				return err
			}
			created, err1 := time.Parse(time.RFC3339Nano, fmt.Sprint(j["created_at"]))
			started, err2 := time.Parse(time.RFC3339Nano, fmt.Sprint(j["started_at"]))
			if err1 != nil || err2 != nil {
				return fmt.Errorf("victim job did not start: %v", j)
			}
			*v.into = append(*v.into, started.Sub(created))
		}
		time.Sleep(100 * time.Millisecond)
	}
	var queued int
	if _, out, err := b.do(ctx, http.MethodGet, "/v1/account", "", nil); err == nil {
		var acct struct {
			Usage struct{ Queued int } `json:"usage"`
		}
		_ = json.Unmarshal(out, &acct)
		queued = acct.Usage.Queued
	}
	for _, r := range []struct {
		name string
		d    []time.Duration
	}{{"victim submit→start, same tier (pro) p50 / p99", same}, {"victim submit→start, basic while pro floods p50 / p99", cross}} {
		slices.Sort(r.d)
		b.add(row{name: r.name, value: fmt.Sprintf("%.0f / %.0f ms (%d jobs; %d flood jobs still queued)",
			ms(pct(r.d, 50)), ms(pct(r.d, 99)), len(r.d), queued), target: "a few seconds"})
	}
	return b.drain(ctx, 5*time.Minute)
}

// drain waits until the worker has finished every job the harness got a
// 201 for. It reads the worker's wasmwizard_jobs_finished_total rather than
// asking Postgres, so that waiting does not load the database it measures.
func (b *bench) drain(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		metrics, err := b.workerMetrics(ctx)
		if err != nil {
			return err
		}
		var finished float64
		for _, m := range samples(metrics, "wasmwizard_jobs_finished_total") {
			finished += m.value
		}
		if int64(finished) >= b.submitted.Load() {
			return nil
		}
		// Each scrape costs the worker a little (its process collector
		// reads /proc); 50 ms is within 1 % of a full run's length.
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("jobs did not drain")
}

// largeModule: the first run of a 2.2 MB module right after its upload, and
// its second run.
func (b *bench) largeModule(ctx context.Context) error {
	id, err := b.upload(ctx, fixtures.GoHello)
	if err != nil {
		return err
	}
	_, first, err := b.submit(ctx, id, "?wait=30s")
	if err != nil {
		return err
	}
	_, second, err := b.submit(ctx, id, "?wait=30s")
	if err != nil {
		return err
	}
	b.add(row{name: "2.2 MB module: first run right after upload / second run", value: fmt.Sprintf("%.0f / %.1f ms", ms(first), ms(second))})
	return nil
}

// sandboxFigures: per-job sandbox overhead over raw wazero, and CPU-bound
// time in a sandbox child against uninterrupted in-process wazero.
func (b *bench) sandboxFigures(ctx context.Context) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	pool, err := sandbox.New(sandbox.Config{Command: []string{exe}, Size: 1, CacheDir: filepath.Join(b.scratch, "cache")})
	if err != nil {
		return err
	}
	defer pool.Close()
	engine, err := executor.NewEngine(ctx, executor.EngineConfig{})
	if err != nil {
		return err
	}
	defer func() { _ = engine.Close(ctx) }()
	measure := func(fixture string, args []string, n int) (sand, raw time.Duration, err error) {
		path := filepath.Join(b.scratch, fixture+".wasm")
		if err := os.WriteFile(path, fixtures.Bytes(fixture), 0o600); err != nil {
			return 0, 0, err
		}
		req := executor.Request{ModuleKey: fixture, ModulePath: path, Function: "_start", Args: args,
			Timeout: time.Minute, MemoryLimitMB: 64, MaxOutputBytes: 1 << 16}
		if _, err := pool.Execute(ctx, req); err != nil { // compile outside the measurement
			return 0, 0, err
		}
		start := time.Now()
		for range n {
			if _, err := pool.Execute(ctx, req); err != nil {
				return 0, 0, err
			}
		}
		sand = time.Since(start) / time.Duration(n)
		cm, err := engine.Compile(ctx, fixture, func() ([]byte, error) { return fixtures.Bytes(fixture), nil })
		if err != nil {
			return 0, 0, err
		}
		start = time.Now()
		for range n {
			engine.Run(ctx, cm, req)
		}
		return sand, time.Since(start) / time.Duration(n), nil
	}
	sand, raw, err := measure(fixtures.Hello, nil, b.n(3000, 500))
	if err != nil {
		return err
	}
	b.add(row{name: "sandbox overhead per hello job (child − raw)", value: fmt.Sprintf("%.0f µs", us(sand-raw)),
		floor: fmt.Sprintf("%.0f µs (wazero)", us(raw)), target: "≤ 200 µs"})
	sand, raw, err = measure(fixtures.Fib, []string{"32"}, b.n(20, 5))
	if err != nil {
		return err
	}
	b.add(row{name: "CPU-bound fib(32): sandbox / uninterrupted wazero", value: fmt.Sprintf("%.1f ms", ms(sand)),
		floor: fmt.Sprintf("%.1f ms", ms(raw)), ratio: fmt.Sprintf("%.2f×", float64(sand)/float64(raw)), target: "≤ 1.2×"})
	return nil
}

func (b *bench) table() string {
	var s strings.Builder
	mode := "full (`make bench`)"
	if b.quick {
		mode = "quick (`make bench-quick`)"
	}
	fmt.Fprintf(&s, "Run: %s, %s, %d cores, Go %s, worker concurrency %d, took %s.\n\n", mode,
		time.Now().UTC().Format("2006-01-02"), numCPU(), runtime.Version(), b.platform.conc, time.Since(b.started).Round(time.Second))
	s.WriteString("| measure | result | floor | ratio | target |\n|---|---|---|---|---|\n")
	for _, r := range b.rows {
		fmt.Fprintf(&s, "| %s | %s | %s | %s | %s |\n", r.name, r.value, r.floor, r.ratio, r.target)
	}
	return s.String()
}

const beginMark, endMark = "<!-- bench:begin -->", "<!-- bench:end -->"

// writeDoc replaces the table between the markers (appending a section the
// first time).
func writeDoc(path, table string) error {
	doc, err := os.ReadFile(path) //nolint:gosec // the repository's own docs
	if err != nil {
		return err
	}
	s := string(doc)
	block := beginMark + "\n" + table + endMark
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	if i >= 0 && j > i {
		s = s[:i] + block + s[j+len(endMark):]
	} else {
		s += "\n## The platform against its floors\n\nCommand: `make bench` (full) or `make bench-quick`; both rewrite this table.\n\n" + block + "\n"
	}
	return os.WriteFile(path, []byte(s), 0o600) //nolint:gosec // the repository's own docs
}

func command(ctx context.Context, env []string, bin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	return cmd.CombinedOutput()
}

func parallel(n int, fn func() error) error {
	errs := make(chan error, n)
	for range n {
		go func() { errs <- fn() }()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func freePort() int {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func numCPU() int { return runtime.NumCPU() }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

var emptyMeta = wasmmeta.Meta{Imports: []wasmmeta.Import{}, Exports: []wasmmeta.Export{{Name: "_start", Kind: "function"}}, WASI: true}

// profile saves CPU profiles of the API and the worker, taken over d from
// now, under b.profiles (read them with `go tool pprof -top`).
func (b *bench) profile(ctx context.Context, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	if b.profiles == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for name, addr := range map[string]string{"api": b.pprofAPI, "worker": b.pprofWorker} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds()))
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					return
				}
				res, err := client.Do(req)
				if err != nil {
					fmt.Fprintln(os.Stderr, "profile:", err)
					return
				}
				defer func() { _ = res.Body.Close() }()
				out, err := io.ReadAll(res.Body)
				if err == nil {
					_ = os.WriteFile(filepath.Join(b.profiles, name+".cpu.pprof"), out, 0o600)
				}
			}()
		}
		wg.Wait()
	}()
	return done
}

// deliveries reads the worker's wasmwizard_job_deliveries_total counters:
// how many jobs asynq and the doorbell delivered, and how many of those
// were duplicates of finished jobs.
func (b *bench) deliveries(ctx context.Context) string {
	metrics, err := b.workerMetrics(ctx)
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, m := range samples(metrics, "wasmwizard_job_deliveries_total") {
		parts = append(parts, fmt.Sprintf("%s %s %.0f", m.labels["source"], m.labels["outcome"], m.value))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

type sample struct {
	labels map[string]string
	value  float64
}

// samples are the values of metric name on a Prometheus text page (a
// metric with labels; the harness reads only those).
func samples(page, name string) []sample {
	var out []sample
	for _, line := range strings.Split(page, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		labels, value, _ := strings.Cut(rest, "} ")
		m := sample{labels: map[string]string{}}
		m.value, _ = strconv.ParseFloat(value, 64)
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			m.labels[k] = strings.Trim(v, `"`)
		}
		out = append(out, m)
	}
	return out
}

// workerMetrics is the worker's /metrics page.
func (b *bench) workerMetrics(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.workerHTTP+"/metrics", nil)
	if err != nil {
		return "", err
	}
	res, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(res.Body)
	return string(body), err
}
