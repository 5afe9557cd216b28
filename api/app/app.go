// Package app wires the API binary: subcommands, configuration, Postgres,
// Redis and the HTTP server.
//
// Its subcommands are serve, migrate, and the account and key bootstrap
// commands. Run is what main calls; Start is what tests call.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/api/httpapi"
	"github.com/wasmwizard/wasmwizard/api/jobwatch"
	"github.com/wasmwizard/wasmwizard/api/ratelimit"
	"github.com/wasmwizard/wasmwizard/api/scaling"
	"github.com/wasmwizard/wasmwizard/migrations"
	"github.com/wasmwizard/wasmwizard/shared/boot"
	"github.com/wasmwizard/wasmwizard/shared/config"
	"github.com/wasmwizard/wasmwizard/shared/redisconn"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/telemetry"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
	"github.com/wasmwizard/wasmwizard/shared/webhook"
)

// Version is set at build time.
var Version = "dev"

const usage = `usage: wasmwizard-api <command> [flags]

commands:
  serve                                   run the HTTP API (default)
  migrate                                 apply database migrations and exit
  accounts create --name NAME [--tier T]  create an account (tier: free, basic, pro, ...)
  accounts list                           list accounts
  accounts update --account ID --tier T   move an account to another tier (applied
                                          within WIZARD_AUTH_CACHE_TTL on every replica)
  keys create --account ID [--name NAME]  create an API key; the key is printed once
  keys list [--account ID]                list keys (never their secrets)
  keys revoke --key ID                    revoke a key (refused within WIZARD_AUTH_CACHE_TTL,
                                          default 2s, on every API replica)

Configuration comes from WIZARD_* environment variables (docs/CONFIGURATION.md).
`

// Run is the API binary's main: it returns the process exit code.
func Run(ctx context.Context, args []string, getenv config.Getenv, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	if cmd == "help" || cmd == "-h" || cmd == "--help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	cfg, log, ok := boot.Setup(getenv, config.LoadAPI, stderr)
	if !ok {
		return 2
	}
	defer func() { _ = log.Sync() }()

	switch cmd {
	case "serve":
		return serve(ctx, cfg, log)
	case "migrate":
		return migrate(ctx, cfg, stdout, stderr)
	case "accounts", "keys":
		return admin(ctx, cfg, cmd, args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// gcPercent is the API server's GOGC unless the environment sets one.
const gcPercent = 400

func serve(ctx context.Context, cfg config.API, log *zap.Logger) int {
	if os.Getenv("GOGC") == "" {
		// The API's live heap is small and its garbage is per request: a
		// collection every 4× growth instead of every 2× halves the GC's
		// share of the CPU and took the p99 of GET /v1/jobs/{id} at 1,000
		// requests/s from 4–10 ms to under 3 ms (docs/BENCHMARKS.md).
		// GOGC (and GOMEMLIMIT) in the environment take precedence.
		debug.SetGCPercent(gcPercent)
	}
	// Every client connection is a descriptor: the soft limit goes up to
	// the hard one before the first is accepted.
	stopDebug, ok := boot.Prepare(ctx, cfg.PprofAddr, log)
	if !ok {
		return 1
	}
	defer stopDebug()
	a, err := Start(ctx, cfg, log)
	if err != nil {
		log.Error("api failed to start", zap.Error(err))
		return 1
	}
	log.Info("api listening", zap.String("addr", a.Addr()), zap.Bool("admin_routes", cfg.AdminToken != ""),
		zap.Bool("tracing", cfg.Tracing.On()), zap.String("version", Version))
	select {
	case <-ctx.Done():
	case err := <-a.done:
		log.Error("http server stopped", zap.Error(err))
		a.close()
		return 1
	}
	log.Info("shutting down: finishing in-flight requests", zap.Duration("grace", cfg.ShutdownTimeout))
	if err := a.Shutdown(context.Background()); err != nil {
		log.Warn("shutdown was not clean", zap.Error(err))
	}
	return 0
}

func migrate(ctx context.Context, cfg config.API, stdout, stderr io.Writer) int {
	st, err := store.Open(ctx, cfg.DatabaseURL, 2)
	if err != nil {
		fmt.Fprintf(stderr, "migrate: %v\n", err)
		return 1
	}
	defer func() { _ = st.Close() }()
	applied, err := migrations.Up(ctx, st.DB().DB)
	if err != nil {
		fmt.Fprintf(stderr, "migrate: %v\n", err)
		return 1
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "migrate: the schema is up to date")
	} else {
		fmt.Fprintf(stdout, "migrate: applied %v\n", applied)
	}
	return 0
}

// admin runs the account and key subcommands directly against Postgres, for
// bootstrapping without a running server. Output is JSON, as the admin API's.
func admin(ctx context.Context, cfg config.API, noun string, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "%s: missing subcommand\n\n%s", noun, usage)
		return 2
	}
	verb, args := args[0], args[1:]
	fs := flag.NewFlagSet(noun+" "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "name")
	tier := fs.String("tier", "free", "tier of the account")
	account := fs.String("account", "", "account ID")
	keyID := fs.String("key", "", "key ID")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	st, err := store.Open(ctx, cfg.DatabaseURL, 2)
	if err != nil {
		fmt.Fprintf(stderr, "%s %s: %v\n", noun, verb, err)
		return 1
	}
	defer func() { _ = st.Close() }()
	actor := store.Actor{Name: "cli"}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	var out any
	switch noun + " " + verb {
	case "accounts create":
		if strings.TrimSpace(*name) == "" {
			fmt.Fprintln(stderr, "accounts create: --name is required")
			return 2
		}
		a, err := st.CreateAccount(ctx, actor, strings.TrimSpace(*name), *tier)
		if err != nil {
			fmt.Fprintf(stderr, "accounts create: %v\n", err)
			return 1
		}
		v := outAccount(a)
		v.WebhookSecret = a.WebhookSecret
		out = v
	case "accounts list":
		as, err := st.ListAccounts(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "accounts list: %v\n", err)
			return 1
		}
		out = outAll(as, outAccount)
	case "accounts update":
		id, err := uuid.Parse(*account)
		if err != nil || !set["tier"] {
			fmt.Fprintln(stderr, "accounts update: --account ID and --tier T are required")
			return 2
		}
		a, err := st.UpdateAccountTier(ctx, actor, id, *tier)
		if err != nil {
			fmt.Fprintf(stderr, "accounts update: %v\n", err)
			return 1
		}
		out = outAccount(a)
	case "keys list":
		var id uuid.UUID
		if *account != "" {
			if id, err = uuid.Parse(*account); err != nil {
				fmt.Fprintln(stderr, "keys list: --account must be an account ID")
				return 2
			}
		}
		page, err := st.ListKeys(ctx, id, "", 200)
		if err != nil {
			fmt.Fprintf(stderr, "keys list: %v\n", err)
			return 1
		}
		out = outAll(page.Items, outKey)
	case "keys revoke":
		id, err := uuid.Parse(*keyID)
		if err != nil {
			fmt.Fprintln(stderr, "keys revoke: --key must be a key ID")
			return 2
		}
		k, err := st.RevokeKey(ctx, actor, id)
		if err != nil {
			fmt.Fprintf(stderr, "keys revoke: %v\n", err)
			return 1
		}
		out = revokedKeyOut{AccountID: k.AccountID, ID: k.ID, Prefix: k.Prefix, RevokedAt: k.RevokedAt}
	case "keys create":
		id, err := uuid.Parse(*account)
		if err != nil {
			fmt.Fprintln(stderr, "keys create: --account must be an account ID")
			return 2
		}
		k, plain, err := st.CreateKey(ctx, actor, id, *name)
		if err != nil {
			fmt.Fprintf(stderr, "keys create: %v\n", err)
			return 1
		}
		out = newKeyOut{AccountID: k.AccountID, CreatedAt: k.CreatedAt, ID: k.ID, Key: plain, Name: k.Name, Prefix: k.Prefix}
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", noun+" "+verb, usage)
		return 2
	}
	if err := enc.Encode(out); err != nil {
		return 1
	}
	return 0
}

// API is a running API server.
type API struct {
	cfg     config.API
	store   *store.Store
	rdb     redis.UniversalClient
	live    redis.UniversalClient
	client  *asynq.Client
	inspect *wasmmeta.Inspector
	watch   *jobwatch.Hub
	srv     *httpapi.Server
	http    *http.Server
	ln      net.Listener
	done    chan error
	// stopTracing flushes the spans not yet exported.
	stopTracing func(context.Context) error
}

// Start connects to Postgres and Redis and serves the API on cfg.HTTPAddr.
func Start(ctx context.Context, cfg config.API, log *zap.Logger) (*API, error) {
	// Large uploads are validated in a child process of this binary under
	// a memory and time budget (docs/SECURITY.md).
	inspect, err := wasmmeta.NewIsolatedInspector(ctx, wasmmeta.IsolateConfig{
		Timeout: cfg.UploadCheckTimeout, Concurrency: cfg.UploadCheckConcurrency})
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, cfg.DatabaseURL, cfg.DBMaxOpenConns)
	if err != nil {
		return nil, err
	}
	rdb, err := redisconn.Connect(ctx, cfg.RedisURL, log)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	tracer, stopTracing, err := telemetry.ProviderFor(ctx, cfg.TracerProvider, cfg.Tracing, "wasmwizard-api", Version)
	if err != nil {
		_ = st.Close()
		_ = rdb.Close()
		return nil, err
	}
	watch, err := jobwatch.Start(ctx, cfg.DatabaseURL, 5*time.Second, log.Named("jobwatch"))
	if err != nil {
		_ = st.Close()
		_ = rdb.Close()
		return nil, err
	}
	// Live output streams wait in XREAD on connections of their own.
	streamsMax := cfg.StreamsMax
	if streamsMax <= 0 {
		streamsMax = httpapi.DefaultStreamsMax
	}
	live, err := redisconn.OpenPool(cfg.RedisURL, streamsMax)
	if err != nil {
		_ = st.Close()
		_ = rdb.Close()
		_ = watch.Close()
		return nil, err
	}
	a := &API{cfg: cfg, store: st, rdb: rdb, live: live, client: asynq.NewClientFromRedisClient(rdb),
		inspect: inspect, watch: watch, done: make(chan error, 1), stopTracing: stopTracing}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewDBStatsCollector(st.DB().DB, "wasmwizard"), newQueueAge(st, cfg.QueueNamespace, log.Named("metrics")))
	telemetry.RegisterBuildInfo(reg, "api", Version)
	telemetry.RegisterDependencies(reg, time.Second, map[string]telemetry.Ping{
		"postgres": st.Ping, "redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() }})
	rdb.AddHook(telemetry.RedisErrors(reg))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "wasmwizard_api_job_waits",
		Help: "Requests waiting for a job to finish (?wait=, cancel, /api/execute) on this API process.",
	}, func() float64 { return float64(watch.Waiting()) }))
	// The autoscaling figures: GET /v1/admin/scaling and wasmwizard_jobs.
	ttl := cfg.ScalingCacheTTL
	if ttl == 0 {
		ttl = -1 // not reused
	}
	scale := scaling.New(scaling.Config{Store: st, Namespace: cfg.QueueNamespace, TTL: ttl,
		Slots: cfg.ScalingSlotsPerWorker, Lease: cfg.WorkerLease})
	a.srv = httpapi.New(httpapi.Deps{
		Store: st, Redis: rdb, Enqueuer: a.client, Tasks: asynq.NewInspectorFromRedisClient(rdb),
		Watcher: watch, Inspector: a.inspect, Log: log, Registry: reg,
		Queue: tasks.Queue(cfg.QueueNamespace), AdminToken: cfg.AdminToken,
		MetricsToken: cfg.MetricsToken, Scaling: scale,
		EnqueueTimeout: cfg.EnqueueTimeout, Version: Version, AuthCacheTTL: cfg.AuthCacheTTL,
		BodyStallTimeout: cfg.BodyStallTimeout, TrustedProxies: cfg.TrustedProxies,
		AuthFailureLimit: cfg.AuthFailureLimit,
		Limiter:          ratelimit.New(rdb, cfg.QueueNamespace),
		Webhooks:         webhook.Policy{AllowPrivate: cfg.WebhookAllowPrivate, AllowHTTP: cfg.WebhookAllowHTTP},
		WebhookQueue:     tasks.WebhookQueue(cfg.QueueNamespace),
		LiveRedis:        live, StreamsPerAccount: cfg.StreamsPerAccount, StreamsMax: streamsMax,
		Tracer: tracer,
	})
	a.ln, err = (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		a.close()
		return nil, fmt.Errorf("WIZARD_HTTP_ADDR: listen on %s: %w", cfg.HTTPAddr, err)
	}
	a.http = &http.Server{
		Handler:           a.srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// The whole request, large module uploads included; a body that
		// stalls fails much sooner (WIZARD_BODY_STALL_TIMEOUT, in httpapi).
		ReadTimeout: httpapi.RequestReadTimeout,
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    zap.NewStdLog(log.Named("http")),
	}
	go func() {
		if err := a.http.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.done <- err
		}
	}()
	return a, nil
}

// Addr is the address the API listens on.
func (a *API) Addr() string { return a.ln.Addr().String() }

// Shutdown stops accepting connections, answers long-polls with the job as
// it is, waits for in-flight requests up to the configured timeout, then
// closes connections to Postgres and Redis.
func (a *API) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.ShutdownTimeout)
	defer cancel()
	_ = a.watch.Close()
	err := a.http.Shutdown(ctx)
	a.close()
	return err
}

func (a *API) close() {
	if a.srv != nil {
		a.srv.Close() // pending audit summaries, before the store closes
	}
	_ = a.watch.Close()
	_ = a.client.Close()
	_ = a.rdb.Close()
	_ = a.live.Close()
	_ = a.inspect.Close(context.Background())
	_ = a.store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.stopTracing(ctx)
}
