package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/httpapi"
)

// get sends a GET with the given bearer value (none when empty) and extra
// headers, and returns the response with its body read.
func (a testAPI) get(t *testing.T, path, token string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.url+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res
}

// authRows returns the data of the auth.failed audit rows, oldest first.
func (a testAPI) authRows(t *testing.T) []map[string]any {
	t.Helper()
	var raw [][]byte
	require.NoError(t, a.st.DB().SelectContext(context.Background(), &raw,
		`SELECT data FROM audit_events WHERE action = 'auth.failed' ORDER BY id`))
	out := make([]map[string]any, len(raw))
	for i, r := range raw {
		require.NoError(t, json.Unmarshal(r, &out[i]))
	}
	return out
}

// unknownKey is a well-formed key that no account has, with its own prefix.
func unknownKey(i int) string {
	const digits = "0123456789"
	p := []byte("ZZZZZZZZ")
	p[6], p[7] = digits[i/10%10], digits[i%10]
	return "ww_" + string(p) + strings.Repeat("Z", 24)
}

// Failed authentications from one address are audited as one row at once
// and one summary row per window, not one row each.
func TestFailedAuthIsAuditedOncePerAddressAndWindow(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, func(_ *redis.Client, d *httpapi.Deps) { d.AuthFailureWindow = time.Hour })
	for i := range 50 {
		require.Equal(t, http.StatusUnauthorized, a.get(t, "/v1/modules", unknownKey(i), nil).StatusCode)
	}
	for range 10 {
		require.Equal(t, http.StatusUnauthorized, a.get(t, "/v1/account", "", nil).StatusCode)
	}
	rows := a.authRows(t)
	require.Len(t, rows, 1, "the first failure, at once")
	require.Equal(t, "unknown_or_revoked", rows[0]["reason"])
	require.Equal(t, "ZZZZZZ00", rows[0]["key_prefix"])
	require.Equal(t, "127.0.0.1", rows[0]["remote_ip"])

	a.srv.Close() // ends the window: the summary is written
	rows = a.authRows(t)
	require.Len(t, rows, 2)
	sum := rows[1]
	require.Equal(t, true, sum["aggregated"])
	require.Equal(t, "127.0.0.1", sum["remote_ip"])
	require.EqualValues(t, 59, sum["count"])
	require.Equal(t, map[string]any{"unknown_or_revoked": 49.0, "missing": 10.0}, sum["reasons"])
	require.Len(t, sum["key_prefixes"], 16, "a bounded number of prefixes")
	require.EqualValues(t, 49-16, sum["other_key_prefixes"])
}

// An address that presents too many unknown keys in a window gets 429
// without a lookup; keys the replica knows still pass, and the summary
// counts the refusals.
func TestUnknownKeysAreThrottledPerAddress(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, func(_ *redis.Client, d *httpapi.Deps) {
		d.AuthFailureLimit, d.AuthFailureWindow, d.AuthCacheTTL = 5, time.Hour, 5*time.Second
	})
	require.Equal(t, http.StatusOK, a.get(t, "/v1/account", a.key, nil).StatusCode, "cached from now on")
	for i := range 5 {
		require.Equal(t, http.StatusUnauthorized, a.get(t, "/v1/account", unknownKey(i), nil).StatusCode)
	}
	res := a.get(t, "/v1/account", unknownKey(99), nil)
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	require.NotEmpty(t, res.Header.Get("Retry-After"))
	require.Equal(t, http.StatusOK, a.get(t, "/v1/account", a.key, nil).StatusCode, "a known key still passes")
	require.Equal(t, http.StatusUnauthorized, a.get(t, "/v1/account", "", nil).StatusCode, "no credential: no lookup to spare")
	require.Equal(t, http.StatusUnauthorized, a.get(t, "/v1/account", "not-a-key", nil).StatusCode, "malformed: no lookup either")

	a.srv.Close()
	rows := a.authRows(t)
	require.Len(t, rows, 2)
	require.Equal(t, map[string]any{"unknown_or_revoked": 4.0, "throttled": 1.0, "missing": 1.0, "malformed": 1.0}, rows[1]["reasons"])
}

// X-Forwarded-For and X-Forwarded-Proto count only from a trusted proxy:
// by default nobody's, so a client cannot choose the address its failures
// are audited (and limited) under.
func TestForwardingHeadersAreTrustedOnlyFromTrustedProxies(t *testing.T) {
	t.Parallel()
	forwarded := map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.10", "X-Forwarded-Proto": "https"}

	t.Run("no trusted proxy", func(t *testing.T) {
		t.Parallel()
		a := newTestAPI(t, func(*redis.Client, *httpapi.Deps) {})
		res := a.get(t, "/v1/account", "", forwarded)
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)
		require.Empty(t, res.Header.Get("Strict-Transport-Security"))
		require.Equal(t, "127.0.0.1", a.authRows(t)[0]["remote_ip"])
	})
	t.Run("loopback trusted", func(t *testing.T) {
		t.Parallel()
		_, loopback, err := net.ParseCIDR("127.0.0.0/8")
		require.NoError(t, err)
		a := newTestAPI(t, func(_ *redis.Client, d *httpapi.Deps) { d.TrustedProxies = []*net.IPNet{loopback} })
		res := a.get(t, "/v1/account", "", forwarded)
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)
		require.NotEmpty(t, res.Header.Get("Strict-Transport-Security"))
		require.Equal(t, "203.0.113.9", a.authRows(t)[0]["remote_ip"])
	})
}

// When a window ends, its summary is written without waiting for shutdown,
// and the next failure from the address opens a new window with a row of
// its own.
func TestFailedAuthSummaryIsWrittenWhenTheWindowEnds(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, func(_ *redis.Client, d *httpapi.Deps) { d.AuthFailureWindow = time.Second })
	for range 3 {
		require.Equal(t, http.StatusUnauthorized, a.get(t, "/v1/account", "", nil).StatusCode)
	}
	require.Eventually(t, func() bool { return len(a.authRows(t)) >= 2 }, 10*time.Second, 20*time.Millisecond)
	rows := a.authRows(t)
	require.Len(t, rows, 2)
	require.Equal(t, true, rows[1]["aggregated"])
	require.EqualValues(t, 2, rows[1]["count"])

	require.Equal(t, http.StatusUnauthorized, a.get(t, "/v1/account", "", nil).StatusCode)
	rows = a.authRows(t)
	require.Len(t, rows, 3)
	require.Nil(t, rows[2]["aggregated"], "a new window starts with a row of its own")
}
