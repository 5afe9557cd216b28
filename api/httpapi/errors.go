package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

// statusOf is the one table from error codes to HTTP statuses.
var statusOf = map[apperr.Code]int{
	apperr.Invalid:              http.StatusBadRequest,
	apperr.InvalidModule:        http.StatusBadRequest,
	apperr.ModuleTooLarge:       http.StatusRequestEntityTooLarge,
	apperr.InputTooLarge:        http.StatusRequestEntityTooLarge,
	apperr.AssetsTooLarge:       http.StatusRequestEntityTooLarge,
	apperr.InvalidArchive:       http.StatusBadRequest,
	apperr.RequestTooLarge:      http.StatusRequestEntityTooLarge,
	apperr.RequestTimeout:       http.StatusRequestTimeout,
	apperr.UnsupportedMediaType: http.StatusUnsupportedMediaType,
	apperr.NotFound:             http.StatusNotFound,
	apperr.MethodNotAllowed:     http.StatusMethodNotAllowed,
	apperr.Unauthorized:         http.StatusUnauthorized,
	apperr.Forbidden:            http.StatusForbidden,
	apperr.Conflict:             http.StatusConflict,
	apperr.RateLimited:          http.StatusTooManyRequests,
	apperr.QuotaExceeded:        http.StatusTooManyRequests,
	apperr.IdempotencyKeyReused: http.StatusUnprocessableEntity,
	apperr.Unavailable:          http.StatusServiceUnavailable,
	apperr.Internal:             http.StatusInternalServerError,
}

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Status    int                 `json:"status"`
	Detail    string              `json:"detail"`
	Code      apperr.Code         `json:"code"`
	RequestID string              `json:"request_id"`
	Errors    []apperr.FieldError `json:"errors,omitempty"`
}

// problemFor turns any error into the problem the client sees. Internal
// causes are never shown.
func problemFor(err error, requestID string) Problem {
	e := apperr.As(err)
	if e == nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			e = fromEcho(he)
		} else {
			e = &apperr.Error{Code: apperr.Internal, Detail: "an internal error occurred; quote the request_id when reporting it"}
		}
	}
	status, ok := statusOf[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	detail := e.Detail
	if detail == "" {
		detail = http.StatusText(status)
	}
	return Problem{
		Type:      "urn:wasmwizard:error:" + string(e.Code),
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    detail,
		Code:      e.Code,
		RequestID: requestID,
		Errors:    e.Fields,
	}
}

// echoErrors are the problems of Echo's own errors, by status.
var echoErrors = map[int]struct {
	code   apperr.Code
	detail string
}{
	http.StatusNotFound:              {apperr.NotFound, "no such route"},
	http.StatusMethodNotAllowed:      {apperr.MethodNotAllowed, "method not allowed on this route"},
	http.StatusRequestEntityTooLarge: {apperr.RequestTooLarge, "the request body is too large for this route"},
	http.StatusUnsupportedMediaType:  {apperr.UnsupportedMediaType, "unsupported content type"},
	http.StatusUnauthorized:          {apperr.Unauthorized, "missing or invalid credentials"},
	http.StatusServiceUnavailable:    {apperr.Unavailable, "the service is unavailable"},
	http.StatusBadRequest:            {apperr.Invalid, "bad request"},
}

func fromEcho(he *echo.HTTPError) *apperr.Error {
	if e, ok := echoErrors[he.Code]; ok {
		return &apperr.Error{Code: e.code, Detail: e.detail}
	}
	return &apperr.Error{Code: apperr.Internal, Detail: "an internal error occurred"}
}

// errorHandler is Echo's HTTPErrorHandler: every error leaves as a problem.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	p := problemFor(err, requestID(c))
	if p.Status >= 500 {
		s.log.Error("request failed", zap.String("request_id", p.RequestID),
			zap.String("code", string(p.Code)), zap.Error(err))
	}
	if p.Status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="wasmwizard"`)
	}
	if p.Code == apperr.Unavailable || (p.Status == http.StatusTooManyRequests && c.Response().Header().Get("Retry-After") == "") {
		c.Response().Header().Set("Retry-After", "1")
	}
	body, _ := json.Marshal(p)
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	c.Response().WriteHeader(p.Status)
	if c.Request().Method != http.MethodHead {
		_, _ = c.Response().Write(body)
	}
}
