package httpapi

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// The request metric's labels take bounded values whatever the clients
// send: methods outside HTTP's standard ones are "other", routes are
// templates (never the request's path), statuses are the server's.
func TestHTTPMetricLabelsAreBounded(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	s := New(Deps{Log: zap.NewNop(), Registry: reg})
	h := s.Handler()
	for i, m := range []string{"GET", "BREW", "PROPFIND", "X-" + strings.Repeat("A", 100), "get", "FOO1", "FOO2"} {
		for _, path := range []string{"/healthz", "/nowhere/" + strings.Repeat("x", i+1), "/v1/admin/q" + strings.Repeat("z", i)} {
			req := httptest.NewRequest(m, path, nil)
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
	}
	routes := map[string]bool{"unmatched": true}
	for _, r := range s.echo.Routes() {
		routes[r.Path] = true
	}
	methods := map[string]bool{}
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "wasmwizard_http_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "method":
					methods[l.GetValue()] = true
				case "route":
					require.True(t, routes[l.GetValue()], "route label %q is not a route template", l.GetValue())
				}
			}
		}
	}
	require.Equal(t, map[string]bool{"GET": true, "other": true}, methods)
}
