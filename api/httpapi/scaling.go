package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// adminScaling answers GET /v1/admin/scaling: queued and running jobs per
// queue (every tier's), the slots per worker and the workers they need,
// from Postgres through this replica's short cache (api/scaling). A failed
// read is 503 unavailable, never stale figures: the autoscaler's fallback
// takes over.
func (s *Server) adminScaling(c echo.Context) error {
	f, err := s.scaling.Figures(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, f)
}
