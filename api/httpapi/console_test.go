package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/console"
)

// The API serves the console with the headers of every response, its own
// Content-Security-Policy instead of the API's, and no credential needed;
// the API's routes keep the API's policy.
func TestConsoleIsServed(t *testing.T) {
	t.Parallel()
	s := routeServer("")
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	page := get("/console/")
	require.Equal(t, http.StatusOK, page.Code)
	h := page.Header()
	require.Equal(t, console.Policy, h.Get("Content-Security-Policy"))
	require.Equal(t, "DENY", h.Get("X-Frame-Options"))
	require.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
	require.Equal(t, "no-referrer", h.Get("Referrer-Policy"))
	require.Equal(t, "same-origin", h.Get("Cross-Origin-Opener-Policy"))
	require.NotEmpty(t, h.Get("X-Request-ID"))

	missing := get("/console/missing.js")
	require.Equal(t, http.StatusNotFound, missing.Code)
	require.Equal(t, "application/problem+json", missing.Header().Get("Content-Type"))

	require.Equal(t, "default-src 'none'; frame-ancestors 'none'", get("/healthz").Header().Get("Content-Security-Policy"))
}
