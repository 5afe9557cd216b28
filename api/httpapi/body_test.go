package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"
)

// A read after the body's end sets no deadline: net/http then reads the
// connection in the background, and a deadline would fail that read later
// and cancel the request's context while the handler still works (a long
// ?wait=).
func TestBodyGuardLeavesTheConnectionAloneAfterTheBody(t *testing.T) {
	t.Parallel()
	const stall = 100 * time.Millisecond
	s := &Server{bodyStall: stall}
	e := echo.New()
	e.Use(s.withBodyGuard)
	e.POST("/", func(c echo.Context) error {
		b, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		_, _ = c.Request().Body.Read(make([]byte, 1)) // past the end
		select {
		case <-c.Request().Context().Done():
			return c.String(http.StatusInternalServerError, "context cancelled")
		case <-time.After(5 * stall):
		}
		return c.String(http.StatusOK, string(b))
	})
	ts := httptest.NewServer(e)
	defer ts.Close()
	res, err := http.Post(ts.URL, "text/plain", strings.NewReader("hello"))
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	body, _ := io.ReadAll(res.Body)
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", body)
	require.Equal(t, "hello", string(body))
	require.False(t, res.Close, "a body read to its end keeps the connection")
}
