package httpapi_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/httpapi"
	"github.com/wasmwizard/wasmwizard/api/ratelimit"
	"github.com/wasmwizard/wasmwizard/api/scaling"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/webhook"
)

func init() {
	// Raw module uploads are bytes like application/octet-stream.
	openapi3filter.RegisterBodyDecoder("application/wasm", openapi3filter.FileBodyDecoder)
	// A live output stream is text; its events are checked by the stream's
	// own tests.
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
	// Asset trees and artifacts are bytes too.
	openapi3filter.RegisterBodyDecoder("application/x-tar", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/gzip", openapi3filter.FileBodyDecoder)
}

// specCheck sends requests to a test server and checks each exchange
// against the OpenAPI document the server itself serves: the answer's
// status must be documented for the route, and its headers and body must
// match; an accepted request must match the document too. Objects the
// document describes may not carry undocumented fields.
type specCheck struct {
	api    testAPI
	doc    *openapi3.T
	router routers.Router

	mu   sync.Mutex
	seen map[string][]int // "METHOD /path" → statuses checked
}

func newSpecCheck(t *testing.T, a testAPI) *specCheck {
	t.Helper()
	res, err := http.Get(a.url + "/openapi.json")
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	require.NoError(t, err)
	closeObjects(doc)
	router, err := legacy.NewRouter(doc)
	require.NoError(t, err)
	return &specCheck{api: a, doc: doc, router: router, seen: map[string][]int{}}
}

// closeObjects forbids undocumented fields in every object schema that
// lists its properties and says nothing about others. The document leaves
// them open, so that clients tolerate fields added later; the test closes
// them, so that a field the code adds cannot go undocumented.
func closeObjects(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(*openapi3.SchemaRef)
	walk = func(r *openapi3.SchemaRef) {
		if r == nil || r.Value == nil || seen[r.Value] {
			return
		}
		s := r.Value
		seen[s] = true
		if s.Type.Is(openapi3.TypeObject) && len(s.Properties) > 0 &&
			s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
			no := false
			s.AdditionalProperties.Has = &no
		}
		for _, p := range s.Properties {
			walk(p)
		}
		for _, group := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
			for _, sub := range group {
				walk(sub)
			}
		}
		walk(s.Items)
		walk(s.AdditionalProperties.Schema)
	}
	for _, s := range doc.Components.Schemas {
		walk(s)
	}
	content := func(c openapi3.Content) {
		for _, mt := range c {
			walk(mt.Schema)
		}
	}
	for _, r := range doc.Components.Responses {
		content(r.Value.Content)
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			if op.RequestBody != nil {
				content(op.RequestBody.Value.Content)
			}
			for _, r := range op.Responses.Map() {
				content(r.Value.Content)
			}
		}
	}
}

// call is one request of the scenario.
type call struct {
	method, path string
	token        string // the bearer credential; empty for none
	ctype        string
	body         []byte
	header       map[string]string
	// badRequest marks a request the server accepts although it breaks the
	// document (a batch holding an invalid job request).
	badRequest bool
}

// do sends c, checks the exchange, and returns the status, the headers and
// the decoded JSON body (nil when it is not JSON).
func (v *specCheck) do(t *testing.T, c call) (int, http.Header, map[string]any) {
	t.Helper()
	newReq := func() *http.Request {
		req, err := http.NewRequest(c.method, v.api.url+c.path, bytes.NewReader(c.body))
		require.NoError(t, err)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
		for k, val := range c.header {
			req.Header.Set(k, val)
		}
		return req
	}
	res, err := http.DefaultClient.Do(newReq())
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	require.NoError(t, err)
	name := c.method + " " + c.path

	req := newReq()
	route, params, err := v.router.FindRoute(req)
	require.NoError(t, err, "%s is not in the document", name)
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if res.StatusCode < 400 && !c.badRequest {
		require.NoError(t, openapi3filter.ValidateRequest(context.Background(), in),
			"%s: the server accepted a request the document does not allow", name)
	}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: res.StatusCode, Header: res.Header,
		Body: io.NopCloser(bytes.NewReader(body)), Options: opts,
	})
	require.NoError(t, err, "%s answered %d, which the document does not describe:\n%s", name, res.StatusCode, body)

	v.mu.Lock()
	op := c.method + " " + route.Path
	v.seen[op] = append(v.seen[op], res.StatusCode)
	v.mu.Unlock()

	var m map[string]any
	if strings.Contains(res.Header.Get("Content-Type"), "json") {
		require.NoError(t, json.Unmarshal(body, &m), "%s", body)
	}
	return res.StatusCode, res.Header, m
}

// json sends a JSON body (nil: none) with the given credential.
func (v *specCheck) json(t *testing.T, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	c := call{method: method, path: path, token: token}
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		c.body, c.ctype = b, "application/json"
	}
	status, _, m := v.do(t, c)
	return status, m
}

func multipartBody(t *testing.T, parts map[string][]byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range parts {
			if !yield(k) {
				return
			}
		}
	}) {
		var part io.Writer
		var err error
		if name == "name" || name == "input" {
			part, err = w.CreateFormField(name)
		} else {
			part, err = w.CreateFormFile(name, name+".wasm")
		}
		require.NoError(t, err)
		_, err = part.Write(parts[name])
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	return buf.Bytes(), w.FormDataContentType()
}

const (
	specAdminToken   = "openapi-test-admin-token"
	specMetricsToken = "openapi-test-metrics-token"
)

// The server's real answers match the document: every documented
// operation is called at least once, with successes and the usual errors.
func TestOpenAPIMatchesAnswers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newTestAPI(t, func(rdb *redis.Client, d *httpapi.Deps) {
		ns := strings.TrimSuffix(d.Queue, "jobs")
		d.Enqueuer, d.Tasks = asynq.NewClientFromRedisClient(rdb), asynq.NewInspectorFromRedisClient(rdb)
		d.AdminToken = specAdminToken
		d.MetricsToken = specMetricsToken
		d.Scaling = scaling.New(scaling.Config{Store: d.Store, Namespace: ns, TTL: -1})
		d.Limiter = ratelimit.New(rdb, ns)
		d.Webhooks = webhook.Policy{AllowPrivate: true}
		d.WebhookQueue = ns + "webhooks"
		// No watcher: ?wait= and /api/execute answer at once with the job
		// as it is, since there is no worker here to run it.
	})
	v := newSpecCheck(t, a)
	key, admin := a.key, specAdminToken
	missing := uuid.NewString()

	// Operations.
	for _, p := range []string{"/healthz", "/readyz", "/health"} {
		status, _, _ := v.do(t, call{method: http.MethodGet, path: p})
		require.Equal(t, http.StatusOK, status, p)
	}
	status, _, _ := v.do(t, call{method: http.MethodGet, path: "/metrics", token: specMetricsToken})
	require.Equal(t, http.StatusOK, status)
	status, _, _ = v.do(t, call{method: http.MethodGet, path: "/metrics"})
	require.Equal(t, http.StatusUnauthorized, status)
	status, hdr, _ := v.do(t, call{method: http.MethodGet, path: "/openapi.json"})
	require.Equal(t, http.StatusOK, status)
	status, _, _ = v.do(t, call{method: http.MethodGet, path: "/openapi.json", header: map[string]string{"If-None-Match": hdr.Get("ETag")}})
	require.Equal(t, http.StatusNotModified, status)

	// Modules.
	status, _, _ = v.do(t, call{method: http.MethodGet, path: "/v1/modules"})
	require.Equal(t, http.StatusUnauthorized, status)
	status, _, hello := v.do(t, call{method: http.MethodPost, path: "/v1/modules?name=hello", token: key,
		ctype: "application/wasm", body: fixtures.Bytes(fixtures.Hello)})
	require.Equal(t, http.StatusCreated, status)
	helloID := hello["id"].(string)
	status, _, _ = v.do(t, call{method: http.MethodPost, path: "/v1/modules", token: key,
		ctype: "application/wasm", body: fixtures.Bytes(fixtures.Hello)})
	require.Equal(t, http.StatusOK, status)
	body, ctype := multipartBody(t, map[string][]byte{"module": fixtures.Bytes(fixtures.Reactor), "name": []byte("reactor")})
	status, _, reactor := v.do(t, call{method: http.MethodPost, path: "/v1/modules", token: key, ctype: ctype, body: body})
	require.Equal(t, http.StatusCreated, status)
	reactorID := reactor["id"].(string)
	for _, bad := range []call{
		{ctype: "text/plain", body: fixtures.Bytes(fixtures.Hello)},
		{ctype: "application/wasm", body: []byte("not wasm")},
		{ctype: "application/wasm", body: fixtures.Bytes(fixtures.BadImport)},
		{ctype: "application/wasm", body: bytes.Repeat([]byte{0}, 11<<20)}, // free tier: 10 MiB
	} {
		bad.method, bad.path, bad.token = http.MethodPost, "/v1/modules", key
		status, _, _ = v.do(t, bad)
		require.Contains(t, []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType}, status)
	}
	status, _, page := v.do(t, call{method: http.MethodGet, path: "/v1/modules?limit=1", token: key})
	require.Equal(t, http.StatusOK, status)
	require.NotNil(t, page["next_cursor"])
	status, _ = v.json(t, http.MethodGet, "/v1/modules?limit=0", key, nil)
	require.Equal(t, http.StatusBadRequest, status)
	status, _ = v.json(t, http.MethodGet, "/v1/modules/"+helloID, key, nil)
	require.Equal(t, http.StatusOK, status)
	status, _ = v.json(t, http.MethodGet, "/v1/modules/"+missing, key, nil)
	require.Equal(t, http.StatusNotFound, status)

	// Jobs.
	status, webhookJob := v.json(t, http.MethodPost, "/v1/jobs", key, map[string]any{
		"module_id": helloID, "webhook_url": "https://127.0.0.1:9/hook", "metadata": map[string]string{"ticket": "42"},
		"args": []string{"a"}, "env": map[string]string{"A": "b"}, "stdin": "in", "timeout_ms": 1000, "deterministic": true,
		"files":    []map[string]any{{"path": "/in/a.txt", "content": "hi", "mode": "ro"}, {"path": "/in/b", "content": "AAE=", "encoding": "base64"}},
		"preopens": []string{"/in", "out"}, "collect": []string{"/out/**"}})
	require.Equal(t, http.StatusCreated, status, "%v", webhookJob)
	idem := call{method: http.MethodPost, path: "/v1/jobs?wait=1s", token: key, ctype: "application/json",
		body: []byte(`{"module_id":"` + helloID + `"}`), header: map[string]string{"Idempotency-Key": "k-1"}}
	status, _, plainJob := v.do(t, idem)
	require.Equal(t, http.StatusCreated, status)
	status, hdr, _ = v.do(t, idem)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "true", hdr.Get("Idempotent-Replayed"))
	idem.body = []byte(`{"module_id":"` + helloID + `","args":["other"]}`)
	status, _, _ = v.do(t, idem)
	require.Equal(t, http.StatusUnprocessableEntity, status)
	status, reactorJob := v.json(t, http.MethodPost, "/v1/jobs", key, map[string]any{
		"module_id": reactorID, "function": "add", "params": []any{2, "3"}})
	require.Equal(t, http.StatusCreated, status, "%v", reactorJob)
	// A job with a file as multipart/form-data.
	body, ctype = filesMultipart(t, `{"module_id":"`+helloID+`","stdin_base64":"AAE="}`, "/data/x.bin", []byte{0, 1, 2})
	status, _, binJob := v.do(t, call{method: http.MethodPost, path: "/v1/jobs", token: key, ctype: ctype, body: body})
	require.Equal(t, http.StatusCreated, status, "%v", binJob)
	status, problem := v.json(t, http.MethodPost, "/v1/jobs", key, map[string]any{"module_id": helloID, "timeout_ms": 60000, "nope": 1})
	require.Equal(t, http.StatusBadRequest, status)
	require.NotEmpty(t, problem["errors"])
	status, _ = v.json(t, http.MethodPost, "/v1/jobs", key, map[string]any{"module_id": missing})
	require.Equal(t, http.StatusNotFound, status)
	status, _, _ = v.do(t, call{method: http.MethodPost, path: "/v1/jobs", token: key, ctype: "text/plain", body: []byte("{}")})
	require.Equal(t, http.StatusUnsupportedMediaType, status)
	status, _, _ = v.do(t, call{method: http.MethodPost, path: "/v1/jobs", token: key, ctype: "application/json",
		body: bytes.Repeat([]byte(" "), 6<<20+1)})
	require.Equal(t, http.StatusRequestEntityTooLarge, status)

	// Files past the tier's max_input_bytes.
	status, _ = v.json(t, http.MethodPost, "/v1/jobs", key, map[string]any{"module_id": helloID,
		"files": []map[string]any{{"path": "/big", "content": strings.Repeat("x", 1<<20+1)}}})
	require.Equal(t, http.StatusRequestEntityTooLarge, status)

	status, _, batch := v.do(t, call{method: http.MethodPost, path: "/v1/jobs/batch", token: key, ctype: "application/json",
		body: []byte(`{"jobs":[{"module_id":"` + helloID + `"},{"args":["no module"]}]}`), badRequest: true})
	require.Equal(t, http.StatusCreated, status)
	require.Len(t, batch["data"], 2)
	status, _ = v.json(t, http.MethodPost, "/v1/jobs/batch", key, map[string]any{"jobs": []any{}})
	require.Equal(t, http.StatusBadRequest, status)

	// Finish some jobs as a worker would, to read terminal jobs.
	finish := func(id string, r jobstate.Outcome) {
		t.Helper()
		j, err := a.st.ClaimJob(ctx, uuid.MustParse(id), "w")
		require.NoError(t, err)
		ok, err := a.st.FinishJob(ctx, j.ID, j.Attempts, "w", r)
		require.NoError(t, err)
		require.True(t, ok)
	}
	zero, three := 0, 3
	require.NoError(t, a.st.SaveArtifacts(ctx, uuid.MustParse(webhookJob["id"].(string)),
		[]store.ArtifactFile{{Path: "/a.txt", Content: []byte("artifact")}}))
	finish(webhookJob["id"].(string), jobstate.Outcome{Status: jobstate.Succeeded, ExitCode: &zero,
		Stdout: []byte("hello, world\n"), MemoryPeakBytes: 65536, RunTime: 3 * time.Millisecond, ArtifactsTruncated: true})
	finish(reactorJob["id"].(string), jobstate.Outcome{Status: jobstate.Succeeded, ExitCode: &zero,
		ReturnValues: []json.RawMessage{json.RawMessage("5")}, RunTime: time.Millisecond})
	finish(binJob["id"].(string), jobstate.Outcome{Status: jobstate.Failed, ExitCode: &three, Stdout: []byte{0xff, 0xfe},
		Stderr: []byte("bye\n"), StdoutTruncated: true, ErrorCode: "exit_nonzero", ErrorMessage: "the guest exited with code 3"})
	// Artifacts (saved as a worker would, before it finished the job).
	filesID := uuid.MustParse(webhookJob["id"].(string))
	arts := "/v1/jobs/" + filesID.String() + "/artifacts"
	for _, c := range []struct {
		path   string
		header map[string]string
		status int
	}{
		{arts, nil, http.StatusOK},
		{arts + "?format=tar", nil, http.StatusOK},
		{arts + "?format=zip", nil, http.StatusBadRequest},
		{"/v1/jobs/" + missing + "/artifacts", nil, http.StatusNotFound},
		{arts + "/a.txt", nil, http.StatusOK},
		{arts + "/a.txt", map[string]string{"Range": "bytes=0-3"}, http.StatusPartialContent},
		{arts + "/a.txt", map[string]string{"Range": "bytes=100-"}, http.StatusRequestedRangeNotSatisfiable},
		{arts + "/a.txt", map[string]string{"If-None-Match": `"` + hexSHA([]byte("artifact")) + `"`}, http.StatusNotModified},
		{arts + "/none", nil, http.StatusNotFound},
	} {
		status, _, _ = v.do(t, call{method: http.MethodGet, path: c.path, token: key, header: c.header})
		require.Equal(t, c.status, status, c.path)
	}

	for _, j := range []map[string]any{webhookJob, reactorJob, binJob, plainJob} {
		status, _ = v.json(t, http.MethodGet, "/v1/jobs/"+j["id"].(string)+"?wait=0.5", key, nil)
		require.Equal(t, http.StatusOK, status)
	}
	status, _ = v.json(t, http.MethodGet, "/v1/jobs/"+binJob["id"].(string)+"?wait=soon", key, nil)
	require.Equal(t, http.StatusBadRequest, status)
	status, _ = v.json(t, http.MethodGet, "/v1/jobs/"+missing, key, nil)
	require.Equal(t, http.StatusNotFound, status)
	status, _ = v.json(t, http.MethodGet, "/v1/jobs?status=succeeded&module_id="+helloID+"&created_after=2020-01-01T00:00:00Z&limit=1", key, nil)
	require.Equal(t, http.StatusOK, status)
	status, _ = v.json(t, http.MethodGet, "/v1/jobs?status=done&created_before=yesterday", key, nil)
	require.Equal(t, http.StatusBadRequest, status)
	status, _ = v.json(t, http.MethodGet, "/v1/jobs/"+webhookJob["id"].(string)+"/events", key, nil)
	require.Equal(t, http.StatusOK, status)
	status, _ = v.json(t, http.MethodGet, "/v1/jobs/"+missing+"/events", key, nil)
	require.Equal(t, http.StatusNotFound, status)
	// A finished job's stream replays its output, then ends.
	status, _, _ = v.do(t, call{method: http.MethodGet, path: "/v1/jobs/" + binJob["id"].(string) + "/stream", token: key})
	require.Equal(t, http.StatusOK, status)
	status, _, _ = v.do(t, call{method: http.MethodGet, path: "/v1/jobs/" + binJob["id"].(string) + "/stream", token: key,
		header: map[string]string{"Last-Event-ID": "not an id"}})
	require.Equal(t, http.StatusBadRequest, status)
	status, _, _ = v.do(t, call{method: http.MethodGet, path: "/v1/jobs/" + missing + "/stream", token: key})
	require.Equal(t, http.StatusNotFound, status)

	// Webhook deliveries: a failed attempt, then a manual retry.
	d, err := a.st.DeliveryForJob(ctx, a.account.ID, uuid.MustParse(webhookJob["id"].(string)))
	require.NoError(t, err)
	code, errText, excerpt := 503, "HTTP 503", "busy"
	require.NoError(t, a.st.RecordAttempt(ctx, d.ID, store.Attempt{StatusCode: &code, DurationMS: 2, Error: &errText,
		ResponseExcerpt: &excerpt}, store.DeliveryPending, time.Now().Add(time.Minute)))
	status, deliveries := v.json(t, http.MethodGet, "/v1/jobs/"+webhookJob["id"].(string)+"/deliveries", key, nil)
	require.Equal(t, http.StatusOK, status)
	require.Len(t, deliveries["data"], 1)
	status, _ = v.json(t, http.MethodGet, "/v1/jobs/"+reactorJob["id"].(string)+"/deliveries", key, nil)
	require.Equal(t, http.StatusOK, status)
	status, _ = v.json(t, http.MethodPost, "/v1/jobs/"+webhookJob["id"].(string)+"/deliveries/retry", key, nil)
	require.Equal(t, http.StatusAccepted, status)
	status, _ = v.json(t, http.MethodPost, "/v1/jobs/"+reactorJob["id"].(string)+"/deliveries/retry", key, nil)
	require.Equal(t, http.StatusNotFound, status)

	// Cancel: a queued job at once, a running one whose worker is gone
	// (202), and a finished one (409).
	status, _ = v.json(t, http.MethodPost, "/v1/jobs/"+plainJob["id"].(string)+"/cancel", key, nil)
	require.Equal(t, http.StatusOK, status)
	status, running := v.json(t, http.MethodPost, "/v1/jobs", key, map[string]any{"module_id": helloID})
	require.Equal(t, http.StatusCreated, status)
	_, err = a.st.ClaimJob(ctx, uuid.MustParse(running["id"].(string)), "gone")
	require.NoError(t, err)
	status, _ = v.json(t, http.MethodPost, "/v1/jobs/"+running["id"].(string)+"/cancel", key, nil)
	require.Equal(t, http.StatusAccepted, status)
	status, _ = v.json(t, http.MethodPost, "/v1/jobs/"+webhookJob["id"].(string)+"/cancel", key, nil)
	require.Equal(t, http.StatusConflict, status)

	// Account.
	status, _ = v.json(t, http.MethodGet, "/v1/account", key, nil)
	require.Equal(t, http.StatusOK, status)
	status, usage := v.json(t, http.MethodGet, "/v1/account/usage?hours=3", key, nil)
	require.Equal(t, http.StatusOK, status)
	require.Len(t, usage["data"], 3)
	for _, bad := range []string{"0", "169", "x"} {
		status, _ = v.json(t, http.MethodGet, "/v1/account/usage?hours="+bad, key, nil)
		require.Equal(t, http.StatusBadRequest, status, bad)
	}
	status, keys := v.json(t, http.MethodGet, "/v1/account/keys?limit=1", key, nil)
	require.Equal(t, http.StatusOK, status)
	require.Len(t, keys["data"], 1)
	status, _ = v.json(t, http.MethodGet, "/v1/account/keys?cursor=bad", key, nil)
	require.Equal(t, http.StatusBadRequest, status)
	status, _ = v.json(t, http.MethodPost, "/v1/account/webhook-secret/rotate", key, nil)
	require.Equal(t, http.StatusOK, status)
	status, _, _ = v.do(t, call{method: http.MethodPost, path: "/v1/account/webhook-secret/rotate", token: key,
		ctype: "application/json", body: bytes.Repeat([]byte(" "), 64<<10+1)})
	require.Equal(t, http.StatusRequestEntityTooLarge, status)

	// The original Wasm Wizard's call: without a worker the job cannot
	// finish, and the answer says so at once.
	body, ctype = multipartBody(t, map[string][]byte{"wasm": fixtures.Bytes(fixtures.Hello), "input": []byte("x")})
	status, _, out := v.do(t, call{method: http.MethodPost, path: "/api/execute", token: key, ctype: ctype, body: body})
	require.Equal(t, http.StatusGatewayTimeout, status, "%v", out)
	body, ctype = multipartBody(t, map[string][]byte{"input": []byte("x")})
	status, _, _ = v.do(t, call{method: http.MethodPost, path: "/api/execute", token: key, ctype: ctype, body: body})
	require.Equal(t, http.StatusBadRequest, status)
	status, _, _ = v.do(t, call{method: http.MethodPost, path: "/api/execute", token: key, ctype: "application/wasm",
		body: fixtures.Bytes(fixtures.Hello)})
	require.Equal(t, http.StatusUnsupportedMediaType, status)
	status, _, _ = v.do(t, call{method: http.MethodPost, path: "/api/execute", ctype: ctype, body: body})
	require.Equal(t, http.StatusUnauthorized, status)

	// Admin.
	status, _ = v.json(t, http.MethodGet, "/v1/admin/tiers", key, nil) // an API key is not the admin token
	require.Equal(t, http.StatusUnauthorized, status)
	status, _ = v.json(t, http.MethodGet, "/v1/admin/tiers", admin, nil)
	require.Equal(t, http.StatusOK, status)
	tiny := map[string]any{"name": "tiny", "runs_per_minute": 1, "runs_per_day": 100, "max_concurrent_runs": 10,
		"default_timeout_ms": 1000, "max_timeout_ms": 1000, "default_memory_mb": 16, "max_memory_mb": 16,
		"max_module_bytes": 1 << 20, "queue_weight": 1, "reads_per_minute": 1, "uploads_per_minute": 1}
	status, _ = v.json(t, http.MethodPost, "/v1/admin/tiers", admin, tiny)
	require.Equal(t, http.StatusCreated, status)
	status, _ = v.json(t, http.MethodPost, "/v1/admin/tiers", admin, tiny)
	require.Equal(t, http.StatusConflict, status)
	status, _ = v.json(t, http.MethodPost, "/v1/admin/tiers", admin, map[string]any{"name": "half"})
	require.Equal(t, http.StatusBadRequest, status)
	status, _ = v.json(t, http.MethodPatch, "/v1/admin/tiers/tiny", admin, map[string]any{"max_concurrent_runs": 5})
	require.Equal(t, http.StatusOK, status)
	status, _ = v.json(t, http.MethodPatch, "/v1/admin/tiers/nosuch", admin, map[string]any{"queue_weight": 2})
	require.Equal(t, http.StatusNotFound, status)

	status, acct := v.json(t, http.MethodPost, "/v1/admin/accounts", admin, map[string]any{"name": "Acme", "tier": "tiny"})
	require.Equal(t, http.StatusCreated, status)
	acctID := acct["id"].(string)
	status, _ = v.json(t, http.MethodPost, "/v1/admin/accounts", admin, map[string]any{"name": "Acme", "tier": "nosuch"})
	require.Equal(t, http.StatusBadRequest, status)
	status, _, _ = v.do(t, call{method: http.MethodPost, path: "/v1/admin/accounts", token: admin, ctype: "application/json",
		body: bytes.Repeat([]byte(" "), 64<<10+1)})
	require.Equal(t, http.StatusRequestEntityTooLarge, status)
	status, _, _ = v.do(t, call{method: http.MethodPost, path: "/v1/admin/accounts", token: admin, ctype: "text/plain", body: []byte("{}")})
	require.Equal(t, http.StatusUnsupportedMediaType, status)
	status, _ = v.json(t, http.MethodGet, "/v1/admin/accounts?limit=1", admin, nil)
	require.Equal(t, http.StatusOK, status)
	status, _ = v.json(t, http.MethodPatch, "/v1/admin/accounts/"+a.account.ID.String(), admin, map[string]any{"tier": "basic"})
	require.Equal(t, http.StatusOK, status)
	status, _ = v.json(t, http.MethodPatch, "/v1/admin/accounts/"+missing, admin, map[string]any{"tier": "basic"})
	require.Equal(t, http.StatusNotFound, status)
	status, newKey := v.json(t, http.MethodPost, "/v1/admin/accounts/"+acctID+"/keys", admin, map[string]any{"name": "ci"})
	require.Equal(t, http.StatusCreated, status)
	tinyKey := newKey["key"].(string)
	status, spare := v.json(t, http.MethodPost, "/v1/admin/accounts/"+acctID+"/keys", admin, nil)
	require.Equal(t, http.StatusCreated, status)
	status, _ = v.json(t, http.MethodGet, "/v1/admin/keys?account_id="+acctID, admin, nil)
	require.Equal(t, http.StatusOK, status)
	status, _ = v.json(t, http.MethodGet, "/v1/admin/keys?account_id=nope", admin, nil)
	require.Equal(t, http.StatusBadRequest, status)
	status, _ = v.json(t, http.MethodDelete, "/v1/admin/keys/"+spare["id"].(string), admin, nil)
	require.Equal(t, http.StatusNoContent, status)
	status, _ = v.json(t, http.MethodDelete, "/v1/admin/keys/"+missing, admin, nil)
	require.Equal(t, http.StatusNotFound, status)
	status, _ = v.json(t, http.MethodGet, "/v1/admin/queues", admin, nil)
	require.Equal(t, http.StatusOK, status)
	status, _ = v.json(t, http.MethodGet, "/v1/admin/queues", specMetricsToken, nil)
	require.Equal(t, http.StatusForbidden, status)
	for _, tok := range []string{specMetricsToken, admin} {
		status, _ = v.json(t, http.MethodGet, "/v1/admin/scaling", tok, nil)
		require.Equal(t, http.StatusOK, status)
	}
	status, _ = v.json(t, http.MethodGet, "/v1/admin/scaling", key, nil)
	require.Equal(t, http.StatusUnauthorized, status)
	status, _ = v.json(t, http.MethodGet, "/v1/admin/audit?action=auth.failed&limit=2", admin, nil)
	require.Equal(t, http.StatusOK, status)
	status, _ = v.json(t, http.MethodGet, "/v1/admin/audit?job_id="+webhookJob["id"].(string)+"&created_before=2100-01-01T00:00:00Z", admin, nil)
	require.Equal(t, http.StatusOK, status)
	status, _ = v.json(t, http.MethodGet, "/v1/admin/audit?account_id=nope", admin, nil)
	require.Equal(t, http.StatusBadRequest, status)

	// Rate limits, on the tiny tier: one upload, one run and one read per
	// minute.
	status, _, tinyHello := v.do(t, call{method: http.MethodPost, path: "/v1/modules", token: tinyKey,
		ctype: "application/wasm", body: fixtures.Bytes(fixtures.Hello)})
	require.Equal(t, http.StatusCreated, status)
	status, _, _ = v.do(t, call{method: http.MethodPost, path: "/v1/modules", token: tinyKey,
		ctype: "application/wasm", body: fixtures.Bytes(fixtures.Echo)})
	require.Equal(t, http.StatusTooManyRequests, status)
	tinyJob := map[string]any{"module_id": tinyHello["id"]}
	status, _ = v.json(t, http.MethodPost, "/v1/jobs", tinyKey, tinyJob)
	require.Equal(t, http.StatusCreated, status)
	status, _ = v.json(t, http.MethodPost, "/v1/jobs", tinyKey, tinyJob)
	require.Equal(t, http.StatusTooManyRequests, status)
	body, ctype = multipartBody(t, map[string][]byte{"wasm": fixtures.Bytes(fixtures.Hello)})
	status, _, _ = v.do(t, call{method: http.MethodPost, path: "/api/execute", token: tinyKey, ctype: ctype, body: body})
	require.Equal(t, http.StatusTooManyRequests, status)
	status, _ = v.json(t, http.MethodGet, "/v1/account", tinyKey, nil)
	require.Equal(t, http.StatusOK, status)
	status, _ = v.json(t, http.MethodGet, "/v1/account", tinyKey, nil)
	require.Equal(t, http.StatusTooManyRequests, status)

	// Module asset trees.
	// The account is on basic now; its tier's asset limit is made small
	// (and its upload rate, which asset uploads count against, large: the
	// scenario has made many uploads by now).
	status, _ = v.json(t, http.MethodPatch, "/v1/admin/tiers/basic", admin,
		map[string]any{"max_asset_bytes": 100, "uploads_per_minute": 1000})
	require.Equal(t, http.StatusOK, status)
	assets := "/v1/modules/" + helloID + "/assets"
	tree := tarOf(t, "share/a.txt", "hello")
	for _, c := range []struct {
		method, path, ctype string
		body                []byte
		status              int
	}{
		{http.MethodPut, assets + "?mount=/share", "application/x-tar", tree, http.StatusCreated},
		{http.MethodPut, assets + "?mount=/share", "application/x-tar", tree, http.StatusOK},
		{http.MethodPut, assets + "?mount=/lib", "application/gzip", gzipOf(t, tarOf(t, "lib/b", "b")), http.StatusCreated},
		{http.MethodPut, assets + "?mount=/x", "application/x-tar", tarOf(t, "../escape", "x"), http.StatusBadRequest},
		{http.MethodPut, assets + "?mount=x", "application/x-tar", tree, http.StatusBadRequest},
		{http.MethodPut, assets + "?mount=/x", "application/x-tar", tarOf(t, "big", strings.Repeat("x", 100)), http.StatusRequestEntityTooLarge},
		{http.MethodPut, assets + "?mount=/x", "application/zip", []byte("PK"), http.StatusUnsupportedMediaType},
		{http.MethodPut, "/v1/modules/" + missing + "/assets?mount=/x", "application/x-tar", tree, http.StatusNotFound},
		{http.MethodGet, assets, "", nil, http.StatusOK},
		{http.MethodGet, "/v1/modules/" + missing + "/assets", "", nil, http.StatusNotFound},
		{http.MethodDelete, assets + "?mount=/lib", "", nil, http.StatusNoContent},
		{http.MethodDelete, assets + "?mount=/lib", "", nil, http.StatusNotFound},
		{http.MethodDelete, assets, "", nil, http.StatusBadRequest},
	} {
		status, _, _ = v.do(t, call{method: c.method, path: c.path, token: key, ctype: c.ctype, body: c.body})
		require.Equal(t, c.status, status, "%s %s", c.method, c.path)
	}

	// Last, the deletion of a module.
	status, _ = v.json(t, http.MethodDelete, "/v1/modules/"+reactorID, key, nil)
	require.Equal(t, http.StatusNoContent, status)
	status, _ = v.json(t, http.MethodDelete, "/v1/modules/"+reactorID, key, nil)
	require.Equal(t, http.StatusNotFound, status)

	// Every operation of the document was checked against a real answer.
	var unchecked []string
	for path, item := range v.doc.Paths.Map() {
		for method := range item.Operations() {
			if _, ok := v.seen[method+" "+path]; !ok {
				unchecked = append(unchecked, method+" "+path)
			}
		}
	}
	slices.Sort(unchecked)
	require.Empty(t, unchecked, "operations no answer was checked against; call them above")
	for _, op := range slices.Sorted(func(yield func(string) bool) {
		for k := range v.seen {
			if !yield(k) {
				return
			}
		}
	}) {
		t.Logf("%-45s %v", op, v.seen[op])
	}
}

// The document's closed objects do refuse an undocumented field, and its
// schemas refuse a wrong type: the check above is not vacuous.
func TestOpenAPICheckIsStrict(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, func(*redis.Client, *httpapi.Deps) {})
	v := newSpecCheck(t, a)
	job := v.doc.Components.Schemas["Job"].Value
	var good map[string]any
	require.NoError(t, json.Unmarshal([]byte(`{"id":"01a21c90-6c95-7a32-afa7-153a0e2b44cd",
		"module_id":"01a21c90-6006-728f-80bf-1fb09eb0e1ea","function":"_start","status":"queued","exit_code":null,
		"stdout":null,"stderr":null,"stdout_truncated":false,"stderr_truncated":false,"return_values":null,"error":null,
		"attempts":0,"limits":{"timeout_ms":5000,"memory_limit_mb":128,"max_output_bytes":1048576},
		"usage":{"queue_ms":null,"run_ms":null,"memory_peak_bytes":null},"webhook_url":null,"metadata":{},
		"created_at":"2026-11-27T10:32:36.758443Z","started_at":null,"finished_at":null,
		"preopens":["/"],"collect":[],"input_files":0,"artifacts":[],"artifacts_truncated":false}`), &good))
	good["limits"].(map[string]any)["max_fs_bytes"] = 16777216
	good["limits"].(map[string]any)["max_artifact_bytes"] = 4194304
	opt := openapi3.EnableJSONSchema2020()
	require.NoError(t, job.VisitJSON(good, opt))
	for name, change := range map[string]func(map[string]any){
		"an undocumented field":   func(m map[string]any) { m["surprise"] = 1 },
		"a nested extra field":    func(m map[string]any) { m["usage"].(map[string]any)["cpu_ms"] = 1 },
		"a wrong type":            func(m map[string]any) { m["attempts"] = "1" },
		"a missing field":         func(m map[string]any) { delete(m, "status") },
		"an unknown status value": func(m map[string]any) { m["status"] = "done" },
	} {
		var bad map[string]any
		b, _ := json.Marshal(good)
		require.NoError(t, json.Unmarshal(b, &bad))
		change(bad)
		require.Error(t, job.VisitJSON(bad, opt), name)
	}
}

// filesMultipart is a multipart job request: the job part and one file.
func filesMultipart(t *testing.T, job, path string, content []byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	part, err := w.CreateFormField("job")
	require.NoError(t, err)
	_, _ = io.WriteString(part, job)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+path+`"`)
	h.Set("Content-Type", "application/octet-stream")
	part, err = w.CreatePart(h)
	require.NoError(t, err)
	_, _ = part.Write(content)
	require.NoError(t, w.Close())
	return buf.Bytes(), w.FormDataContentType()
}

// tarOf is a tar of one file.
func tarOf(t *testing.T, name, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))}))
	_, err := io.WriteString(tw, content)
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

func gzipOf(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func hexSHA(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
