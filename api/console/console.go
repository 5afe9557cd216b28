// Package console serves the web console at /console/, embedded in the binary.
//
// Its files are static (plain JavaScript modules and CSS, no build step),
// compressed once at startup and served under a Content-Security-Policy that
// allows only the console's own scripts and styles and refuses HTML string
// sinks. The console talks to the API from the browser with the key the user
// signs in with; this package serves files only.
package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/labstack/echo/v4"
)

//go:embed static
var static embed.FS

// Policy is the console's Content-Security-Policy: its own scripts, styles
// and API only; no inline script or style, no eval (no 'unsafe-*' source),
// no framing, no plugins, no forms posted anywhere, and Trusted Types
// required, so assigning a string to innerHTML or a similar sink throws.
const Policy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"require-trusted-types-for 'script'; trusted-types 'none'"

// file is one embedded file, ready to send.
type file struct {
	body, gz []byte
	ctype    string
	etag     string
}

// Files serves the embedded console.
type Files struct {
	files map[string]file
}

var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".json": "application/json",
}

// New reads and compresses the embedded files.
func New() (*Files, error) {
	f := &Files{files: map[string]file{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		ctype, ok := types[path.Ext(p)]
		if !ok {
			return fmt.Errorf("console file %s: no content type for its extension", p)
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(body)
		if err := zw.Close(); err != nil {
			return fmt.Errorf("compress %s: %w", p, err)
		}
		sum := sha256.Sum256(body)
		f.files[strings.TrimPrefix(p, "static/")] = file{body: body, gz: buf.Bytes(), ctype: ctype,
			etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	return f, err
}

// Static is the console's files as they are in the repository.
func Static() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // "static" is a valid path; fs.Sub fails only on invalid ones
	}
	return sub
}

// Names lists the files served, relative to /console/.
func (f *Files) Names() []string {
	out := make([]string, 0, len(f.files))
	for n := range f.files {
		out = append(out, n)
	}
	return out
}

// CompressedSize is what the named file costs on the wire with gzip.
func (f *Files) CompressedSize(name string) int { return len(f.files[name].gz) }

// Register adds GET /console (a redirect), /console/ and /console/* to e.
func (f *Files) Register(e *echo.Echo) {
	e.GET("/console", func(c echo.Context) error {
		return c.Redirect(http.StatusMovedPermanently, "/console/")
	})
	e.GET("/console/", func(c echo.Context) error { return f.serve(c, "index.html") })
	e.GET("/console/*", func(c echo.Context) error { return f.serve(c, c.Param("*")) })
}

func (f *Files) serve(c echo.Context, name string) error {
	if name == "" {
		name = "index.html"
	}
	file, ok := f.files[name]
	if !ok {
		return echo.ErrNotFound
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", Policy)
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
	// Revalidated on every load (one small 304 each): a new binary's files
	// are never mixed with an old cached one.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", file.etag)
	h.Add("Vary", "Accept-Encoding")
	if match := c.Request().Header.Get("If-None-Match"); match != "" && match == file.etag {
		return c.NoContent(http.StatusNotModified)
	}
	body := file.body
	if acceptsGzip(c.Request().Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		body = file.gz
	}
	return c.Blob(http.StatusOK, file.ctype, body)
}

// acceptsGzip says whether an Accept-Encoding value allows gzip (a q=0
// refusal counts as not).
func acceptsGzip(v string) bool {
	for part := range strings.SplitSeq(v, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
