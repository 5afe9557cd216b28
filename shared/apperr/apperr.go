// Package apperr defines the application's error type: a code, a detail,
// field errors.
//
// The code is stable, the detail human-readable, the field errors optional.
// Every layer returns these (or wraps them); the HTTP layer maps codes to
// statuses in exactly one table.
package apperr

import (
	"errors"
	"fmt"
)

// Code is a stable snake_case error code that clients may rely on.
type Code string

// The codes the platform answers with. Job failure codes (exit_nonzero, trap,
// ...) live with the job model, not here: they describe a job's outcome, not
// a failed request.
const (
	Invalid              Code = "validation_failed"
	InvalidModule        Code = "invalid_module"
	ModuleTooLarge       Code = "module_too_large"
	UnsupportedMediaType Code = "unsupported_media_type"
	NotFound             Code = "not_found"
	Unauthorized         Code = "unauthorized"
	Forbidden            Code = "forbidden"
	Conflict             Code = "conflict"
	RateLimited          Code = "rate_limited"
	QuotaExceeded        Code = "quota_exceeded"
	IdempotencyKeyReused Code = "idempotency_key_reused"
	Unavailable          Code = "unavailable"
	Internal             Code = "internal"
	MethodNotAllowed     Code = "method_not_allowed"
	RequestTooLarge      Code = "request_too_large"
	// RequestTimeout: the client stopped sending its request body.
	RequestTimeout Code = "request_timeout"
	// InputTooLarge: a job request's files pass the tier's max_input_bytes.
	InputTooLarge Code = "input_too_large"
	// AssetsTooLarge: a module's asset trees would pass the tier's
	// max_asset_bytes.
	AssetsTooLarge Code = "assets_too_large"
	// InvalidArchive: an asset upload is not a tar (or gzipped tar) the
	// platform accepts.
	InvalidArchive Code = "invalid_archive"
)

// FieldError names one invalid request field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is the application error. Detail is shown to the client; Err is the
// internal cause and is logged, never shown.
type Error struct {
	Code   Code
	Detail string
	Fields []FieldError
	Err    error
}

func (e *Error) Error() string {
	msg := string(e.Code)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error with a code and a formatted detail.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with a code and detail whose internal cause is err.
func Wrap(err error, code Code, detail string) *Error {
	return &Error{Code: code, Detail: detail, Err: err}
}

// Validation returns a validation_failed error listing the invalid fields.
func Validation(fields ...FieldError) *Error {
	detail := "the request is invalid"
	if len(fields) == 1 {
		detail = fields[0].Field + ": " + fields[0].Message
	} else if len(fields) > 1 {
		detail = fmt.Sprintf("%d fields are invalid", len(fields))
	}
	return &Error{Code: Invalid, Detail: detail, Fields: fields}
}

// CodeOf returns the code of the first *Error in err's chain, or Internal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// As returns the first *Error in err's chain, or nil.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
