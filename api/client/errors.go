package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Error is an RFC 9457 problem the API answered (docs/API.md, "Errors"),
// or, when the answer was not a problem, what the client could tell of it.
// Match it with errors.As and program against Code:
//
//	var e *client.Error
//	if errors.As(err, &e) && e.Code == client.CodeNotFound { … }
type Error struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail"`
	Code      string       `json:"code"`
	RequestID string       `json:"request_id"`
	Fields    []FieldError `json:"errors,omitempty"`
	// RetryAfter is the answer's Retry-After, when it had one.
	RetryAfter time.Duration `json:"-"`
}

// FieldError is one invalid field of a validation_failed problem.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// The stable problem codes of docs/API.md.
const (
	CodeValidationFailed     = "validation_failed"
	CodeInvalidModule        = "invalid_module"
	CodeModuleTooLarge       = "module_too_large"
	CodeRequestTooLarge      = "request_too_large"
	CodeRequestTimeout       = "request_timeout"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeUnauthorized         = "unauthorized"
	CodeForbidden            = "forbidden"
	CodeConflict             = "conflict"
	CodeRateLimited          = "rate_limited"
	CodeQuotaExceeded        = "quota_exceeded"
	CodeIdempotencyKeyReused = "idempotency_key_reused"
	CodeUnavailable          = "unavailable"
	CodeInternal             = "internal"
)

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", e.Status, e.Code)
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if e.RequestID != "" {
		b.WriteString(" (request " + e.RequestID + ")")
	}
	return b.String()
}

// maxProblemBytes bounds how much of an error answer is read.
const maxProblemBytes = 64 << 10

// problemFrom reads an error answer. A body that is not a problem still
// gives an Error with the status and a code derived from it.
func problemFrom(res *http.Response) *Error {
	body, _ := io.ReadAll(io.LimitReader(res.Body, maxProblemBytes))
	e := &Error{}
	if err := json.Unmarshal(body, e); err != nil || e.Code == "" {
		e = &Error{Title: http.StatusText(res.StatusCode), Code: codeForStatus(res.StatusCode),
			Detail: strings.TrimSpace(string(truncate(body, 200)))}
	}
	e.Status = res.StatusCode
	if e.RequestID == "" {
		e.RequestID = res.Header.Get("X-Request-ID")
	}
	e.RetryAfter = retryAfter(res.Header.Get("Retry-After"), time.Now())
	return e
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// codeForStatus names the code of an answer that carried none (a proxy's
// error page, say).
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeValidationFailed
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusConflict:
		return CodeConflict
	case http.StatusTooManyRequests:
		return CodeRateLimited
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return CodeUnavailable
	}
	return CodeInternal
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var secs int64
	if _, err := fmt.Sscanf(v, "%d", &secs); err == nil && secs >= 0 {
		return time.Duration(min(secs, 24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}
