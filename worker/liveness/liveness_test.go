package liveness_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/worker/liveness"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// The heartbeat check fails once beats have failed for longer than the
// lease, and recovers with the next beat that succeeds.
func TestHeartbeatCheckFailsAfterTheLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := &clock{t: time.Unix(1_000_000, 0)}
	var down error
	h := &liveness.Heartbeat{Interval: time.Hour, Lease: 10 * time.Second, Now: c.now,
		Beat: func(context.Context) error { return down }}
	require.Error(t, h.Check(), "nothing recorded yet")
	require.NoError(t, h.Start(ctx))
	require.NoError(t, h.Check())

	down = errors.New("postgres unreachable")
	c.add(5 * time.Second)
	require.Error(t, h.Start(ctx))
	require.NoError(t, h.Check(), "one missed beat is within the lease")
	c.add(6 * time.Second)
	require.Error(t, h.Start(ctx))
	err := h.Check()
	require.Error(t, err)
	require.ErrorIs(t, err, down)

	down = nil
	require.NoError(t, h.Start(ctx))
	require.NoError(t, h.Check())
}

func TestHandler(t *testing.T) {
	t.Parallel()
	var sandbox error
	hd := liveness.Handler([]liveness.Check{
		{Name: "queue_server", Fn: func() error { return nil }},
		{Name: "sandbox", Fn: func() error { return sandbox }},
	}, nil)
	rec := httptest.NewRecorder()
	hd.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.JSONEq(t, `{"status":"ok"}`, rec.Body.String())

	sandbox = errors.New("children cannot start")
	rec = httptest.NewRecorder()
	hd.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	var body struct {
		Status string
		Checks map[string]string
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.Equal(t, "unhealthy", body.Status)
	require.Equal(t, map[string]string{"sandbox": "children cannot start"}, body.Checks)
}
