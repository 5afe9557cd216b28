package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/api/scaling"
	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

// loadSpec parses the embedded document.
func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openAPISpec)
	require.NoError(t, err)
	return doc
}

// routeServer builds the routes only: nothing in New talks to Postgres or
// Redis, so no dependencies are needed.
func routeServer(adminToken string) *Server {
	return routeServerWith(adminToken, "")
}

func routeServerWith(adminToken, metricsToken string) *Server {
	return New(Deps{Log: zap.NewNop(), Registry: prometheus.NewRegistry(), AdminToken: adminToken,
		MetricsToken: metricsToken, Scaling: scaling.New(scaling.Config{})})
}

var echoParam = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)

// registered lists the routes Echo serves as "METHOD /openapi/{path}",
// leaving out the not-found routes Echo adds for groups with middleware and
// the web console's files (a page, not part of the API).
func registered(s *Server) []string {
	var out []string
	for _, r := range s.echo.Routes() {
		if r.Method == echo.RouteNotFound || r.Path == "/console" || strings.HasPrefix(r.Path, "/console/") {
			continue
		}
		path := echoParam.ReplaceAllString(r.Path, "{$1}")
		// The artifact route's wildcard is the document's {path}.
		path = strings.Replace(path, "/artifacts/*", "/artifacts/{path}", 1)
		out = append(out, r.Method+" "+path)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// documented lists the document's operations as "METHOD /path".
func documented(doc *openapi3.T) []string {
	var out []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	slices.Sort(out)
	return out
}

// Every route the server registers is in the document, with the same method
// and path, and the document has no operation the server does not serve.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	want := documented(doc)
	require.NotEmpty(t, want)

	t.Run("admin routes on", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, want, registered(routeServer("an-admin-token-of-some-length")),
			"the routes in server.go and the operations in openapi.json differ")
	})
	t.Run("admin routes off", func(t *testing.T) {
		t.Parallel()
		// Without a token, the admin routes give way to two catch-alls
		// answering 404, which the document describes on each admin route.
		var got, catchAll []string
		for _, r := range registered(routeServer("")) {
			if strings.HasSuffix(r, " /v1/admin") || strings.HasSuffix(r, " /v1/admin/*") {
				catchAll = append(catchAll, r)
				continue
			}
			got = append(got, r)
		}
		require.NotEmpty(t, catchAll)
		var public []string
		for _, op := range want {
			if !strings.Contains(op, " /v1/admin/") {
				public = append(public, op)
			}
		}
		require.Equal(t, public, got)
	})
	t.Run("metrics token only", func(t *testing.T) {
		t.Parallel()
		// The scaling route exists with the metrics token alone; the other
		// admin routes give way to the catch-alls.
		var got []string
		for _, r := range registered(routeServerWith("", "a-metrics-token-of-some-length")) {
			if !strings.HasSuffix(r, " /v1/admin") && !strings.HasSuffix(r, " /v1/admin/*") {
				got = append(got, r)
			}
		}
		var public []string
		for _, op := range want {
			if !strings.Contains(op, " /v1/admin/") || op == "GET /v1/admin/scaling" {
				public = append(public, op)
			}
		}
		require.Equal(t, public, got)
	})
}

// The document is a valid OpenAPI 3.1 document, its examples match its
// schemas, and what it says about authentication and error codes is what
// the middleware and errors.go do.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	require.True(t, doc.IsOpenAPI31OrLater(), "openapi: %s", doc.OpenAPI)
	require.NoError(t, doc.Validate(context.Background(),
		openapi3.EnableSchemaFormatValidation(), openapi3.EnableSchemaPatternValidation(), openapi3.EnableExamplesValidation()))

	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			require.NotNil(t, op.Security, "%s: say which credential it takes (security: [] for none)", name)
			var schemes []string
			for _, req := range *op.Security {
				for scheme := range req {
					schemes = append(schemes, scheme)
				}
			}
			switch {
			case path == "/v1/admin/scaling":
				require.Equal(t, []string{"metricsToken", "adminToken"}, schemes, name)
			case path == "/metrics":
				// Open, or the metrics or admin token when WIZARD_METRICS_TOKEN is set.
				require.Equal(t, []string{"metricsToken", "adminToken"}, schemes, name)
				require.Empty(t, (*op.Security)[0], "%s: the first requirement is none", name)
			case strings.HasPrefix(path, "/v1/admin/"):
				require.Equal(t, []string{"adminToken"}, schemes, name)
			case strings.HasPrefix(path, "/v1/"), path == "/api/execute":
				require.Equal(t, []string{"apiKey"}, schemes, name)
				require.NotNil(t, op.Responses.Status(http.StatusUnauthorized), "%s: no 401", name)
			default:
				require.Empty(t, schemes, name)
			}
		}
	}

	// The document's error codes are the codes errors.go maps, and every
	// problem response it describes has the status statusOf gives its codes.
	var codes []string
	for _, c := range doc.Components.Schemas["ErrorCode"].Value.Enum {
		codes = append(codes, c.(string))
	}
	var mapped []string
	for c := range statusOf {
		mapped = append(mapped, string(c))
	}
	slices.Sort(codes)
	slices.Sort(mapped)
	require.Equal(t, mapped, codes, "ErrorCode in openapi.json and statusOf in errors.go differ")

	checkProblem := func(where string, res *openapi3.ResponseRef) {
		if res == nil || res.Value == nil {
			return
		}
		mt := res.Value.Content.Get("application/problem+json")
		if mt == nil {
			return
		}
		s := mt.Schema.Value
		require.Len(t, s.AllOf, 2, "%s: a problem response is allOf [Problem, {status, code}]", where)
		props := s.AllOf[1].Value.Properties
		status := props["status"].Value.Const
		require.NotNil(t, status, where)
		for _, c := range props["code"].Value.Enum {
			require.EqualValues(t, statusOf[apperr.Code(c.(string))], status, "%s: code %s", where, c)
		}
	}
	for name, res := range doc.Components.Responses {
		checkProblem("components/responses/"+name, res)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status, res := range op.Responses.Map() {
				checkProblem(fmt.Sprintf("%s %s %s", method, path, status), res)
			}
		}
	}
}

// /openapi.json serves the embedded document without authentication, as
// JSON that clients may cache, and answers 304 to a matching If-None-Match.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	h := routeServer("").Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, echo.MIMEApplicationJSON, rec.Header().Get("Content-Type"))
	require.Equal(t, openAPISpec, rec.Body.Bytes())
	require.Contains(t, rec.Header().Get("Cache-Control"), "max-age=")
	require.NotContains(t, rec.Header().Get("Cache-Control"), "no-store")
	etag := rec.Header().Get("ETag")
	require.NotEmpty(t, etag)

	for header, want := range map[string]int{
		etag: http.StatusNotModified, "W/" + etag: http.StatusNotModified, `"other", ` + etag: http.StatusNotModified,
		"*": http.StatusNotModified, `"other"`: http.StatusOK,
	} {
		req := httptest.NewRequest(http.MethodGet, "/openapi.json", nil)
		req.Header.Set("If-None-Match", header)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, want, rec.Code, header)
		require.Equal(t, etag, rec.Header().Get("ETag"), header)
	}
}
