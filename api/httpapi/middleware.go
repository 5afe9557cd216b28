package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/store"
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
func withSecurityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if c.Request().TLS != nil || c.Request().Header.Get("X-Forwarded-Proto") == "https" {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		return next(c)
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
		s.metrics.observe(c.Request().Method, route, status, elapsed)
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
		s.log.Info("request", fields...)
		return nil
	}
}

// withAPIKey authenticates "Authorization: Bearer ww_…".
func (s *Server) withAPIKey(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key, ok := bearer(c)
		if !ok {
			return apperr.New(apperr.Unauthorized, "send an API key as 'Authorization: Bearer <key>'")
		}
		p, err := s.store.LookupKey(c.Request().Context(), key)
		if err != nil {
			return err
		}
		c.Set(ctxPrincipal, p)
		return next(c)
	}
}

func principal(c echo.Context) store.Principal {
	p, _ := c.Get(ctxPrincipal).(store.Principal)
	return p
}

// withAdminToken guards admin routes with WIZARD_ADMIN_TOKEN, compared in
// constant time (hashing first hides the token's length too).
func (s *Server) withAdminToken(next echo.HandlerFunc) echo.HandlerFunc {
	want := sha256.Sum256([]byte(s.adminToken))
	return func(c echo.Context) error {
		tok, ok := bearer(c)
		got := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return apperr.New(apperr.Unauthorized, "admin routes need 'Authorization: Bearer <WIZARD_ADMIN_TOKEN>'")
		}
		return next(c)
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
