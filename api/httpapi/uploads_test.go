package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/httpapi"
	"github.com/wasmwizard/wasmwizard/api/ratelimit"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// upload posts a module and returns the status, headers and error code.
func (a testAPI) upload(t *testing.T, content []byte) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, a.url+"/v1/modules", bytes.NewReader(content))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Content-Type", "application/wasm")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(res.Body)
	var body struct {
		Code string `json:"code"`
	}
	require.NoError(t, json.Unmarshal(b, &body), "%s", b)
	return res.StatusCode, res.Header, body.Code
}

func newLimitedAPI(t *testing.T, tierUpdate string) testAPI {
	t.Helper()
	a := newTestAPI(t, func(rdb *redis.Client, d *httpapi.Deps) {
		d.Limiter = ratelimit.New(rdb, strings.TrimSuffix(d.Queue, "jobs"))
		d.Enqueuer = asynq.NewClientFromRedisClient(rdb)
	})
	_, err := a.st.DB().ExecContext(context.Background(), `UPDATE tiers SET `+tierUpdate+` WHERE name = 'free'`)
	require.NoError(t, err)
	return a
}

func TestUploadsPerMinute(t *testing.T) {
	t.Parallel()
	a := newLimitedAPI(t, `uploads_per_minute = 2`)
	for _, f := range []string{fixtures.Hello, fixtures.Hello} {
		status, h, _ := a.upload(t, fixtures.Bytes(f))
		require.Contains(t, []int{http.StatusCreated, http.StatusOK}, status)
		require.Equal(t, "2", h.Get("RateLimit-Limit"))
	}
	status, h, code := a.upload(t, fixtures.Bytes(fixtures.Echo))
	require.Equal(t, http.StatusTooManyRequests, status)
	require.Equal(t, "rate_limited", code)
	require.NotEmpty(t, h.Get("Retry-After"))
	require.Equal(t, "0", h.Get("RateLimit-Remaining"))
}

func TestMaxModules(t *testing.T) {
	t.Parallel()
	a := newLimitedAPI(t, `max_modules = 1`)
	status, _, _ := a.upload(t, fixtures.Bytes(fixtures.Hello))
	require.Equal(t, http.StatusCreated, status)
	// The same bytes again: the module the account has, no quota used.
	status, _, _ = a.upload(t, fixtures.Bytes(fixtures.Hello))
	require.Equal(t, http.StatusOK, status)
	status, _, code := a.upload(t, fixtures.Bytes(fixtures.Echo))
	require.Equal(t, http.StatusTooManyRequests, status)
	require.Equal(t, "quota_exceeded", code)
}

func TestMaxModuleStorageBytes(t *testing.T) {
	t.Parallel()
	hello, echo := len(fixtures.Bytes(fixtures.Hello)), len(fixtures.Bytes(fixtures.Echo))
	a := newLimitedAPI(t, `max_module_storage_bytes = `+itoa(hello+echo-1))
	status, _, _ := a.upload(t, fixtures.Bytes(fixtures.Hello))
	require.Equal(t, http.StatusCreated, status)
	status, _, code := a.upload(t, fixtures.Bytes(fixtures.Echo))
	require.Equal(t, http.StatusTooManyRequests, status)
	require.Equal(t, "quota_exceeded", code)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
