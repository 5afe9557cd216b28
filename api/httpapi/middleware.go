package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/api/ratelimit"
	"github.com/wasmwizard/wasmwizard/shared/apikey"
	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/telemetry"
)

const (
	ctxRequestID = "request_id"
	ctxPrincipal = "principal"
)

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:\-]{1,128}$`)

// withRequestID takes the client's X-Request-ID when it is sane, makes one
// otherwise, and echoes it on the response.
func withRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !validRequestID.MatchString(id) {
			id = uuid.NewString()
		}
		c.Set(ctxRequestID, id)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

func requestID(c echo.Context) string {
	id, _ := c.Get(ctxRequestID).(string)
	return id
}

// withSecurityHeaders sets the headers every response carries.
// X-Forwarded-Proto counts only from a trusted proxy.
func (s *Server) withSecurityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		r := c.Request()
		if r.TLS != nil || (r.Header.Get("X-Forwarded-Proto") == "https" && s.fromTrustedProxy(r)) {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		return next(c)
	}
}

// withTracing makes a server span of every request but the operational
// ones, a child of the client's trace context if it sent one; the submit's
// span is the one a job's trace starts from (see submit).
func (s *Server) withTracing(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		route := c.Path()
		switch route {
		case "/healthz", "/readyz", "/health", "/metrics", "":
			return next(c)
		}
		r := c.Request()
		ctx := telemetry.FromHeaders(r.Context(), r.Header)
		ctx, span := s.tracer.Start(ctx, r.Method+" "+route, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", metricMethod(r.Method)),
				attribute.String("http.route", route), attribute.String("request_id", requestID(c))))
		defer span.End()
		c.SetRequest(r.WithContext(ctx))
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
		return nil
	}
}

// withAccessLog logs every request once it is answered, and records metrics.
func (s *Server) withAccessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		elapsed := time.Since(start)
		s.metrics.observe(c.Request().Method, route, status, waitsForJob(route, c.QueryParam("wait")), elapsed)
		fields := []zap.Field{
			zap.String("request_id", requestID(c)),
			zap.String("method", c.Request().Method),
			zap.String("route", route),
			zap.Int("status", status),
			zap.Duration("latency", elapsed),
		}
		if p, ok := c.Get(ctxPrincipal).(store.Principal); ok {
			fields = append(fields, zap.String("account_id", p.AccountID.String()))
		}
		fields = append(fields, telemetry.LogFields(c.Request().Context())...)
		s.log.Info("request", fields...)
		return nil
	}
}

// withAPIKey authenticates "Authorization: Bearer ww_…".
func (s *Server) withAPIKey(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key, ok := bearer(c)
		if !ok {
			s.auditAuthFailure(c, "auth.failed", "missing", "")
			return apperr.New(apperr.Unauthorized, "send an API key as 'Authorization: Bearer <key>'")
		}
		if apikey.WellFormed(key) && !s.keyCached(key) {
			// An address that sent too many unknown keys is refused
			// further lookups (each costs Postgres) until its window
			// ends; keys this replica already knows still pass.
			if wait, over := s.authFails.throttled(c.RealIP()); over {
				s.auditAuthFailure(c, "auth.failed", reasonThrottled, "")
				c.Response().Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
				return apperr.New(apperr.RateLimited, "too many failed authentications from this address; retry later")
			}
		}
		p, err := s.lookupKey(c.Request().Context(), key)
		if err != nil {
			if apperr.CodeOf(err) == apperr.Unauthorized {
				reason, prefix := "malformed", ""
				if apikey.WellFormed(key) {
					reason, prefix = reasonUnknownKey, key[len(apikey.Marker):len(apikey.Marker)+apikey.PrefixLen]
				}
				s.auditAuthFailure(c, "auth.failed", reason, prefix)
			}
			return err
		}
		c.Set(ctxPrincipal, p)
		return next(c)
	}
}

// authCacheSize bounds the keys a replica remembers.
const authCacheSize = 10000

// lookupKey resolves a presented key, through the replica's short-lived
// cache of successful lookups (keyed by the key's SHA-256, never the key).
// A revocation or tier change made on this replica empties the cache at
// once (forgetKeys); other replicas see it when their entry expires, within
// WIZARD_AUTH_CACHE_TTL. Failed lookups are not cached: a key created a
// moment ago works at once.
func (s *Server) lookupKey(ctx context.Context, key string) (store.Principal, error) {
	cached := s.keys != nil && apikey.WellFormed(key)
	var h [32]byte
	if cached {
		h = apikey.Hash(key)
		if p, ok := s.keys.Get(h); ok {
			return p, nil
		}
	}
	p, err := s.store.LookupKey(ctx, key)
	if err != nil {
		return p, err
	}
	if cached {
		s.keys.Add(h, p)
	}
	s.recordUse(p)
	return p, nil
}

// keyCached says whether this replica holds a fresh lookup of a well-formed
// key.
func (s *Server) keyCached(key string) bool {
	if s.keys == nil {
		return false
	}
	_, ok := s.keys.Peek(apikey.Hash(key))
	return ok
}

// recordUse updates the key's last_used_at, in the background and at most
// once per store.KeyUseResolution, after a lookup that read Postgres.
func (s *Server) recordUse(p store.Principal) {
	if p.LastUsedAt != nil && time.Since(*p.LastUsedAt) < store.KeyUseResolution {
		return
	}
	s.background.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.store.TouchKey(ctx, p.KeyID); err != nil {
			s.log.Debug("key use not recorded", zap.Error(err))
		}
	})
}

// forgetKeys empties the auth cache after a change to keys, accounts or
// tiers on this replica.
func (s *Server) forgetKeys() {
	if s.keys != nil {
		s.keys.Purge()
	}
}

func principal(c echo.Context) store.Principal {
	p, _ := c.Get(ctxPrincipal).(store.Principal)
	return p
}

// withAdminToken guards admin routes with WIZARD_ADMIN_TOKEN, compared in
// constant time (hashing first hides the token's length too). The metrics
// token is recognised and refused with 403: it is a credential, but not
// one for these routes.
func (s *Server) withAdminToken(next echo.HandlerFunc) echo.HandlerFunc {
	want := sha256.Sum256([]byte(s.adminToken))
	return func(c echo.Context) error {
		tok, ok := bearer(c)
		got := sha256.Sum256([]byte(tok))
		if ok && subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
			return next(c)
		}
		if ok && s.isMetricsToken(got) {
			s.auditAuthFailure(c, "admin.auth_failed", "metrics_token", "")
			return apperr.New(apperr.Forbidden, "the metrics token may read only /v1/admin/scaling and /metrics")
		}
		reason := "wrong_token"
		if !ok {
			reason = "missing"
		}
		s.auditAuthFailure(c, "admin.auth_failed", reason, "")
		return apperr.New(apperr.Unauthorized, "admin routes need 'Authorization: Bearer <WIZARD_ADMIN_TOKEN>'")
	}
}

// isMetricsToken says, in constant time, whether a presented token's
// SHA-256 is the metrics token's.
func (s *Server) isMetricsToken(got [32]byte) bool {
	if s.metricsToken == "" {
		return false
	}
	want := sha256.Sum256([]byte(s.metricsToken))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// withMetricsToken guards GET /v1/admin/scaling and (when the metrics token
// is set) /metrics: the metrics token or the admin token, each compared in
// constant time. Both comparisons are always made.
func (s *Server) withMetricsToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok, ok := bearer(c)
		got := sha256.Sum256([]byte(tok))
		isAdmin := false
		if s.adminToken != "" {
			want := sha256.Sum256([]byte(s.adminToken))
			isAdmin = subtle.ConstantTimeCompare(got[:], want[:]) == 1
		}
		isMetrics := s.isMetricsToken(got)
		if ok && (isAdmin || isMetrics) {
			return next(c)
		}
		reason := "wrong_token"
		if !ok {
			reason = "missing"
		}
		s.auditAuthFailure(c, "admin.auth_failed", reason, "")
		return apperr.New(apperr.Unauthorized, "send 'Authorization: Bearer <WIZARD_METRICS_TOKEN>' (or the admin token)")
	}
}

func bearer(c echo.Context) (string, bool) {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// bodyLimit refuses request bodies over n bytes with request_too_large.
func bodyLimit(n int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.ContentLength > n {
				return apperr.New(apperr.RequestTooLarge, "the request body is larger than %s bytes", strconv.FormatInt(n, 10))
			}
			r.Body = &limitedBody{rc: r.Body, left: n, limit: n}
			return next(c)
		}
	}
}

// auditAuthFailure records a refused credential: never the credential
// itself, only the key's public prefix when it has the shape of a key. The
// first failure of a source address in a window is written at once, the
// others as one summary row when the window ends (authFailures). A failure
// to write the row does not change the answer.
func (s *Server) auditAuthFailure(c echo.Context, action, reason, prefix string) {
	data := map[string]any{"reason": reason, "method": metricMethod(c.Request().Method), "path": c.Path()}
	if prefix != "" {
		data["key_prefix"] = prefix
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), time.Second)
	defer cancel()
	s.authFails.record(ctx, action, c.RealIP(), reason, prefix, requestID(c), data)
}

// withReadLimit limits reads (GET) per key and minute, as the key's tier
// says. If Redis cannot answer, reads are let through (fail open): they are
// cheap, authenticated and served by Postgres; runs fail closed instead.
func (s *Server) withReadLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		m := c.Request().Method
		if s.limiter == nil || (m != http.MethodGet && m != http.MethodHead) {
			return next(c)
		}
		p := principal(c)
		d, err := s.limiter.Reads(c.Request().Context(), p.KeyID, p.Tier.ReadsPerMinute)
		if err != nil {
			s.log.Warn("read limit unavailable; letting the read through", zap.Error(err))
			return next(c)
		}
		ratelimit.SetHeaders(c.Response().Header(), d)
		if !d.Allowed {
			return d.Err()
		}
		return next(c)
	}
}
