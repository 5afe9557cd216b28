package httpapi

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

// adminQueues reports each queue's depth by state. asynq's queue
// inspection is O(groups) in Redis: fine for an operator's request, not for
// a probe.
func (s *Server) adminQueues(c echo.Context) error {
	names, err := s.inspectorQueues()
	if err != nil {
		return apperr.Wrap(err, apperr.Unavailable, "the queue is unavailable")
	}
	out := []map[string]any{}
	for _, q := range names {
		info, err := s.queueInspector.GetQueueInfo(q)
		if err != nil {
			continue
		}
		out = append(out, map[string]any{"name": q, "pending": info.Pending, "active": info.Active,
			"scheduled": info.Scheduled, "retry": info.Retry, "archived": info.Archived, "completed": info.Completed,
			"latency_ms": info.Latency.Milliseconds(), "paused": info.Paused})
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out})
}

func (s *Server) inspectorQueues() ([]string, error) {
	all, err := s.queueInspector.Queues()
	if err != nil {
		return nil, err
	}
	// Only this deployment's queues: its base queue, its tier queues and
	// its webhook queue.
	var mine []string
	for _, q := range all {
		if q == s.queue || strings.HasPrefix(q, s.queue+":") || q == s.webhookQueue {
			mine = append(mine, q)
		}
	}
	return mine, nil
}
