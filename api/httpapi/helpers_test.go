package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/api/httpapi"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

// testAPI is an httpapi.Server on its own database and Redis namespace, with
// one account and key, served by httptest.
type testAPI struct {
	st      *store.Store
	rdb     *redis.Client
	url     string
	key     string
	account store.Account
	queue   string
	srv     *httpapi.Server
}

// newTestAPI builds the server; adjust fills the dependencies a test varies
// (the enqueuer, the task control, timeouts).
func newTestAPI(t *testing.T, adjust func(rdb *redis.Client, d *httpapi.Deps)) testAPI {
	t.Helper()
	ctx := context.Background()
	a := testAPI{st: testenv.Store(t), queue: testenv.Namespace(t) + "jobs"}
	opt, err := redis.ParseURL(testenv.RedisURL())
	require.NoError(t, err)
	a.rdb = redis.NewClient(opt)
	t.Cleanup(func() { _ = a.rdb.Close() })
	d := httpapi.Deps{Store: a.st, Redis: a.rdb, Inspector: wasmmeta.NewInspector(ctx), Log: zap.NewNop(),
		Registry: prometheus.NewRegistry(), Queue: a.queue}
	adjust(a.rdb, &d)
	a.srv = httpapi.New(d)
	t.Cleanup(a.srv.Close) // after the HTTP server closed
	ts := httptest.NewServer(a.srv.Handler())
	t.Cleanup(ts.Close)
	a.url = ts.URL
	a.account, err = a.st.CreateAccount(ctx, store.Actor{Name: "t"}, "a", "free")
	require.NoError(t, err)
	_, a.key, err = a.st.CreateKey(ctx, store.Actor{Name: "t"}, a.account.ID, "")
	require.NoError(t, err)
	return a
}

// post sends an authenticated POST and decodes the JSON answer.
func (a testAPI) post(t *testing.T, path, ct string, body []byte) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, a.url+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+a.key)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), "%s", b)
	return res.StatusCode, m
}
