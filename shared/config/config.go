// Package config reads and validates the WIZARD_* environment variables of
// both binaries.
//
// It applies defaults that work on a developer machine and validates the
// result with messages that name the variable at fault.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/wasmwizard/wasmwizard/shared/telemetry"
)

// Getenv looks up one environment variable; os.Getenv in production, a map in
// tests.
type Getenv func(string) string

// Defaults for a developer machine (see docs/CONFIGURATION.md).
const (
	// DefaultDatabaseURL is the development database scripts/deps.sh creates;
	// its password is not a secret.
	DefaultDatabaseURL    = "postgres://wasmwizard:wasmwizard@127.0.0.1:5432/wasmwizard?sslmode=disable" //nolint:gosec // development default
	DefaultRedisURL       = "redis://127.0.0.1:6379/0"
	DefaultHTTPAddr       = ":8080"
	DefaultWorkerHTTPAddr = ":8081"
	DefaultDataDir        = "./data"
	// DefaultModuleCacheBytes and DefaultCompileCacheBytes bound the
	// worker's disk caches unless configured.
	DefaultModuleCacheBytes  = 1 << 30
	DefaultCompileCacheBytes = 2 << 30
)

// Common holds the settings both binaries share.
type Common struct {
	DatabaseURL string // WIZARD_DATABASE_URL, fallback DATABASE_URL
	RedisURL    string // WIZARD_REDIS_URL, fallback REDIS_URL
	// QueueNamespace prefixes every queue name so that several deployments
	// (or test runs) can share one Redis without seeing each other's tasks.
	QueueNamespace string // WIZARD_QUEUE_NAMESPACE, default ""
	LogLevel       string // WIZARD_LOG_LEVEL: debug|info|warn|error, default info
	LogFormat      string // WIZARD_LOG_FORMAT: json|console, default json
	// DBMaxOpenConns bounds the Postgres connection pool.
	DBMaxOpenConns int // WIZARD_DB_MAX_OPEN_CONNS, default 20
	// WebhookAllowPrivate lets webhooks reach loopback and private
	// addresses (development and tests only).
	WebhookAllowPrivate bool // WIZARD_WEBHOOK_ALLOW_PRIVATE, default false
	// WebhookAllowHTTP allows http:// webhook URLs.
	WebhookAllowHTTP bool // WIZARD_WEBHOOK_ALLOW_HTTP, default false
	// PprofAddr serves Go's profiling endpoints when set (never expose it).
	PprofAddr string // WIZARD_PPROF_ADDR, default "" (off)
	// Tracing turns OpenTelemetry tracing on: WIZARD_OTEL_EXPORTER_OTLP_ENDPOINT
	// (an OTLP/HTTP collector's URL), or the standard
	// OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
	// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none keep it off.
	// Default off.
	Tracing telemetry.Tracing
	// TracerProvider, when set, is used instead of one built from Tracing
	// (tests, with an in-memory exporter). Not read from the environment.
	TracerProvider trace.TracerProvider
}

// Logging returns the log level and format (WIZARD_LOG_LEVEL,
// WIZARD_LOG_FORMAT).
func (c Common) Logging() (level, format string) { return c.LogLevel, c.LogFormat }

// API is the API binary's configuration.
type API struct {
	Common
	HTTPAddr   string // WIZARD_HTTP_ADDR, default :8080
	AdminToken string // WIZARD_ADMIN_TOKEN; admin routes are off when empty
	// ShutdownTimeout bounds how long in-flight requests may run after SIGTERM.
	ShutdownTimeout time.Duration // WIZARD_SHUTDOWN_TIMEOUT, default 20s
	// EnqueueTimeout bounds the Redis enqueue of a new job; past it the API
	// answers 503 instead of hanging.
	EnqueueTimeout time.Duration // WIZARD_ENQUEUE_TIMEOUT, default 750ms
	// AuthCacheTTL is how long a replica reuses an API key's lookup (its
	// account and tier) before asking Postgres again; a revoked key or a
	// changed tier reaches every replica within it. 0 turns the cache off;
	// at most 5 s (the contract for revocation).
	AuthCacheTTL time.Duration // WIZARD_AUTH_CACHE_TTL, default 2s
	// BodyStallTimeout is how long a request body may send nothing before
	// the API answers 408 request_timeout and closes the connection.
	BodyStallTimeout time.Duration // WIZARD_BODY_STALL_TIMEOUT, default 10s
	// TrustedProxies are the proxies whose X-Forwarded-For (the client's
	// address) and X-Forwarded-Proto are believed; with none, the TCP
	// peer is the client.
	TrustedProxies []*net.IPNet // WIZARD_TRUSTED_PROXIES: CIDRs or addresses, default none
	// AuthFailureLimit is how many unknown API keys one client address may
	// present per minute before the API stops looking its keys up.
	AuthFailureLimit int // WIZARD_AUTH_FAILURE_LIMIT, default 100, 0 = no limit
	// UploadCheckTimeout bounds the validation of one uploaded module in
	// its child process; a module that needs longer is refused.
	UploadCheckTimeout time.Duration // WIZARD_UPLOAD_CHECK_TIMEOUT, default 10s
	// UploadCheckConcurrency bounds the validation children running at
	// once on one API process (each may use 64x its module's size).
	UploadCheckConcurrency int // WIZARD_UPLOAD_CHECK_CONCURRENCY, default 2
	// StreamsPerAccount and StreamsMax bound the live output streams
	// (GET /v1/jobs/{id}/stream) one API process serves at once, per
	// account and in all; each holds a connection of a Redis pool of
	// StreamsMax connections for up to a second at a time.
	StreamsPerAccount int // WIZARD_STREAMS_PER_ACCOUNT, default 8
	StreamsMax        int // WIZARD_STREAMS_MAX, default 256
	// MetricsToken is a bearer token that may read GET /v1/admin/scaling
	// and /metrics and nothing else (the autoscaler's and Prometheus's
	// credential); when set, /metrics needs it (or the admin token).
	MetricsToken string // WIZARD_METRICS_TOKEN, default "" (/metrics open, scaling with the admin token only)
	// ScalingCacheTTL is how long a replica reuses its read of the scaling
	// figures (GET /v1/admin/scaling, wasmwizard_jobs).
	ScalingCacheTTL time.Duration // WIZARD_SCALING_CACHE_TTL, default 1s
	// ScalingSlotsPerWorker is the slots per worker the scaling figures
	// assume when no live worker has reported its WIZARD_WORKER_CONCURRENCY.
	ScalingSlotsPerWorker int // WIZARD_SCALING_SLOTS_PER_WORKER, default 2
	// WorkerLease is how old a worker's heartbeat may be for it to count
	// as live in the scaling figures (the workers' WIZARD_WORKER_LEASE).
	WorkerLease time.Duration // WIZARD_WORKER_LEASE, default 10s
}

// Defaults of the worker's liveness settings (also used when a Worker is
// built in code with them unset).
const (
	DefaultHeartbeatInterval = 2 * time.Second
	DefaultLease             = 10 * time.Second
)

// Worker is the worker binary's configuration.
type Worker struct {
	Common
	HTTPAddr    string // WIZARD_WORKER_HTTP_ADDR, default :8081
	Concurrency int    // WIZARD_WORKER_CONCURRENCY, default 2
	DataDir     string // WIZARD_DATA_DIR, default ./data
	// PollInterval is how often an idle worker asks Redis for a task
	// (asynq's TaskCheckInterval). With the doorbell, an idle worker starts
	// new jobs at once whatever this is; the poll is the fallback (see
	// docs/BENCHMARKS.md for the trade-off).
	PollInterval time.Duration // WIZARD_WORKER_POLL_INTERVAL, default 1s
	// ShutdownTimeout is how long running jobs may finish after SIGTERM before
	// they are handed back to the queue.
	ShutdownTimeout time.Duration // WIZARD_WORKER_SHUTDOWN_TIMEOUT, default 30s
	// DisableLiveOutput stops publishing jobs' output to Redis as it is
	// written; GET /v1/jobs/{id}/stream then sends a job's output when it
	// has ended.
	DisableLiveOutput bool // WIZARD_LIVE_OUTPUT=off, default on
	// LiveBufferBytes bounds the output one run holds on its way to Redis;
	// past it output is left out of the live view (and sent from Postgres
	// when the job ends) rather than slowing the guest.
	LiveBufferBytes int // WIZARD_LIVE_BUFFER_BYTES, default 256 KiB
	// DisableDoorbell turns off the fast path that picks new jobs up at once
	// from the API's doorbell (see shared/doorbell); jobs then wait for the
	// next poll.
	DisableDoorbell bool // WIZARD_WORKER_DOORBELL=off, default on
	// Executor is "sandbox" (guests in child processes, the default) or
	// "inprocess" (guests in the worker process, interrupted through context
	// checks; for debugging and comparison only).
	Executor string // WIZARD_EXECUTOR
	// SandboxMemoryMB is the OS limit on each sandbox child's private
	// writable memory (RLIMIT_DATA), the backstop behind per-job limits.
	SandboxMemoryMB int // WIZARD_SANDBOX_MEMORY_MB, default 2048, 0 = none
	// CompiledModules is how many compiled modules each child keeps in memory.
	CompiledModules int // WIZARD_SANDBOX_COMPILED_MODULES, default 64
	// AssetCacheMB bounds the parsed module asset trees each sandbox child
	// keeps in memory (shared by its jobs); it is also the largest set of
	// trees one job can mount.
	AssetCacheMB int // WIZARD_SANDBOX_ASSET_CACHE_MB, default 256
	// CompileTimeout bounds one module's compilation for a job (which its
	// timeout_ms bounds too: compilation counts against the job's time).
	CompileTimeout time.Duration // WIZARD_COMPILE_TIMEOUT, default 60s
	// ModuleCacheBytes bounds the local copies of modules under
	// WIZARD_DATA_DIR/modules; past it the least recently used are removed
	// (and fetched again from Postgres when next needed).
	ModuleCacheBytes int64 // WIZARD_MODULE_CACHE_BYTES, default 1 GiB
	// CompileCacheBytes bounds wazero's compilation cache under
	// WIZARD_DATA_DIR/wazero-cache, trimmed every minute by least recent use.
	CompileCacheBytes int64 // WIZARD_COMPILE_CACHE_BYTES, default 2 GiB

	// PrecompileTimeout bounds an upload's pre-compile, which runs only on
	// an idle sandbox child and gives it up to any job that needs it.
	PrecompileTimeout time.Duration // WIZARD_PRECOMPILE_TIMEOUT, default 30s
	// WebhookSweepAfter is how overdue a pending webhook delivery must be
	// before the reconciler enqueues it again (its task was lost).
	WebhookSweepAfter time.Duration // WIZARD_WEBHOOK_SWEEP_AFTER, default 30s
	// WebhookConcurrency is how many deliveries a worker sends at once, on
	// an asynq server of their own.
	WebhookConcurrency int // WIZARD_WEBHOOK_CONCURRENCY, default 10
	// WebhookAccountConcurrency is how many deliveries of one account are
	// sent at once across all workers, so that one account's slow
	// receivers cannot hold every delivery slot.
	WebhookAccountConcurrency int // WIZARD_WEBHOOK_ACCOUNT_CONCURRENCY, default 3
	// ReconcileInterval is the pause between reconciler passes (0: off).
	ReconcileInterval time.Duration // WIZARD_RECONCILE_INTERVAL, default 10s
	// ReconcileQueuedAfter is how long a job may sit queued before the
	// reconciler makes sure its task is in Redis.
	ReconcileQueuedAfter time.Duration // WIZARD_RECONCILE_QUEUED_AFTER, default 30s
	// ReconcileRunningGrace is added to a running job's timeout before its
	// worker is presumed lost.
	ReconcileRunningGrace time.Duration // WIZARD_RECONCILE_RUNNING_GRACE, default 2m
	// HeartbeatInterval is how often a worker records in Postgres that it
	// is alive.
	HeartbeatInterval time.Duration // WIZARD_WORKER_HEARTBEAT_INTERVAL, default 2s
	// Lease is how old a worker's last heartbeat may be before the
	// reconciler takes its running jobs back (and the worker's /healthz
	// fails); the reconciler looks every Lease/5.
	Lease time.Duration // WIZARD_WORKER_LEASE, default 10s
	// MaxAttempts is how many times a job may be started (claims, including
	// hand-backs on shutdown) before the reconciler, finding it abandoned,
	// ends it failed with worker_lost instead of queueing it again.
	MaxAttempts int // WIZARD_MAX_ATTEMPTS, default 3
	// Retention is how long finished jobs and audit rows are kept (0: forever).
	Retention time.Duration // WIZARD_RETENTION, default 720h (30 days)
	// SandboxCommand starts a sandbox child; empty means this executable
	// with the "sandbox" argument. Not read from the environment.
	SandboxCommand []string
}

type reader struct {
	getenv Getenv
	errs   []error
}

func (r *reader) str(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

func (r *reader) integer(name string, def, minimum, maximum int) int {
	return ranged(r, name, def, minimum, maximum, strconv.Atoi, "an integer")
}

func (r *reader) duration(name string, def, minimum, maximum time.Duration) time.Duration {
	return ranged(r, name, def, minimum, maximum, time.ParseDuration, "a duration such as 500ms or 2s,")
}

// ranged reads the variable name with parse: def when it is unset, and def
// with an error noted when it does not parse or lies outside [minimum,
// maximum] (want says what it should be).
func ranged[T int | time.Duration](r *reader, name string, def, minimum, maximum T, parse func(string) (T, error), want string) T {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	n, err := parse(v)
	if err != nil || n < minimum || n > maximum {
		r.errs = append(r.errs, fmt.Errorf("%s=%q: want %s from %v to %v", name, v, want, minimum, maximum))
		return def
	}
	return n
}

func (r *reader) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(r.str(name, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.errs = append(r.errs, fmt.Errorf("%s=%q: want one of %s", name, v, strings.Join(allowed, ", ")))
	return def
}

func (r *reader) boolean(name string) bool {
	switch v := strings.ToLower(r.str(name, "false")); v {
	case "true", "1", "yes":
		return true
	case "false", "0", "no":
		return false
	default:
		r.errs = append(r.errs, fmt.Errorf("%s=%q: want true or false", name, v))
		return false
	}
}

func (r *reader) addr(name, def string) string {
	v := r.str(name, def)
	if _, _, err := net.SplitHostPort(v); err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s=%q: want host:port or :port", name, v))
	}
	return v
}

// networks reads a list of CIDRs or single addresses, separated by commas
// or spaces.
func (r *reader) networks(name string) []*net.IPNet {
	var out []*net.IPNet
	for _, f := range strings.FieldsFunc(r.str(name, ""), func(c rune) bool { return c == ',' || c == ' ' || c == '\t' }) {
		if !strings.Contains(f, "/") {
			if ip := net.ParseIP(f); ip != nil {
				bits := 128
				if ip.To4() != nil {
					ip, bits = ip.To4(), 32
				}
				out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
				continue
			}
		}
		_, n, err := net.ParseCIDR(f)
		if err != nil {
			r.errs = append(r.errs, fmt.Errorf("%s: %q is neither a CIDR (10.0.0.0/8) nor an IP address", name, f))
			continue
		}
		out = append(out, n)
	}
	return out
}

func (r *reader) url(name, fallback, def string, schemes ...string) string {
	v := r.str(name, r.str(fallback, def))
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		r.errs = append(r.errs, fmt.Errorf("%s: %q is not a URL with a host", name, redact(v)))
		return v
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return v
		}
	}
	r.errs = append(r.errs, fmt.Errorf("%s: scheme %q, want %s", name, u.Scheme, strings.Join(schemes, " or ")))
	return v
}

func (r *reader) common() Common {
	return Common{
		DatabaseURL:    r.url("WIZARD_DATABASE_URL", "DATABASE_URL", DefaultDatabaseURL, "postgres", "postgresql"),
		RedisURL:       r.url("WIZARD_REDIS_URL", "REDIS_URL", DefaultRedisURL, "redis", "rediss"),
		QueueNamespace: r.str("WIZARD_QUEUE_NAMESPACE", ""),
		LogLevel:       r.oneOf("WIZARD_LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		LogFormat:      r.oneOf("WIZARD_LOG_FORMAT", "json", "json", "console"),
		DBMaxOpenConns: r.integer("WIZARD_DB_MAX_OPEN_CONNS", 20, 2, 1000),

		WebhookAllowPrivate: r.boolean("WIZARD_WEBHOOK_ALLOW_PRIVATE"),
		WebhookAllowHTTP:    r.boolean("WIZARD_WEBHOOK_ALLOW_HTTP"),
		PprofAddr:           r.str("WIZARD_PPROF_ADDR", ""),
		Tracing:             r.tracing(),
	}
}

// tracing reads whether spans are exported (see Common.Tracing).
func (r *reader) tracing() telemetry.Tracing {
	if strings.EqualFold(r.getenv("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(r.getenv("OTEL_TRACES_EXPORTER"), "none") {
		return telemetry.Tracing{}
	}
	t := telemetry.Tracing{FromEnv: r.getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || r.getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""}
	if r.str("WIZARD_OTEL_EXPORTER_OTLP_ENDPOINT", "") != "" {
		t.Endpoint = r.url("WIZARD_OTEL_EXPORTER_OTLP_ENDPOINT", "", "", "http", "https")
	}
	return t
}

// LoadAPI reads and validates the API's configuration.
func LoadAPI(getenv Getenv) (API, error) {
	r := &reader{getenv: getenv}
	c := API{
		Common:          r.common(),
		HTTPAddr:        r.addr("WIZARD_HTTP_ADDR", DefaultHTTPAddr),
		AdminToken:      strings.TrimSpace(getenv("WIZARD_ADMIN_TOKEN")),
		ShutdownTimeout: r.duration("WIZARD_SHUTDOWN_TIMEOUT", 20*time.Second, 0, 10*time.Minute),
		EnqueueTimeout:  r.duration("WIZARD_ENQUEUE_TIMEOUT", 750*time.Millisecond, 10*time.Millisecond, time.Minute),
		AuthCacheTTL:    r.duration("WIZARD_AUTH_CACHE_TTL", 2*time.Second, 0, 5*time.Second),

		BodyStallTimeout:       r.duration("WIZARD_BODY_STALL_TIMEOUT", 10*time.Second, 100*time.Millisecond, 5*time.Minute),
		TrustedProxies:         r.networks("WIZARD_TRUSTED_PROXIES"),
		AuthFailureLimit:       r.integer("WIZARD_AUTH_FAILURE_LIMIT", 100, 0, 1000000),
		UploadCheckTimeout:     r.duration("WIZARD_UPLOAD_CHECK_TIMEOUT", 10*time.Second, 100*time.Millisecond, 10*time.Minute),
		UploadCheckConcurrency: r.integer("WIZARD_UPLOAD_CHECK_CONCURRENCY", 2, 1, 256),
		StreamsPerAccount:      r.integer("WIZARD_STREAMS_PER_ACCOUNT", 8, 1, 100000),
		StreamsMax:             r.integer("WIZARD_STREAMS_MAX", 256, 1, 100000),
		MetricsToken:           strings.TrimSpace(getenv("WIZARD_METRICS_TOKEN")),
		ScalingCacheTTL:        r.duration("WIZARD_SCALING_CACHE_TTL", time.Second, 0, time.Minute),
		ScalingSlotsPerWorker:  r.integer("WIZARD_SCALING_SLOTS_PER_WORKER", 2, 1, 1024),
		WorkerLease:            r.duration("WIZARD_WORKER_LEASE", DefaultLease, time.Second, time.Hour),
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		r.errs = append(r.errs, errors.New("WIZARD_ADMIN_TOKEN: too short, use at least 16 characters (or leave it unset to turn admin routes off)"))
	}
	if c.MetricsToken != "" && len(c.MetricsToken) < 16 {
		r.errs = append(r.errs, errors.New("WIZARD_METRICS_TOKEN: too short, use at least 16 characters (or leave it unset)"))
	}
	if c.MetricsToken != "" && c.MetricsToken == c.AdminToken {
		r.errs = append(r.errs, errors.New("WIZARD_METRICS_TOKEN: must differ from WIZARD_ADMIN_TOKEN (it is the credential that may read metrics only)"))
	}
	return c, errors.Join(r.errs...)
}

// LoadWorker reads and validates the worker's configuration.
func LoadWorker(getenv Getenv) (Worker, error) {
	r := &reader{getenv: getenv}
	c := Worker{
		Common:          r.common(),
		HTTPAddr:        r.addr("WIZARD_WORKER_HTTP_ADDR", DefaultWorkerHTTPAddr),
		Concurrency:     r.integer("WIZARD_WORKER_CONCURRENCY", 2, 1, 1024),
		DataDir:         r.str("WIZARD_DATA_DIR", DefaultDataDir),
		PollInterval:    r.duration("WIZARD_WORKER_POLL_INTERVAL", time.Second, time.Millisecond, time.Minute),
		ShutdownTimeout: r.duration("WIZARD_WORKER_SHUTDOWN_TIMEOUT", 30*time.Second, time.Second, time.Hour),
		DisableDoorbell: r.oneOf("WIZARD_WORKER_DOORBELL", "on", "on", "off") == "off",

		DisableLiveOutput: r.oneOf("WIZARD_LIVE_OUTPUT", "on", "on", "off") == "off",
		LiveBufferBytes:   r.integer("WIZARD_LIVE_BUFFER_BYTES", 256<<10, 16<<10, 1<<30),

		Executor:        r.oneOf("WIZARD_EXECUTOR", "sandbox", "sandbox", "inprocess"),
		SandboxMemoryMB: r.integer("WIZARD_SANDBOX_MEMORY_MB", 2048, 0, 1<<20),
		CompiledModules: r.integer("WIZARD_SANDBOX_COMPILED_MODULES", 64, 1, 100000),
		AssetCacheMB:    r.integer("WIZARD_SANDBOX_ASSET_CACHE_MB", 256, 1, 1<<20),
		CompileTimeout:  r.duration("WIZARD_COMPILE_TIMEOUT", time.Minute, time.Second, time.Hour),

		PrecompileTimeout: r.duration("WIZARD_PRECOMPILE_TIMEOUT", 30*time.Second, time.Second, time.Hour),

		ModuleCacheBytes:  int64(r.integer("WIZARD_MODULE_CACHE_BYTES", DefaultModuleCacheBytes, 16<<20, 1<<50)),
		CompileCacheBytes: int64(r.integer("WIZARD_COMPILE_CACHE_BYTES", DefaultCompileCacheBytes, 16<<20, 1<<50)),

		WebhookSweepAfter:         r.duration("WIZARD_WEBHOOK_SWEEP_AFTER", 30*time.Second, 20*time.Second, 24*time.Hour),
		WebhookConcurrency:        r.integer("WIZARD_WEBHOOK_CONCURRENCY", 10, 1, 1000),
		WebhookAccountConcurrency: r.integer("WIZARD_WEBHOOK_ACCOUNT_CONCURRENCY", 3, 1, 1000),
		ReconcileInterval:         r.duration("WIZARD_RECONCILE_INTERVAL", 10*time.Second, 0, time.Hour),
		ReconcileQueuedAfter:      r.duration("WIZARD_RECONCILE_QUEUED_AFTER", 30*time.Second, time.Second, 24*time.Hour),
		ReconcileRunningGrace:     r.duration("WIZARD_RECONCILE_RUNNING_GRACE", 2*time.Minute, 10*time.Second, 24*time.Hour),
		HeartbeatInterval:         r.duration("WIZARD_WORKER_HEARTBEAT_INTERVAL", DefaultHeartbeatInterval, 100*time.Millisecond, time.Minute),
		Lease:                     r.duration("WIZARD_WORKER_LEASE", DefaultLease, time.Second, time.Hour),
		MaxAttempts:               r.integer("WIZARD_MAX_ATTEMPTS", 3, 1, 100),
		Retention:                 r.duration("WIZARD_RETENTION", 720*time.Hour, 0, 100*365*24*time.Hour),
	}
	if c.ReconcileRunningGrace < c.CompileTimeout+10*time.Second {
		r.errs = append(r.errs, fmt.Errorf("WIZARD_RECONCILE_RUNNING_GRACE=%s must exceed WIZARD_COMPILE_TIMEOUT=%s by at least 10s, or jobs still compiling would be taken from live workers",
			c.ReconcileRunningGrace, c.CompileTimeout))
	}
	if c.Lease < 3*c.HeartbeatInterval {
		r.errs = append(r.errs, fmt.Errorf("WIZARD_WORKER_LEASE=%s must be at least three WIZARD_WORKER_HEARTBEAT_INTERVAL=%s, or a late heartbeat would cost a live worker its jobs",
			c.Lease, c.HeartbeatInterval))
	}
	if c.SandboxMemoryMB > 0 && c.SandboxMemoryMB < 768 {
		r.errs = append(r.errs, fmt.Errorf("WIZARD_SANDBOX_MEMORY_MB=%d: too low for a Go process and a guest; use at least 768 (or 0 for no limit)", c.SandboxMemoryMB))
	}
	return c, errors.Join(r.errs...)
}

// redact hides a URL's password for error messages and logs.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable>"
	}
	return u.Redacted()
}

// Redact hides the password in a database or Redis URL.
func Redact(raw string) string { return redact(raw) }
