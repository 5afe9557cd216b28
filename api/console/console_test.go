package console_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/console"
)

func server(t *testing.T) (*echo.Echo, *console.Files) {
	t.Helper()
	f, err := console.New()
	require.NoError(t, err)
	e := echo.New()
	f.Register(e)
	return e, f
}

func get(e *echo.Echo, path string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

// Every file is served with its type, the console's policy, compressed
// when the client accepts gzip, and answers 304 to its ETag.
func TestFilesAreServed(t *testing.T) {
	t.Parallel()
	e, f := server(t)
	names := f.Names()
	require.Contains(t, names, "index.html")
	require.Contains(t, names, "js/main.js")
	for _, name := range names {
		path := "/console/" + name
		plain := get(e, path, nil)
		require.Equal(t, http.StatusOK, plain.Code, path)
		require.Equal(t, console.Policy, plain.Header().Get("Content-Security-Policy"))
		require.Equal(t, "no-cache", plain.Header().Get("Cache-Control"))
		require.Empty(t, plain.Header().Get("Content-Encoding"))
		require.NotEmpty(t, plain.Header().Get("Content-Type"))
		if strings.HasSuffix(name, ".js") {
			require.Equal(t, "text/javascript; charset=utf-8", plain.Header().Get("Content-Type"), "modules need a JavaScript type")
		}

		zipped := get(e, path, map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
		require.Equal(t, "gzip", zipped.Header().Get("Content-Encoding"))
		require.Equal(t, f.CompressedSize(name), zipped.Body.Len())
		zr, err := gzip.NewReader(zipped.Body)
		require.NoError(t, err)
		body, err := io.ReadAll(zr)
		require.NoError(t, err)
		require.Equal(t, plain.Body.Bytes(), body)

		refused := get(e, path, map[string]string{"Accept-Encoding": "gzip;q=0"})
		require.Empty(t, refused.Header().Get("Content-Encoding"))

		again := get(e, path, map[string]string{"If-None-Match": plain.Header().Get("ETag")})
		require.Equal(t, http.StatusNotModified, again.Code)
		require.Empty(t, again.Body.Bytes())
	}
	root := get(e, "/console/", nil)
	require.Equal(t, http.StatusOK, root.Code)
	require.Contains(t, root.Body.String(), `<script type="module" src="js/main.js">`)
	redirect := get(e, "/console", nil)
	require.Equal(t, http.StatusMovedPermanently, redirect.Code)
	require.Equal(t, "/console/", redirect.Header().Get("Location"))
	for _, missing := range []string{"/console/nope.js", "/console/js/", "/console/../go.mod", "/console/%2e%2e/go.mod"} {
		require.Equal(t, http.StatusNotFound, get(e, missing, nil).Code, missing)
	}
}

// The policy forbids what the console must never need.
func TestPolicyIsStrict(t *testing.T) {
	t.Parallel()
	for _, want := range []string{"script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "base-uri 'none'",
		"require-trusted-types-for 'script'", "default-src 'none'", "form-action 'none'"} {
		require.Contains(t, console.Policy, want)
	}
	require.NotContains(t, console.Policy, "unsafe")
	require.NotContains(t, console.Policy, "*")
}

// The sources keep to the policy and to text-only rendering: no inline
// script, style or event handler in the HTML, no HTML string sinks, eval or
// timers with strings in the JavaScript, nothing fetched from elsewhere.
func TestSourcesNeedNothingThePolicyRefuses(t *testing.T) {
	t.Parallel()
	static := console.Static()
	checks := map[string][]*regexp.Regexp{
		".html": {regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`),
			regexp.MustCompile(`\sstyle=`), regexp.MustCompile(`<style`), regexp.MustCompile(`\son[a-z]+=`), regexp.MustCompile(`https?://`)},
		".js": {regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\('style'|cssText`),
			regexp.MustCompile(`setTimeout\(['"\x60]|setInterval\(['"\x60]`), regexp.MustCompile(`https?://[A-Za-z0-9]`),
			regexp.MustCompile(`localStorage|document\.cookie`)},
		".css": {regexp.MustCompile(`@import|url\(`)},
	}
	n := 0
	require.NoError(t, fs.WalkDir(static, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(static, p)
		require.NoError(t, err)
		// The one URL in the sources: SVG's namespace, a name, not a fetch.
		body = bytes.ReplaceAll(body, []byte(`'http://www.w3.org/2000/svg'`), nil)
		if strings.HasSuffix(p, ".html") {
			for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAll(body, -1) {
				require.Contains(t, string(tag), " src=", "%s: a script without src", p)
			}
		}
		for ext, res := range checks {
			if !strings.HasSuffix(p, ext) {
				continue
			}
			n++
			for _, re := range res {
				require.Falsef(t, re.Match(body), "%s matches %s: %q", p, re, re.Find(body))
			}
		}
		return nil
	}))
	require.GreaterOrEqual(t, n, 5)
}
