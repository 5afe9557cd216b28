package httpapi

import (
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

const (
	defaultPageLimit = 50
	maxPageLimit     = 200
)

// pathID parses the :id path parameter. A malformed ID is not found, like
// any ID the caller cannot see.
func pathID(c echo.Context, what string) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return uuid.Nil, apperr.New(apperr.NotFound, "%s %q not found", what, c.Param("id"))
	}
	return id, nil
}

// pageLimit reads ?limit= (default 50, at most 200).
func pageLimit(c echo.Context) (int, error) {
	raw := c.QueryParam("limit")
	if raw == "" {
		return defaultPageLimit, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > maxPageLimit {
		return 0, apperr.Validation(apperr.FieldError{Field: "limit", Message: "must be an integer from 1 to 200"})
	}
	return n, nil
}

// createdRange reads ?created_after= and ?created_before= (RFC 3339).
func createdRange(c echo.Context, after, before *time.Time) []apperr.FieldError {
	var errs []apperr.FieldError
	for _, q := range []struct {
		name string
		dst  *time.Time
	}{{"created_after", after}, {"created_before", before}} {
		if v := c.QueryParam(q.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				errs = append(errs, apperr.FieldError{Field: q.name, Message: "must be an RFC 3339 time such as 2026-01-02T15:04:05Z"})
			}
			*q.dst = t
		}
	}
	return errs
}
