package httpapi

import (
	"net/http"
	"strings"

	"github.com/hibiken/asynq"
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
	out := dataView[queueView]{Data: []queueView{}}
	for _, q := range names {
		info, err := s.queueInspector.GetQueueInfo(q)
		if err != nil {
			continue
		}
		out.Data = append(out.Data, viewQueue(q, info))
	}
	return c.JSON(http.StatusOK, out)
}

// queueView is a queue of GET /v1/admin/queues: its tasks by state.
type queueView struct {
	Active    int    `json:"active"`
	Archived  int    `json:"archived"`
	Completed int    `json:"completed"`
	LatencyMS int64  `json:"latency_ms"`
	Name      string `json:"name"`
	Paused    bool   `json:"paused"`
	Pending   int    `json:"pending"`
	Retry     int    `json:"retry"`
	Scheduled int    `json:"scheduled"`
}

func viewQueue(name string, q *asynq.QueueInfo) queueView {
	return queueView{Active: q.Active, Archived: q.Archived, Completed: q.Completed,
		LatencyMS: q.Latency.Milliseconds(), Name: name, Paused: q.Paused, Pending: q.Pending, Retry: q.Retry,
		Scheduled: q.Scheduled}
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
