package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, statusView{Status: "ok"})
}

// The health answers.
type (
	// statusView is GET /healthz.
	statusView struct {
		Status string `json:"status"`
	}
	// readyView is GET /readyz.
	readyView struct {
		Postgres bool `json:"postgres"`
		Redis    bool `json:"redis"`
	}
	// healthView is GET /health; Queue is left out when a dependency is
	// down or the queues cannot be listed.
	healthView struct {
		Postgres depStatus  `json:"postgres"`
		Queue    *queueSums `json:"queue,omitempty"`
		Redis    depStatus  `json:"redis"`
		Status   string     `json:"status"`
		Version  string     `json:"version"`
	}
	// queueSums is the health's queue: the job queues and their tasks.
	queueSums struct {
		Active  int64 `json:"active"`
		Pending int64 `json:"pending"`
		Queues  int   `json:"queues"`
	}
)

type depStatus struct {
	OK        bool    `json:"ok"`
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
}

func (s *Server) checkDeps(ctx context.Context) (pg, rd depStatus) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	t := time.Now()
	if err := s.store.Ping(ctx); err != nil {
		pg.Error = "unreachable"
	} else {
		pg.OK = true
	}
	pg.LatencyMS = float64(time.Since(t).Microseconds()) / 1000
	t = time.Now()
	if err := s.redis.Ping(ctx).Err(); err != nil {
		rd.Error = "unreachable"
	} else {
		rd.OK = true
	}
	rd.LatencyMS = float64(time.Since(t).Microseconds()) / 1000
	return pg, rd
}

// readyz answers 200 only when Postgres and Redis both answer within a second.
func (s *Server) readyz(c echo.Context) error {
	pg, rd := s.checkDeps(c.Request().Context())
	status := http.StatusOK
	if !pg.OK || !rd.OK {
		status = http.StatusServiceUnavailable
	}
	return c.JSON(status, readyView{Postgres: pg.OK, Redis: rd.OK})
}

// health is the detailed view: version, dependency latency, queue depth.
func (s *Server) health(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), time.Second)
	defer cancel()
	pg, rd := s.checkDeps(ctx)
	body := healthView{Version: s.version, Postgres: pg, Redis: rd}
	status := http.StatusOK
	if !pg.OK || !rd.OK {
		status = http.StatusServiceUnavailable
		body.Status = "degraded"
	} else {
		body.Status = "ok"
		// asynq keeps pending and active tasks in a list per queue: LLEN is
		// O(1), unlike asynq's GetQueueInfo. Summed over this deployment's
		// job queues (one per tier, and the base queue).
		if names, err := s.inspectorQueues(); err == nil {
			var pending, active int64
			for _, q := range names {
				if q == s.webhookQueue {
					continue
				}
				p, _ := s.redis.LLen(ctx, "asynq:{"+q+"}:pending").Result()
				a, _ := s.redis.LLen(ctx, "asynq:{"+q+"}:active").Result()
				pending, active = pending+p, active+a
			}
			body.Queue = &queueSums{Queues: len(names), Pending: pending, Active: active}
		}
	}
	return c.JSON(status, body)
}
