package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// getAccountUsage is GET /v1/account/usage: the caller's runs per hour for
// the last ?hours= hours (default 24, at most 168), with their outcomes.
func (s *Server) getAccountUsage(c echo.Context) error {
	hours := 24
	if raw := c.QueryParam("hours"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > store.MaxUsageHours {
			return apperr.Validation(apperr.FieldError{Field: "hours",
				Message: "must be an integer from 1 to " + strconv.Itoa(store.MaxUsageHours)})
		}
		hours = n
	}
	data, err := s.store.HourlyUsage(c.Request().Context(), principal(c).AccountID, hours)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, dataView[usageHourView]{Data: viewAll(data, viewUsageHour)})
}

// usageHourView is an hour of GET /v1/account/usage.
type usageHourView struct {
	Hour      time.Time      `json:"hour"`
	Runs      int            `json:"runs"`
	Succeeded int            `json:"succeeded"`
	Failures  map[string]int `json:"failures"` // runs by error code
}

func viewUsageHour(h store.UsageHour) usageHourView {
	return usageHourView{Hour: h.Hour, Runs: h.Runs, Succeeded: h.Succeeded, Failures: h.Failures}
}
