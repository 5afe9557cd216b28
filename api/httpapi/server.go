// Package httpapi is the HTTP API (Echo v4): routes, authentication,
// validation and error mapping.
//
// Application errors become RFC 9457 problems through one table of codes and
// statuses (errors.go).
package httpapi

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"

	"github.com/wasmwizard/wasmwizard/api/console"
	"github.com/wasmwizard/wasmwizard/api/jobwatch"
	"github.com/wasmwizard/wasmwizard/api/ratelimit"
	"github.com/wasmwizard/wasmwizard/api/scaling"
	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/deliveryqueue"
	"github.com/wasmwizard/wasmwizard/shared/doorbell"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/telemetry"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
	"github.com/wasmwizard/wasmwizard/shared/webhook"
)

// Body limits per route group (module uploads are limited by the tier while
// streaming instead).
const (
	jobBodyLimit   = 4 << 20
	adminBodyLimit = 64 << 10
)

// Enqueuer puts a task on the queue.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// TaskControl removes and interrupts queued tasks (asynq's Inspector).
type TaskControl interface {
	// DeleteTask removes a task that is not running from its queue.
	DeleteTask(queue, id string) error
	// CancelProcessing interrupts a running task on whichever worker runs it.
	CancelProcessing(id string) error
}

// Deps is what the server is built from.
type Deps struct {
	Store     *store.Store
	Redis     redis.UniversalClient
	Enqueuer  Enqueuer
	Tasks     TaskControl
	Watcher   *jobwatch.Hub
	Inspector *wasmmeta.Inspector
	Log       *zap.Logger
	Registry  *prometheus.Registry
	// Queue is the asynq queue jobs are put on.
	Queue string
	// AdminToken turns admin routes on when not empty.
	AdminToken string
	// MetricsToken may read GET /v1/admin/scaling and /metrics only; when
	// set, /metrics needs it or the admin token (empty: /metrics is open).
	MetricsToken string
	// Scaling serves GET /v1/admin/scaling (nil: the route is off).
	Scaling *scaling.Cache
	// EnqueueTimeout bounds the Redis enqueue of a job.
	EnqueueTimeout time.Duration
	// Limiter enforces the tiers' rate limits (nil: none).
	Limiter *ratelimit.Limiter
	// Webhooks decides which webhook URLs jobs may name.
	Webhooks webhook.Policy
	// WebhookQueue is the asynq queue of webhook deliveries.
	WebhookQueue string
	Version      string
	// AuthCacheTTL is how long API key lookups are reused (0: not at all).
	AuthCacheTTL time.Duration
	// BodyStallTimeout is how long a request body may send nothing before
	// the request fails with request_timeout (0: DefaultBodyStallTimeout).
	BodyStallTimeout time.Duration
	// TrustedProxies are the networks whose X-Forwarded-For and
	// X-Forwarded-Proto are believed (none: the peer's address is the
	// client's, and no forwarding header is read).
	TrustedProxies []*net.IPNet
	// AuthFailureLimit is how many unknown API keys one source address may
	// send per AuthFailureWindow before its lookups are refused (0: no
	// limit).
	AuthFailureLimit int
	// AuthFailureWindow is the period of AuthFailureLimit and of the
	// failed-authentication audit summaries (0: DefaultAuthFailureWindow).
	AuthFailureWindow time.Duration
	// LiveRedis reads jobs' live output streams (nil: Redis). Each open
	// stream uses one of its connections for up to a second at a time, so
	// it has a pool of its own, sized for StreamsMax, that cannot starve
	// the other uses of Redis.
	LiveRedis redis.UniversalClient
	// StreamsPerAccount and StreamsMax bound the live output streams this
	// process serves at once, per account and in all (0:
	// DefaultStreamsPerAccount, DefaultStreamsMax).
	StreamsPerAccount, StreamsMax int
	// StreamHeartbeat is how long a stream stays silent before a comment
	// keeps it open (0: DefaultStreamHeartbeat).
	StreamHeartbeat time.Duration
	// Tracer makes the spans of requests and enqueues (nil: tracing off, no
	// spans at all).
	Tracer trace.TracerProvider
}

// Server holds the API's dependencies and its Echo instance.
type Server struct {
	store          *store.Store
	redis          redis.UniversalClient
	enqueuer       Enqueuer
	tasks          TaskControl
	watcher        *jobwatch.Hub
	inspector      *wasmmeta.Inspector
	log            *zap.Logger
	metrics        *httpMetrics
	queue          string
	adminToken     string
	metricsToken   string
	scaling        *scaling.Cache
	enqueueTimeout time.Duration
	version        string
	queueInspector *asynq.Inspector
	limiter        *ratelimit.Limiter
	modules        *expirable.LRU[moduleKey, store.Module]
	keys           *expirable.LRU[[32]byte, store.Principal] // nil: no auth cache
	bell           *doorbell.Bell                            // nil without Redis
	webhooks       webhook.Policy
	webhookQueue   string
	deliveries     deliveryqueue.Queue // the webhooks queue
	bodyStall      time.Duration
	trusted        []*net.IPNet
	authFails      *authFailures
	background     background
	outputBudget   *semaphore.Weighted // see outputBudget
	outputWait     time.Duration
	liveRedis      redis.UniversalClient
	streams        *streamLimits
	streamPing     time.Duration
	echo           *echo.Echo
	tracer         trace.Tracer // nil: tracing off
}

// New builds the server and its routes.
func New(d Deps) *Server {
	s := &Server{
		store: d.Store, redis: d.Redis, enqueuer: d.Enqueuer, tasks: d.Tasks, watcher: d.Watcher, inspector: d.Inspector,
		log: d.Log, queue: d.Queue, adminToken: d.AdminToken, metricsToken: d.MetricsToken, scaling: d.Scaling,
		enqueueTimeout: d.EnqueueTimeout, version: d.Version,
		metrics: newHTTPMetrics(d.Registry), limiter: d.Limiter, webhooks: d.Webhooks, webhookQueue: d.WebhookQueue,
		outputBudget: newOutputBudget(), outputWait: outputWait,
		deliveries: deliveryqueue.Queue{Client: d.Enqueuer, Name: d.WebhookQueue},
	}
	s.liveRedis = d.LiveRedis
	if s.liveRedis == nil {
		s.liveRedis = d.Redis
	}
	s.streams = newStreamLimits(d.Registry, d.StreamsPerAccount, d.StreamsMax)
	s.streamPing = d.StreamHeartbeat
	if s.streamPing <= 0 {
		s.streamPing = DefaultStreamHeartbeat
	}
	if d.Scaling != nil {
		// wasmwizard_jobs{state,queue}: the scaling figures on /metrics.
		d.Registry.MustRegister(d.Scaling.Collector())
	}
	if d.Redis != nil {
		s.queueInspector = asynq.NewInspectorFromRedisClient(d.Redis)
		s.deliveries.Inspector = s.queueInspector
	}
	s.modules = expirable.NewLRU[moduleKey, store.Module](10000, nil, moduleCacheTTL)
	if d.AuthCacheTTL > 0 {
		s.keys = expirable.NewLRU[[32]byte, store.Principal](authCacheSize, nil, d.AuthCacheTTL)
	}
	if s.enqueueTimeout == 0 {
		s.enqueueTimeout = 2 * time.Second
	}
	if d.Redis != nil {
		s.bell = doorbell.NewBell(d.Redis, d.Queue, s.enqueueTimeout)
	}
	s.bodyStall = d.BodyStallTimeout
	if s.bodyStall <= 0 {
		s.bodyStall = DefaultBodyStallTimeout
	}
	s.trusted = d.TrustedProxies
	s.authFails = newAuthFailures(d.Store, d.Log, d.AuthFailureWindow, d.AuthFailureLimit)
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.IPExtractor = ipExtractor(d.TrustedProxies)
	e.HTTPErrorHandler = s.errorHandler
	e.JSONSerializer = jsonSerializer{}
	e.Use(s.withBodyGuard, withRequestID, s.withSecurityHeaders)
	if d.Tracer != nil {
		s.tracer = telemetry.Tracer(d.Tracer)
		e.Use(s.withTracing)
	}
	e.Use(s.withAccessLog)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/health", s.health)
	metrics := echo.WrapHandler(promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{Registry: d.Registry}))
	if s.metricsToken != "" {
		e.GET("/metrics", metrics, s.withMetricsToken)
	} else {
		e.GET("/metrics", metrics)
	}
	e.GET("/openapi.json", s.openAPI)
	// The web console: embedded files, checked by its tests, so a failure
	// here is a build defect, not a runtime condition.
	files, err := console.New()
	if err != nil {
		panic(err)
	}
	files.Register(e)

	v1 := e.Group("/v1", s.withAPIKey, s.withReadLimit)
	v1.GET("/account", s.getAccount)
	v1.GET("/account/usage", s.getAccountUsage)
	v1.GET("/account/keys", s.listAccountKeys)
	v1.POST("/account/webhook-secret/rotate", s.rotateWebhookSecret, bodyLimit(adminBodyLimit))
	v1.POST("/modules", s.createModule) // limited by the tier while streaming
	v1.GET("/modules", s.listModules)
	v1.GET("/modules/:id", s.getModule)
	v1.DELETE("/modules/:id", s.deleteModule)
	v1.PUT("/modules/:id/assets", s.putAssets) // limited by the tier while streaming
	v1.GET("/modules/:id/assets", s.listAssets)
	v1.DELETE("/modules/:id/assets", s.deleteAssets)
	jobs := v1.Group("/jobs", s.jobsBodyLimit)
	jobs.POST("", s.createJob)
	jobs.POST("/batch", s.createJobs)
	jobs.GET("", s.listJobs)
	jobs.GET("/:id", s.getJob)
	jobs.POST("/:id/cancel", s.cancelJob)
	jobs.GET("/:id/events", s.jobEvents)
	jobs.GET("/:id/stream", s.streamJob)
	jobs.GET("/:id/deliveries", s.jobDeliveries)
	jobs.POST("/:id/deliveries/retry", s.retryDelivery)
	jobs.GET("/:id/artifacts", s.listArtifacts)
	jobs.GET("/:id/artifacts/*", s.getArtifact)

	// The original Wasm Wizard's synchronous call, through the same queue.
	e.POST("/api/execute", s.execute, s.withAPIKey)

	if s.scaling != nil && (s.adminToken != "" || s.metricsToken != "") {
		// The autoscaler's route: the admin token or the metrics token.
		e.GET("/v1/admin/scaling", s.adminScaling, s.withMetricsToken)
	}
	if s.adminToken == "" {
		// Off: the admin routes do not exist, for any credential.
		off := func(echo.Context) error { return apperr.New(apperr.NotFound, "no such route") }
		e.Any("/v1/admin", off)
		e.Any("/v1/admin/*", off)
	} else {
		admin := e.Group("/v1/admin", s.withAdminToken, bodyLimit(adminBodyLimit))
		admin.POST("/accounts", s.adminCreateAccount)
		admin.GET("/accounts", s.adminListAccounts)
		admin.PATCH("/accounts/:id", s.adminUpdateAccount)
		admin.POST("/accounts/:id/keys", s.adminCreateKey)
		admin.GET("/keys", s.adminListKeys)
		admin.DELETE("/keys/:id", s.adminRevokeKey)
		admin.GET("/tiers", s.adminListTiers)
		admin.POST("/tiers", s.adminCreateTier)
		admin.PATCH("/tiers/:name", s.adminUpdateTier)
		admin.GET("/queues", s.adminQueues)
		admin.GET("/audit", s.adminAudit)
	}
	s.echo = e
	return s
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.echo }

// Close writes the failed-authentication summaries still pending and waits
// for the requests' background work; call it once the HTTP server has
// stopped.
func (s *Server) Close() {
	s.authFails.close()
	s.background.close()
}

// background runs the work requests leave behind them (recording a key's
// use) and lets Close wait for it; once closed, it starts nothing more.
type background struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Go runs f in a goroutine of its own, unless the server is closing.
func (b *background) Go(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.wg.Go(f)
}

func (b *background) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
}

// ipExtractor is how c.RealIP() finds the client's address: the TCP peer's,
// unless the peer is a trusted proxy, in which case X-Forwarded-For is read
// from the right, skipping trusted addresses. Echo's default would believe
// X-Forwarded-For and X-Real-IP from anyone, and its XFF extractor trusts
// loopback and private networks unless told otherwise.
func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// fromTrustedProxy says whether the request's TCP peer is a trusted proxy.
func (s *Server) fromTrustedProxy(r *http.Request) bool {
	if len(s.trusted) == 0 {
		return false
	}
	ip := net.ParseIP(echo.ExtractIPDirect()(r))
	for _, n := range s.trusted {
		if ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

type httpMetrics struct {
	requests *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "wasmwizard_http_request_duration_seconds",
		Help:    "HTTP requests by method, route, status and whether the request waited for a job (waits: ?wait=, cancel, /api/execute), and how long they took.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"method", "route", "status", "waits"})}
	reg.MustRegister(m.requests)
	return m
}

// observe records one request. Every label is bounded: the method is one of
// HTTP's standard methods or "other" (a client may send any token), the
// route is a registered template or "unmatched", never the request's path,
// the status is one the server chose, and waits is "true" or "false". A
// request that waits for a job lasts as long as the job, so latency
// percentiles and alerts leave those out (waits="false").
func (m *httpMetrics) observe(method, route string, status int, waits bool, d time.Duration) {
	m.requests.WithLabelValues(metricMethod(method), route, strconv.Itoa(status), strconv.FormatBool(waits)).Observe(d.Seconds())
}

// waitsForJob says whether a request may wait for a job to finish: one
// with a wait parameter, a cancel (it waits for the run to stop) and the
// synchronous /api/execute.
func waitsForJob(route, wait string) bool {
	return wait != "" || route == "/v1/jobs/:id/cancel" || route == "/api/execute"
}

// metricMethod maps a request method to a bounded label value.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}
