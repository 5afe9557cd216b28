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
	"net/url"
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
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
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
	only := flag.String("only", "", "comma-separated steps to run (floors,idle,cli,get,submit,e2e,real,fairness,large,large-first,live,counts,sandbox); default all")
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
	// pg is the harness's own Postgres cluster; pgbenchFloor its pgbench
	// floor (jobs/s).
	pg           *cluster
	stats        *sqlx.DB
	pgbenchFloor float64
	// redisURL is the Redis the platform uses (proxied in the counting
	// step).
	redisURL string
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
	if b.stats, err = sqlx.Open("postgres", b.dbURL); err != nil {
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
	}{{"idle", b.idleWait}, {"cli", b.cliRun}, {"get", b.getLatency}, {"submit", b.submitThroughput}, {"e2e", b.endToEnd}, {"real", b.realTier},
		{"fairness", b.fairness}, {"large", b.largeModule}, {"large-first", b.largeFirst}, {"live", b.liveLatency}, {"counts", b.counts}}
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
	var err error
	if b.pg, err = startCluster(ctx, b.scratch); err != nil {
		return err
	}
	statementsOn = b.pg.statements
	b.dbName = fmt.Sprintf("ww_bench_%d", time.Now().Unix())
	admin, err := sqlx.Open("postgres", b.pg.url("postgres"))
	if err != nil {
		return err
	}
	defer func() { _ = admin.Close() }()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+b.dbName); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	b.dbURL = b.pg.url(b.dbName)
	b.redisURL = testenv.RedisURL()
	db, err := sqlx.Open("postgres", b.dbURL)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	if _, err := migrations.Up(ctx, db.DB); err != nil {
		return err
	}
	// The benchmark measures the platform, not the tiers' limits, except on
	// two tiers: "limited" is pro with its concurrency limit (high enough
	// that the load never reaches it: submits to it pay for taking a slot),
	// and "real" is pro with pro's concurrency limit and rate limits that
	// are checked on every submit but high enough not to refuse any.
	if _, err = db.ExecContext(ctx, `
		INSERT INTO tiers (name, runs_per_minute, runs_per_day, max_concurrent_runs,
			default_timeout_ms, max_timeout_ms, default_memory_mb, max_memory_mb,
			default_output_bytes, max_output_bytes, max_module_bytes, queue_weight, reads_per_minute)
		SELECT t.name, t.rpm, t.rpd, coalesce(t.conc, max_concurrent_runs), default_timeout_ms, max_timeout_ms, default_memory_mb, max_memory_mb,
			default_output_bytes, max_output_bytes, max_module_bytes, queue_weight, 0
		FROM tiers, (VALUES ('limited', 0, 0, $1::integer), ('real', 10000000, 1000000000, NULL)) AS t(name, rpm, rpd, conc)
		WHERE tiers.name = 'pro'`, limitedConcurrency); err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, `UPDATE tiers SET runs_per_minute = 0, runs_per_day = 0, max_concurrent_runs = 0, reads_per_minute = 0
		WHERE name NOT IN ('limited', 'real')`)
	b.ns = "bench-" + uuid.NewString()[:8] + ":"
	return err
}

func (b *bench) cleanup() {
	for _, p := range b.procs {
		_ = p.Process.Kill()
		_ = p.Wait()
	}
	if b.stats != nil {
		_ = b.stats.Close()
	}
	if b.pg != nil {
		b.pg.stop()
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
	m, err := mark(ctx, db)
	if err != nil {
		return err
	}
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
	cost, err := since(ctx, db, m, total)
	if err != nil {
		return err
	}
	b.add(row{name: fmt.Sprintf("Postgres job lifecycle (insert + 2 updates, %d conns)", conc), value: fmt.Sprintf("%.0f jobs/s", b.floorPG)})
	b.add(row{name: "  per job", value: cost.String()})
	if err := b.floorPgbench(ctx, db); err != nil {
		return err
	}
	return b.storeLifecycle(ctx, conc)
}

// floorPgbench is the same lifecycle run by pgbench (16 clients, prepared
// statements, ids ordered by time like the platform's UUIDv7): what the
// database does without a Go client in between. It is the reference of the
// end-to-end figures.
func (b *bench) floorPgbench(ctx context.Context, db *sqlx.DB) error {
	const clients = 16
	perClient := b.n(600, 150)
	script := filepath.Join(b.scratch, "lifecycle.sql")
	if err := os.WriteFile(script, []byte(`
INSERT INTO bench_floor_jobs (id, account_id, module_id, status, request)
	SELECT (substr(h, 1, 8) || '-' || substr(h, 9, 4) || substr(gen_random_uuid()::text, 14))::uuid,
		'6a1c2c36-3b51-4a9e-9d55-2f4a8c4b1e01', '6a1c2c36-3b51-4a9e-9d55-2f4a8c4b1e02', 'queued', '{"function":"_start"}'
	FROM (SELECT lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') AS h) t
	RETURNING id \gset
UPDATE bench_floor_jobs SET status = 'running', started_at = now() WHERE id = :id AND status = 'queued';
UPDATE bench_floor_jobs SET status = 'succeeded', finished_at = now(), exit_code = 0,
	stdout = '\x68656c6c6f2c20776f726c640a'::bytea WHERE id = :id AND status = 'running';
`), 0o600); err != nil {
		return err
	}
	m, err := mark(ctx, db)
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "pgbench", "-n", "-M", "prepared", "-c", strconv.Itoa(clients), "-j", "2", //nolint:gosec // fixed arguments
		"-t", strconv.Itoa(perClient), "-f", script, "-h", "127.0.0.1", "-p", strconv.Itoa(b.pg.port), "-U", "postgres", b.dbName).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgbench (apt-get install postgresql-client): %w: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "tps = "); ok {
			b.pgbenchFloor, _ = strconv.ParseFloat(strings.Fields(rest)[0], 64)
		}
	}
	if b.pgbenchFloor == 0 {
		return fmt.Errorf("pgbench: no tps in %s", out)
	}
	cost, err := since(ctx, db, m, clients*perClient)
	if err != nil {
		return err
	}
	b.add(row{name: fmt.Sprintf("Postgres job lifecycle, pgbench (same statements, %d clients)", clients), value: fmt.Sprintf("%.0f jobs/s", b.pgbenchFloor)})
	b.add(row{name: "  per job", value: cost.String()})
	return nil
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
	db, err := sqlx.Open("postgres", b.dbURL)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	wm, err := mark(ctx, db)
	if err != nil {
		return err
	}
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
			if _, err := st.FinishJob(ctx, j.ID, 1, "floor", jobstate.Outcome{Status: jobstate.Succeeded, ExitCode: &zero, Stdout: []byte("hello, world\n")}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	rate := float64(total) / time.Since(start).Seconds()
	cost, err := since(ctx, db, wm, total)
	if err != nil {
		return err
	}
	b.add(row{name: "  the store's lifecycle (same commits + audit rows, indexes, triggers)", value: fmt.Sprintf("%.0f jobs/s", rate),
		floor: against(b.floorPG, "jobs/s (Postgres)"), ratio: percentOf(rate, b.floorPG)})
	b.add(row{name: "  per job", value: cost.String()})
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
		"WIZARD_REDIS_URL=" + b.redisURL,
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
	b.platform.conc = runtime.NumCPU() * 2
	return b.launch(ctx, nil, nil)
}

// launch starts the API and the worker, each with extra settings (the
// counting step's proxied addresses), and waits for the API.
func (b *bench) launch(ctx context.Context, apiEnv, workerEnv []string) error {
	b.api = "127.0.0.1:" + strconv.Itoa(freePort())
	b.pprofAPI = "127.0.0.1:" + strconv.Itoa(freePort())
	b.pprofWorker = "127.0.0.1:" + strconv.Itoa(freePort())
	if err := b.start(b.env, "bin/wasmwizard-api", "serve", append([]string{"WIZARD_HTTP_ADDR=" + b.api, "WIZARD_PPROF_ADDR=" + b.pprofAPI}, apiEnv...)...); err != nil {
		return err
	}
	b.workerHTTP = "127.0.0.1:" + strconv.Itoa(freePort())
	if err := b.start(b.env, "bin/wasmwizard-worker", "serve", append([]string{"WIZARD_WORKER_HTTP_ADDR=" + b.workerHTTP,
		"WIZARD_WORKER_CONCURRENCY=" + strconv.Itoa(b.platform.conc), "WIZARD_DATA_DIR=" + filepath.Join(b.scratch, "worker"),
		"WIZARD_DB_MAX_OPEN_CONNS=16", "WIZARD_PPROF_ADDR=" + b.pprofWorker}, workerEnv...)...); err != nil {
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

// stopPlatform stops the API and the worker (after a drain: the worker's
// counters start again from zero in the next one).
func (b *bench) stopPlatform() {
	for _, p := range b.procs {
		_ = p.Process.Kill()
		_ = p.Wait()
	}
	b.procs = nil
	b.submitted.Store(0)
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

// cliRun: `bin/wizard run hello.wasm` end to end on an idle platform, one
// at a time after a pause, from the process's start to its exit: the
// process's start, the module found by its hash (it was uploaded before),
// the submit, the output streamed, the exit. Beside it, in the same loop
// (alternating, so that both meet the same machine), the floor the CLI
// cannot beat: POST /v1/jobs?wait=5s for the same module from this
// process.
func (b *bench) cliRun(ctx context.Context) error {
	hello, err := b.upload(ctx, fixtures.Hello)
	if err != nil {
		return err
	}
	dir := filepath.Join(b.scratch, "cli")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	wasm := filepath.Join(dir, "hello.wasm")
	if err := os.WriteFile(wasm, fixtures.Bytes(fixtures.Hello), 0o600); err != nil {
		return err
	}
	env := []string{"WIZARD_API_URL=http://" + b.api, "WIZARD_API_KEY=" + b.key, "XDG_CONFIG_HOME=" + dir, "HOME=" + dir,
		"PATH=" + os.Getenv("PATH")}
	wizard := func(want string, args ...string) (time.Duration, error) {
		cmd := exec.CommandContext(ctx, "bin/wizard", args...)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		err := cmd.Run()
		d := time.Since(start)
		if err == nil && !strings.HasSuffix(out.String(), want) {
			err = fmt.Errorf("stdout does not end in %q", want)
		}
		if err != nil {
			return d, fmt.Errorf("bin/wizard %s: %w: %q %q (run make build)", strings.Join(args, " "), err, out.String(), errb.String())
		}
		return d, nil
	}
	if _, err := wizard("hello, world\n", "run", wasm); err != nil { // warm
		return err
	}
	_, _, _ = b.submit(ctx, hello, "?wait=5s")
	var cli, floor, start []time.Duration
	for range b.n(100, 30) {
		time.Sleep(20 * time.Millisecond)
		j, d, err := b.submit(ctx, hello, "?wait=5s")
		if err != nil {
			return err
		}
		if j["status"] != "succeeded" {
			return fmt.Errorf("cli floor: job %v", j["status"])
		}
		floor = append(floor, d)
		time.Sleep(20 * time.Millisecond)
		if d, err = wizard("hello, world\n", "run", wasm); err != nil {
			return err
		}
		cli = append(cli, d)
		if d, err = wizard("\n", "--version"); err != nil {
			return err
		}
		start = append(start, d)
	}
	p50, p99, f50, f99 := pct(cli, 50), pct(cli, 99), pct(floor, 50), pct(floor, 99)
	b.add(row{name: "`wizard run hello.wasm` (process start to exit) p50 / p99", value: fmt.Sprintf("%.1f / %.1f ms", ms(p50), ms(p99)),
		floor: fmt.Sprintf("%.1f / %.1f ms (submit-with-wait, same run)", ms(f50), ms(f99)),
		ratio: fmt.Sprintf("%+.1f / %+.1f ms", ms(p50-f50), ms(p99-f99)), target: "≤ +30 ms"})
	b.add(row{name: "  of which the process alone (`wizard --version`) p50 / p99",
		value: fmt.Sprintf("%.1f / %.1f ms", ms(pct(start, 50)), ms(pct(start, 99)))})
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
	// Round 0 is the limited account's first burst: its slot rows are made
	// then (once in an account's life, up to its peak of unfinished jobs;
	// see createJob in shared/store), and it is reported on its own. The
	// rounds after it measure the steady state, each phase of a round
	// right after the other so that both see the same machine; the last
	// round's Postgres profile of each is kept (marks cost a checkpoint
	// and a second's wait, outside the measured time).
	const rounds = 3
	var first [2]float64
	var unlimited, limited float64
	var costs [2]walCost
	for round := range rounds {
		for i, phase := range []struct {
			key, module string
			rate        *float64
		}{{b.key, hello, &unlimited}, {b.limitedKey, limitedHello, &limited}} {
			last := round == rounds-1
			var wm walMark
			var err error
			if last {
				if wm, err = mark(ctx, b.stats); err != nil {
					return err
				}
			}
			before := b.submitted.Load()
			rate := measure(phase.key, phase.module)
			if round == 0 {
				first[i] = rate
			} else {
				*phase.rate += rate / (rounds - 1)
			}
			if last {
				if costs[i], err = since(ctx, b.stats, wm, int(b.submitted.Load()-before)); err != nil {
					return err
				}
			}
			if err := b.drain(ctx, 2*time.Minute); err != nil {
				return err
			}
		}
	}
	b.add(row{name: "submit throughput (accepted, 32 clients)", value: fmt.Sprintf("%.0f jobs/s", unlimited),
		floor: against(b.floorPG, "jobs/s (Postgres)"), ratio: percentOf(unlimited, b.floorPG)})
	b.add(row{name: fmt.Sprintf("  same, one account with a concurrency limit (%d)", limitedConcurrency),
		value: fmt.Sprintf("%.0f jobs/s", limited), ratio: fmt.Sprintf("%.2f× unlimited", limited/unlimited), target: "≥ 0.9×"})
	b.add(row{name: "  first burst of each (the limited account's slot rows being made)",
		value: fmt.Sprintf("%.0f and %.0f jobs/s", first[0], first[1]), ratio: fmt.Sprintf("%.2f× unlimited", first[1]/first[0])})
	for i, name := range []string{"unlimited", "limited"} {
		if costs[i].statements != "" {
			b.add(row{name: "  Postgres execution time by statement per accepted job, " + name, value: costs[i].statements})
		}
	}
	return nil
}

// limitedConcurrency is the tier "limited"'s max_concurrent_runs: more than
// the submit step ever has queued, so that every submit is admitted and
// pays for the count.
const limitedConcurrency = 100_000

// endToEnd: hello jobs submitted by 32 clients and run to the end: finished
// jobs per second over the whole run, on pro with its limits lifted.
func (b *bench) endToEnd(ctx context.Context) error {
	hello, err := b.upload(ctx, fixtures.Hello)
	if err != nil {
		return err
	}
	total := b.n(6000, 1500)
	r, err := b.load(ctx, []string{b.key}, []string{hello}, total, true)
	if err != nil {
		return err
	}
	b.add(row{name: "end-to-end hello jobs (submitted and finished)", value: fmt.Sprintf("%.0f jobs/s", r.rate),
		floor: against(b.floorPG, "jobs/s (Postgres)"), ratio: percentOf(r.rate, b.floorPG), target: "≥ 40 %"})
	b.add(row{name: "  same, against the asynq floor", value: "", floor: fmt.Sprintf("%.0f tasks/s (asynq)", b.floorAQ),
		ratio: percentOf(r.rate, b.floorAQ)})
	b.add(row{name: "  CPU per finished job", value: r.cpu})
	b.add(row{name: "  Postgres per finished job", value: r.wal.String()})
	if r.wal.statements != "" {
		b.add(row{name: "  Postgres execution time by statement per finished job", value: r.wal.statements})
	}
	b.add(row{name: "  deliveries by source and claim", value: b.deliveries(ctx)})
	return nil
}

// loadResult is what one load phase measured.
type loadResult struct {
	rate     float64
	rejected int64
	cpu      string
	wal      walCost
}

// load runs total hello jobs from 32 clients, job i for account i mod
// len(keys), to the end. A refused submit (429: the account is at its
// concurrency limit) is retried after a pause that doubles from 1 ms to
// 32 ms, as a client that reads Retry-After loosely would.
func (b *bench) load(ctx context.Context, keys, modules []string, total int, profile bool) (loadResult, error) {
	var r loadResult
	wm, err := mark(ctx, b.stats)
	if err != nil {
		return r, err
	}
	var next atomic.Int64
	var rejected atomic.Int64
	start := time.Now()
	cpuBefore := sampleCPU(b.pg.pid)
	profDone := make(<-chan struct{})
	if profile {
		profDone = b.profile(ctx, b.profileFor)
	}
	body := make([][]byte, len(modules))
	for i, m := range modules {
		body[i], _ = json.Marshal(map[string]any{"module_id": m})
	}
	if err := parallel(32, func() error {
		for {
			i := int(next.Add(1)) - 1
			if i >= total {
				return nil
			}
			k := i % len(keys)
			pause := time.Millisecond
			for {
				code, out, err := b.doAs(ctx, keys[k], http.MethodPost, "/v1/jobs", "application/json", body[k])
				if err != nil {
					return err
				}
				if code == http.StatusCreated {
					b.submitted.Add(1)
					break
				}
				if code != http.StatusTooManyRequests {
					return fmt.Errorf("submit: %d %s", code, out)
				}
				rejected.Add(1)
				time.Sleep(pause)
				pause = min(2*pause, 32*time.Millisecond)
			}
		}
	}); err != nil {
		return r, err
	}
	if err := b.drain(ctx, 5*time.Minute); err != nil {
		return r, err
	}
	wall := time.Since(start)
	r.cpu = perJob(cpuBefore, sampleCPU(b.pg.pid), total, wall)
	r.rate = float64(total) / wall.Seconds()
	r.rejected = rejected.Load()
	if profile {
		<-profDone
	}
	r.wal, err = since(ctx, b.stats, wm, total)
	return r, err
}

// realTier: the end-to-end load on the tier "real" (pro's concurrency
// limit of 100, rate limits checked but not reached), first for one
// account, then spread over 50.
func (b *bench) realTier(ctx context.Context) error {
	total := b.n(6000, 1500)
	for _, n := range []int{1, 50} {
		keys, modules := make([]string, n), make([]string, n)
		for i := range n {
			var err error
			if keys[i], err = b.newAccount(ctx, b.env, fmt.Sprintf("real-%d-%d", n, i), "real"); err != nil {
				return err
			}
			if modules[i], err = b.uploadAs(ctx, keys[i], fixtures.Hello); err != nil {
				return err
			}
			// The account's first job makes its slot rows, once: the
			// measurement is of the steady state.
			if _, _, err := b.submitAs(ctx, keys[i], modules[i], "?wait=30s"); err != nil {
				return err
			}
		}
		if err := b.drain(ctx, time.Minute); err != nil {
			return err
		}
		r, err := b.load(ctx, keys, modules, total, false)
		if err != nil {
			return err
		}
		b.add(row{name: fmt.Sprintf("end-to-end on a real tier (limit 100 each), %d account(s)", n), value: fmt.Sprintf("%.0f jobs/s (%.2f refused submits per job)", r.rate, float64(r.rejected)/float64(total)),
			floor: against(b.pgbenchFloor, "jobs/s (pgbench)"), ratio: percentOf(r.rate, b.pgbenchFloor), target: "≥ 40 %"})
		b.add(row{name: "  CPU per finished job", value: r.cpu})
		b.add(row{name: "  Postgres per finished job", value: r.wal.String()})
		b.add(row{name: "  WAL by record type per finished job", value: r.wal.top})
		if r.wal.statements != "" {
			b.add(row{name: "  Postgres execution time by statement per finished job", value: r.wal.statements})
		}
		if r.wal.walStatements != "" {
			b.add(row{name: "  WAL records by statement per finished job", value: r.wal.walStatements})
		}
	}
	return nil
}

// counts: the round trips each process makes to Postgres and the commands
// it sends Redis, per finished job, on the real tier with one account. The
// API and the worker are restarted with a counting proxy in front of each
// server (forwarding costs the harness CPU, so no other step runs through
// them), and run 2,000 jobs (500 quick).
func (b *bench) counts(ctx context.Context) error {
	if err := b.drain(ctx, 5*time.Minute); err != nil {
		return err
	}
	b.stopPlatform()
	pgAddr := fmt.Sprintf("127.0.0.1:%d", b.pg.port)
	ru, err := url.Parse(b.redisURL)
	if err != nil {
		return err
	}
	var proxies []*proxy
	defer func() {
		for _, p := range proxies {
			p.close()
		}
	}()
	via := func(target string, redis bool) (*proxy, error) {
		p, err := startProxy(target, redis)
		if err == nil {
			proxies = append(proxies, p)
		}
		return p, err
	}
	envFor := func() ([]string, *proxy, *proxy, error) {
		pp, err := via(pgAddr, false)
		if err != nil {
			return nil, nil, nil, err
		}
		rp, err := via(ru.Host, true)
		if err != nil {
			return nil, nil, nil, err
		}
		r := *ru
		r.Host = rp.addr()
		return []string{"WIZARD_DATABASE_URL=" + strings.Replace(b.dbURL, pgAddr, pp.addr(), 1), "WIZARD_REDIS_URL=" + r.String()}, pp, rp, nil
	}
	apiEnv, apiPG, apiRedis, err := envFor()
	if err != nil {
		return err
	}
	workerEnv, workerPG, workerRedis, err := envFor()
	if err != nil {
		return err
	}
	if err := b.launch(ctx, apiEnv, workerEnv); err != nil {
		return err
	}
	key, err := b.newAccount(ctx, b.env, "counts", "real")
	if err != nil {
		return err
	}
	module, err := b.uploadAs(ctx, key, fixtures.Hello)
	if err != nil {
		return err
	}
	if _, _, err := b.submitAs(ctx, key, module, "?wait=30s"); err != nil { // makes the slot rows
		return err
	}
	if err := b.drain(ctx, time.Minute); err != nil {
		return err
	}
	total := b.n(2000, 500)
	// The idle platform's own traffic (heartbeats, polls) is counted too:
	// it is part of what a job costs at this rate.
	counters := []*proxy{apiPG, apiRedis, workerPG, workerRedis}
	before := make([]int64, len(counters))
	for i, p := range counters {
		before[i] = p.n.Load()
	}
	r, err := b.load(ctx, []string{key}, []string{module}, total, false)
	if err != nil {
		return err
	}
	per := make([]float64, len(counters))
	for i, p := range counters {
		per[i] = float64(p.n.Load()-before[i]) / float64(total)
	}
	b.add(row{name: "round trips per finished job (real tier, one account)", value: fmt.Sprintf(
		"Postgres: api %.2f, worker %.2f; Redis commands: api %.2f, worker %.2f (%.2f refused submits per job)",
		per[0], per[2], per[1], per[3], float64(r.rejected)/float64(total))})
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
			// A worker just started may not listen yet.
			if time.Now().Add(time.Second).After(deadline) {
				return err
			}
			time.Sleep(50 * time.Millisecond)
			continue
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

// against is a floor's figure, empty when its step did not run.
func against(floor float64, unit string) string {
	if floor == 0 {
		return ""
	}
	return fmt.Sprintf("%.0f %s", floor, unit)
}

// percentOf is rate as a share of floor, empty when the floor's step did
// not run.
func percentOf(rate, floor float64) string {
	if floor == 0 {
		return ""
	}
	return fmt.Sprintf("%.0f %%", 100*rate/floor)
}

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
