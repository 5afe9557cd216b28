package platformtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/api/app"
	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/shared/config"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	workerapp "github.com/wasmwizard/wasmwizard/worker/app"
)

const adminToken = "test-admin-token-0123456789"

// platform is a real API and a real worker, started in-process on :0 against
// the test's own Postgres database and Redis queue namespace.
type platform struct {
	t         testing.TB
	baseURL   string
	workerURL string
	common    config.Common
}

// another starts a second API instance on the same database and Redis (a
// replica) and returns a platform that talks to it.
func (p *platform) another(adminToken string) *platform {
	p.t.Helper()
	api, err := app.Start(context.Background(), apiConfig(p.common, adminToken), zap.NewNop())
	require.NoError(p.t, err)
	p.t.Cleanup(func() { _ = api.Shutdown(context.Background()) })
	return &platform{t: p.t, baseURL: "http://" + api.Addr(), workerURL: p.workerURL, common: p.common}
}

func startPlatform(t *testing.T) *platform {
	t.Helper()
	return startPlatformWith(t, func(*config.Common) {})
}

// startPlatformWith lets a test adjust the shared configuration first.
func startPlatformWith(t *testing.T, adjust func(*config.Common)) *platform {
	t.Helper()
	return startPlatformN(t, adjust, 2)
}

// startPlatformN starts a platform whose worker runs concurrency jobs at once.
func startPlatformN(t *testing.T, adjust func(*config.Common), concurrency int) *platform {
	t.Helper()
	common := testCommon(t)
	adjust(&common)
	p := launch(t, common, common, concurrency, zap.NewNop())
	// Rate limits are the subject of their own tests (on tiers of their
	// own); everywhere else the built-in tiers must not get in the way.
	for _, tier := range []string{"free", "basic", "pro"} {
		res := p.do(http.MethodPatch, "/v1/admin/tiers/"+tier, adminToken, "application/json",
			[]byte(`{"runs_per_minute":1000000,"runs_per_day":1000000,"max_concurrent_runs":100000,"reads_per_minute":1000000,`+
				`"uploads_per_minute":0,"max_modules":0,"max_module_storage_bytes":0}`))
		require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	}
	return p
}

// testCommon is the shared configuration of a test's own platform: its own
// Postgres database and Redis queue namespace, warnings only.
func testCommon(t testing.TB) config.Common {
	return config.Common{
		DatabaseURL:    testenv.DB(t),
		RedisURL:       testenv.RedisURL(),
		QueueNamespace: testenv.Namespace(t),
		LogLevel:       "warn",
		LogFormat:      "json",
		DBMaxOpenConns: 8,
	}
}

// apiConfig is the configuration of a test's API on common, on :0, with the
// admin routes on for token.
func apiConfig(common config.Common, token string) config.API {
	return config.API{
		Common: common, HTTPAddr: "127.0.0.1:0", AdminToken: token,
		ShutdownTimeout: 5 * time.Second, EnqueueTimeout: 2 * time.Second,
	}
}

// launch starts an API on apiCommon and a worker on workerCommon that runs
// concurrency jobs at once and logs to workerLog; both stop when the test
// ends. The platform's common is apiCommon.
func launch(t testing.TB, apiCommon, workerCommon config.Common, concurrency int, workerLog *zap.Logger) *platform {
	t.Helper()
	ctx := context.Background()
	api, err := app.Start(ctx, apiConfig(apiCommon, adminToken), zap.NewNop())
	require.NoError(t, err)
	w, err := workerapp.Start(ctx, config.Worker{
		Common: workerCommon, HTTPAddr: "127.0.0.1:0", Concurrency: concurrency, DataDir: t.TempDir(),
		PollInterval: 10 * time.Millisecond, ShutdownTimeout: 5 * time.Second, SandboxMemoryMB: 2048,
	}, workerLog)
	require.NoError(t, err)
	t.Cleanup(func() {
		w.Shutdown()
		_ = api.Shutdown(context.Background())
	})
	return &platform{t: t, baseURL: "http://" + api.Addr(), workerURL: "http://" + w.Addr(), common: apiCommon}
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// decode decodes an answer's JSON body into a T: a body of another shape
// fails the test where it is read instead of panicking where it is used.
func decode[T any](t testing.TB, r response) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(r.Body, &v), "body: %s", r.Body)
	return v
}

// members is a JSON object's members, undecoded: for checks of which
// members an answer has, whatever their values.
func members(t testing.TB, body []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &m), "body: %s", body)
	return m
}

// asJSON is v as JSON, for failure messages (in which %v would show the
// addresses of v's pointers rather than what they point to).
func asJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

func (p *platform) do(method, path, token, contentType string, body []byte) response {
	p.t.Helper()
	req, err := http.NewRequest(method, p.baseURL+path, bytes.NewReader(body))
	require.NoError(p.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return p.send(req)
}

// send sends req and reads the whole answer.
func (p *platform) send(req *http.Request) response {
	p.t.Helper()
	res, err := http.DefaultClient.Do(req)
	require.NoError(p.t, err)
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	require.NoError(p.t, err)
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// walkPages GETs a listing, path with its query, and then each page after
// it by its next_cursor; it returns the items of every page in order, each
// decoded into a T, and how many pages there were.
func walkPages[T any](p *platform, path, token string) (items []T, pages int) {
	p.t.Helper()
	const maxPages = 10000 // a cursor that never ends the walk
	cursor := ""
	for pages < maxPages {
		next := path
		if cursor != "" {
			next += "&cursor=" + cursor
		}
		res := p.do(http.MethodGet, next, token, "", nil)
		require.Equal(p.t, http.StatusOK, res.Status, "%s", res.Body)
		page := decode[client.Page[T]](p.t, res)
		items = append(items, page.Data...)
		pages++
		if page.NextCursor == "" {
			return items, pages
		}
		cursor = page.NextCursor
	}
	p.t.Fatalf("%s: more than %d pages", path, maxPages)
	return nil, pages
}

func (p *platform) postJSON(path, token string, v any) response {
	p.t.Helper()
	b, err := json.Marshal(v)
	require.NoError(p.t, err)
	return p.do(http.MethodPost, path, token, "application/json", b)
}

// account creates an account through the admin API and returns a key for it.
func (p *platform) account(tier string) string {
	p.t.Helper()
	res := p.postJSON("/v1/admin/accounts", adminToken, map[string]string{"name": "test " + tier, "tier": tier})
	require.Equal(p.t, http.StatusCreated, res.Status, "%s", res.Body)
	acct := decode[client.AdminAccount](p.t, res)
	require.True(p.t, strings.HasPrefix(acct.WebhookSecret, "whsec_"))
	res = p.postJSON("/v1/admin/accounts/"+acct.ID+"/keys", adminToken, map[string]string{"name": "k"})
	require.Equal(p.t, http.StatusCreated, res.Status, "%s", res.Body)
	key := decode[client.Key](p.t, res)
	require.Equal(p.t, acct.ID, key.AccountID)
	return key.Key
}

func (p *platform) upload(key, fixture string) string {
	p.t.Helper()
	res := p.do(http.MethodPost, "/v1/modules?name="+fixture, key, "application/wasm", fixtures.Bytes(fixture))
	require.Contains(p.t, []int{http.StatusCreated, http.StatusOK}, res.Status, "%s", res.Body)
	return decode[client.Module](p.t, res).ID
}

func (p *platform) submit(key string, req map[string]any) string {
	p.t.Helper()
	res := p.postJSON("/v1/jobs", key, req)
	require.Equal(p.t, http.StatusCreated, res.Status, "%s", res.Body)
	job := decode[client.Job](p.t, res)
	require.Equal(p.t, "queued", job.Status)
	require.Equal(p.t, "/v1/jobs/"+job.ID, res.Header.Get("Location"))
	return job.ID
}

// await polls the job until it is terminal.
func (p *platform) await(key, id string) client.Job {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		res := p.do(http.MethodGet, "/v1/jobs/"+id, key, "", nil)
		if res.Status == http.StatusTooManyRequests { // the tier's read limit: back off
			time.Sleep(time.Second)
			continue
		}
		require.Equal(p.t, http.StatusOK, res.Status, "%s", res.Body)
		job := decode[client.Job](p.t, res)
		if job.Terminal() {
			return job
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("job %s did not finish", id)
	return client.Job{}
}

func (p *platform) run(key, fixture string, req map[string]any) client.Job {
	p.t.Helper()
	if req == nil {
		req = map[string]any{}
	}
	req["module_id"] = p.upload(key, fixture)
	return p.await(key, p.submit(key, req))
}

// runEnding runs fixture as run does and requires the job to end in status
// with the error code.
func (p *platform) runEnding(t *testing.T, key, fixture string, req map[string]any, status, code string) client.Job {
	t.Helper()
	job := p.run(key, fixture, req)
	require.Equal(t, status, job.Status)
	require.Equal(t, code, errorCode(job), "%+v", job.Error)
	return job
}

// errorCode is the code of the job's error, "" when it has none.
func errorCode(job client.Job) string {
	if job.Error == nil {
		return ""
	}
	return job.Error.Code
}

// firstField is the field named by a validation problem's first error.
func firstField(t testing.TB, problem client.Error) string {
	t.Helper()
	require.NotEmpty(t, problem.Fields, "no field errors: %+v", problem)
	return problem.Fields[0].Field
}

// returnValues is the job's return values as JSON values (numbers as
// float64, 64-bit integers past 2^53 as strings).
func returnValues(t testing.TB, job client.Job) []any {
	t.Helper()
	out := make([]any, len(job.ReturnValues))
	for i, v := range job.ReturnValues {
		require.NoError(t, json.Unmarshal(v, &out[i]), "return value %d: %s", i, v)
	}
	return out
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("pro")

	t.Run("hello succeeds and records its lifecycle", func(t *testing.T) {
		t.Parallel()
		job := p.run(key, fixtures.Hello, nil)
		require.Equal(t, "succeeded", job.Status)
		require.Equal(t, new("hello, world\n"), job.Stdout)
		require.Equal(t, new(""), job.Stderr)
		require.Equal(t, new(0), job.ExitCode)
		require.Nil(t, job.Error)
		require.Equal(t, 1, job.Attempts)
		require.NotNil(t, job.Usage.QueueMS)
		require.NotNil(t, job.Usage.RunMS)
		require.NotNil(t, job.Usage.MemoryPeakBytes)
		require.Positive(t, *job.Usage.MemoryPeakBytes)
		require.NotNil(t, job.StartedAt)
		require.NotNil(t, job.FinishedAt)

		res := p.do(http.MethodGet, "/v1/jobs/"+job.ID+"/events", key, "", nil)
		require.Equal(t, http.StatusOK, res.Status)
		var actions []string
		for _, e := range decode[client.Page[client.Event]](t, res).Data {
			actions = append(actions, e.Action)
		}
		require.Equal(t, []string{"job.created", "job.started", "job.finished"}, actions)
	})

	t.Run("args env and stdin reach the guest", func(t *testing.T) {
		t.Parallel()
		job := p.run(key, fixtures.Echo, map[string]any{
			"args": []string{"a", "b c"}, "env": map[string]string{"GREETING": "hi"}, "stdin": "from stdin",
		})
		require.Equal(t, "succeeded", job.Status, "%s", asJSON(job))
		require.Equal(t, new("a b c\nGREETING=hi\nfrom stdin"), job.Stdout)
		require.Equal(t, new("echo done\n"), job.Stderr)
	})

	t.Run("stdin_base64", func(t *testing.T) {
		t.Parallel()
		job := p.run(key, fixtures.Echo, map[string]any{"stdin_base64": "AAEC"})
		require.Equal(t, "succeeded", job.Status)
		require.Equal(t, new("\nGREETING=\n\x00\x01\x02"), job.Stdout, "NUL bytes are valid UTF-8")
	})

	t.Run("a Go wasip1 program", func(t *testing.T) {
		t.Parallel()
		if raceEnabled {
			// Compilation counts against the job's 5 s; a race-instrumented
			// child takes ~36 s to compile this 2.2 MB module (1 s without).
			t.Skip("too slow to compile under the race detector")
		}
		job := p.run(key, fixtures.GoHello, nil)
		require.Equal(t, "succeeded", job.Status, "%s", asJSON(job))
		require.Equal(t, new("hello from Go\n"), job.Stdout)
	})

	t.Run("non-zero exit fails with exit_nonzero", func(t *testing.T) {
		t.Parallel()
		job := p.runEnding(t, key, fixtures.Exit3, nil, "failed", "exit_nonzero")
		require.Equal(t, new(3), job.ExitCode)
		require.Equal(t, new("bye\n"), job.Stderr)
	})

	t.Run("a trap fails with trap", func(t *testing.T) {
		t.Parallel()
		job := p.runEnding(t, key, fixtures.Trap, nil, "failed", "trap")
		require.Contains(t, job.Error.Message, "unreachable")
		require.Nil(t, job.ExitCode)
	})

	t.Run("an infinite loop times out", func(t *testing.T) {
		t.Parallel()
		job := p.runEnding(t, key, fixtures.Loop, map[string]any{"timeout_ms": 200}, "timed_out", "timeout")
		require.Equal(t, 200, job.Limits.TimeoutMS)
	})

	t.Run("a module needing more memory than the job's limit", func(t *testing.T) {
		t.Parallel()
		p.runEnding(t, key, fixtures.BigMem, map[string]any{"memory_limit_mb": 128}, "failed", "memory_limit")
		// With enough memory the same module runs.
		job := p.run(key, fixtures.BigMem, map[string]any{"memory_limit_mb": 512})
		require.Equal(t, "succeeded", job.Status, "%+v", job.Error)
	})

	t.Run("output past the cap is cut and flagged", func(t *testing.T) {
		t.Parallel()
		job := p.run(key, fixtures.Spam, map[string]any{"max_output_bytes": 1000})
		require.Equal(t, "succeeded", job.Status)
		require.NotNil(t, job.Stdout)
		require.Len(t, *job.Stdout, 1000)
		require.True(t, job.StdoutTruncated)
		require.False(t, job.StderrTruncated)
	})

	t.Run("output that is not UTF-8 comes back as base64", func(t *testing.T) {
		t.Parallel()
		job := p.run(key, fixtures.BinOut, nil)
		require.Equal(t, "succeeded", job.Status)
		require.Nil(t, job.Stdout)
		require.Equal(t, new("//4AgA=="), job.StdoutBase64)
	})

	t.Run("deterministic jobs get a fixed clock and random seed", func(t *testing.T) {
		t.Parallel()
		det := map[string]any{"deterministic": true}
		a, b := p.run(key, fixtures.ClockRand, det), p.run(key, fixtures.ClockRand, map[string]any{"deterministic": true})
		require.Equal(t, "succeeded", a.Status, "%+v", a.Error)
		require.Equal(t, a.Stdout, b.Stdout)
		c, d := p.run(key, fixtures.ClockRand, nil), p.run(key, fixtures.ClockRand, nil)
		require.NotEqual(t, c.Stdout, d.Stdout, "real randomness differs between runs")
		require.NotEqual(t, a.Stdout, c.Stdout)
	})

	t.Run("an exported function with params", func(t *testing.T) {
		t.Parallel()
		job := p.run(key, fixtures.Reactor, map[string]any{"function": "add", "params": []any{2, 3}})
		require.Equal(t, "succeeded", job.Status, "%+v", job.Error)
		require.Equal(t, []any{5.0}, returnValues(t, job))
		// _initialize runs first.
		job = p.run(key, fixtures.Reactor, map[string]any{"function": "add_base", "params": []any{"5"}})
		require.Equal(t, []any{15.0}, returnValues(t, job))
		// i64 results beyond 2^53 come back as strings.
		job = p.run(key, fixtures.Reactor, map[string]any{"function": "mul64", "params": []any{"4294967296", 4194304}})
		require.Equal(t, "succeeded", job.Status)
		require.Equal(t, []any{"18014398509481984"}, returnValues(t, job))
		job = p.run(key, fixtures.Reactor, map[string]any{"function": "mul64", "params": []any{-3, 5}})
		require.Equal(t, []any{-15.0}, returnValues(t, job))
	})
}

func TestRequestsAreValidated(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("free")
	other := p.account("free")
	hello := p.upload(key, fixtures.Hello)

	problem := func(t *testing.T, res response, status int, code string) client.Error {
		t.Helper()
		require.Equal(t, status, res.Status, "%s", res.Body)
		require.Equal(t, "application/problem+json", res.Header.Get("Content-Type"))
		body := decode[client.Error](t, res)
		require.Equal(t, code, body.Code)
		require.Equal(t, status, body.Status)
		require.NotEmpty(t, body.Detail)
		require.NotEmpty(t, body.Title)
		require.Equal(t, "urn:wasmwizard:error:"+code, body.Type)
		require.Equal(t, res.Header.Get("X-Request-ID"), body.RequestID)
		return body
	}

	t.Run("no key", func(t *testing.T) {
		t.Parallel()
		res := p.do(http.MethodGet, "/v1/modules", "", "", nil)
		problem(t, res, http.StatusUnauthorized, "unauthorized")
		require.Contains(t, res.Header.Get("WWW-Authenticate"), "Bearer")
	})
	t.Run("malformed key", func(t *testing.T) {
		t.Parallel()
		problem(t, p.do(http.MethodGet, "/v1/modules", "nope", "", nil), http.StatusUnauthorized, "unauthorized")
	})
	t.Run("unknown key", func(t *testing.T) {
		t.Parallel()
		problem(t, p.do(http.MethodGet, "/v1/modules", "ww_"+strings.Repeat("A", 32), "", nil), http.StatusUnauthorized, "unauthorized")
	})
	t.Run("the admin token is not an API key and vice versa", func(t *testing.T) {
		t.Parallel()
		problem(t, p.do(http.MethodGet, "/v1/modules", adminToken, "", nil), http.StatusUnauthorized, "unauthorized")
		problem(t, p.postJSON("/v1/admin/accounts", key, map[string]string{"name": "x"}), http.StatusUnauthorized, "unauthorized")
		problem(t, p.postJSON("/v1/admin/accounts", "", map[string]string{"name": "x"}), http.StatusUnauthorized, "unauthorized")
	})
	t.Run("not wasm", func(t *testing.T) {
		t.Parallel()
		body := problem(t, p.do(http.MethodPost, "/v1/modules", key, "application/wasm", []byte("hello, not wasm")),
			http.StatusBadRequest, "invalid_module")
		require.Contains(t, body.Detail, "not a WebAssembly module")
	})
	t.Run("empty module", func(t *testing.T) {
		t.Parallel()
		problem(t, p.do(http.MethodPost, "/v1/modules", key, "application/wasm", nil), http.StatusBadRequest, "invalid_module")
	})
	t.Run("import outside WASI", func(t *testing.T) {
		t.Parallel()
		body := problem(t, p.do(http.MethodPost, "/v1/modules", key, "application/wasm", fixtures.Bytes(fixtures.BadImport)),
			http.StatusBadRequest, "invalid_module")
		require.Contains(t, body.Detail, `"host_log"`)
		require.Contains(t, body.Detail, `"env"`)
	})
	t.Run("memory minimum above the tier", func(t *testing.T) {
		t.Parallel()
		body := problem(t, p.do(http.MethodPost, "/v1/modules", key, "application/wasm", fixtures.Bytes(fixtures.BigMem)),
			http.StatusBadRequest, "invalid_module")
		require.Contains(t, body.Detail, "256 MiB")
	})
	t.Run("wrong content type", func(t *testing.T) {
		t.Parallel()
		problem(t, p.do(http.MethodPost, "/v1/modules", key, "text/plain", fixtures.Bytes(fixtures.Hello)),
			http.StatusUnsupportedMediaType, "unsupported_media_type")
	})
	t.Run("module over the tier's size", func(t *testing.T) {
		t.Parallel()
		big := append(fixtures.Bytes(fixtures.Hello), make([]byte, 10<<20)...)
		problem(t, p.do(http.MethodPost, "/v1/modules", key, "application/wasm", big), http.StatusRequestEntityTooLarge, "module_too_large")
	})
	t.Run("multipart without a module part", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		require.NoError(t, mw.WriteField("name", "x"))
		require.NoError(t, mw.Close())
		body := problem(t, p.do(http.MethodPost, "/v1/modules", key, mw.FormDataContentType(), buf.Bytes()),
			http.StatusBadRequest, "validation_failed")
		require.Equal(t, "module", firstField(t, body))
	})
	t.Run("unknown module", func(t *testing.T) {
		t.Parallel()
		problem(t, p.do(http.MethodGet, "/v1/modules/0190b0a0-0000-7000-8000-000000000000", key, "", nil), http.StatusNotFound, "not_found")
		problem(t, p.do(http.MethodGet, "/v1/modules/not-a-uuid", key, "", nil), http.StatusNotFound, "not_found")
		problem(t, p.postJSON("/v1/jobs", key, map[string]any{"module_id": "0190b0a0-0000-7000-8000-000000000000"}),
			http.StatusNotFound, "not_found")
	})
	t.Run("another account's module and job are not found", func(t *testing.T) {
		t.Parallel()
		mine := p.do(http.MethodGet, "/v1/modules/"+hello, other, "", nil)
		missing := p.do(http.MethodGet, "/v1/modules/0190b0a0-0000-7000-8000-000000000000", other, "", nil)
		require.Equal(t, http.StatusNotFound, mine.Status)
		require.Equal(t, missing.Status, mine.Status)
		problem(t, p.postJSON("/v1/jobs", other, map[string]any{"module_id": hello}), http.StatusNotFound, "not_found")
		job := p.submit(key, map[string]any{"module_id": hello})
		problem(t, p.do(http.MethodGet, "/v1/jobs/"+job, other, "", nil), http.StatusNotFound, "not_found")
		problem(t, p.do(http.MethodGet, "/v1/jobs/"+job+"/events", other, "", nil), http.StatusNotFound, "not_found")
		list := p.do(http.MethodGet, "/v1/modules", other, "", nil)
		require.Equal(t, http.StatusOK, list.Status)
		require.Empty(t, decode[client.Page[client.Module]](t, list).Data)
	})
	t.Run("malformed JSON names the problem", func(t *testing.T) {
		t.Parallel()
		body := problem(t, p.do(http.MethodPost, "/v1/jobs", key, "application/json", []byte(`{"module_id": `)),
			http.StatusBadRequest, "validation_failed")
		require.Equal(t, "body", firstField(t, body))
		body = problem(t, p.do(http.MethodPost, "/v1/jobs", key, "application/json", []byte(`{"module_id":"`+hello+`","timeout_ms":"soon"}`)),
			http.StatusBadRequest, "validation_failed")
		require.Equal(t, "timeout_ms", firstField(t, body))
		body = problem(t, p.do(http.MethodPost, "/v1/jobs", key, "application/json", []byte(`{"module_id":"`+hello+`","colour":"red"}`)),
			http.StatusBadRequest, "validation_failed")
		require.Equal(t, "colour", firstField(t, body))
		body = problem(t, p.postJSON("/v1/jobs", key, map[string]any{}), http.StatusBadRequest, "validation_failed")
		require.Equal(t, "module_id", firstField(t, body))
	})
	t.Run("limits above the tier are refused, not lowered", func(t *testing.T) {
		t.Parallel()
		body := problem(t, p.postJSON("/v1/jobs", key, map[string]any{"module_id": hello, "timeout_ms": 5001}),
			http.StatusBadRequest, "validation_failed")
		require.Equal(t, "timeout_ms", firstField(t, body))
		body = problem(t, p.postJSON("/v1/jobs", key, map[string]any{"module_id": hello, "memory_limit_mb": 129}),
			http.StatusBadRequest, "validation_failed")
		require.Equal(t, "memory_limit_mb", firstField(t, body))
	})
	t.Run("function and params must match the module", func(t *testing.T) {
		t.Parallel()
		body := problem(t, p.postJSON("/v1/jobs", key, map[string]any{"module_id": hello, "function": "nope"}),
			http.StatusBadRequest, "validation_failed")
		require.Equal(t, "function", firstField(t, body))
		reactor := p.upload(key, fixtures.Reactor)
		body = problem(t, p.postJSON("/v1/jobs", key, map[string]any{"module_id": reactor}), http.StatusBadRequest, "validation_failed")
		require.Equal(t, "function", firstField(t, body))
		body = problem(t, p.postJSON("/v1/jobs", key, map[string]any{"module_id": reactor, "function": "add", "params": []any{1}}),
			http.StatusBadRequest, "validation_failed")
		require.Equal(t, "params", firstField(t, body))
	})
	t.Run("request IDs are echoed when sane", func(t *testing.T) {
		t.Parallel()
		req, _ := http.NewRequest(http.MethodGet, p.baseURL+"/healthz", nil)
		req.Header.Set("X-Request-ID", "abc-123")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = res.Body.Close()
		require.Equal(t, "abc-123", res.Header.Get("X-Request-ID"))
		require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
		req.Header.Set("X-Request-ID", strings.Repeat("x", 500))
		res, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = res.Body.Close()
		require.Len(t, res.Header.Get("X-Request-ID"), 36)
	})
	t.Run("unknown route", func(t *testing.T) {
		t.Parallel()
		problem(t, p.do(http.MethodGet, "/v2/nothing", key, "", nil), http.StatusNotFound, "not_found")
	})
}

func TestModulesAreStoredOncePerAccountAndContent(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("free")
	first := p.do(http.MethodPost, "/v1/modules?name=a", key, "application/wasm", fixtures.Bytes(fixtures.Hello))
	require.Equal(t, http.StatusCreated, first.Status)
	again := p.do(http.MethodPost, "/v1/modules?name=b", key, "application/wasm", fixtures.Bytes(fixtures.Hello))
	require.Equal(t, http.StatusOK, again.Status)
	require.Equal(t, decode[client.Module](t, first).ID, decode[client.Module](t, again).ID)

	// Multipart upload with a name field.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	require.NoError(t, mw.WriteField("name", "echo"))
	fw, err := mw.CreateFormFile("module", "echo.wasm")
	require.NoError(t, err)
	_, err = fw.Write(fixtures.Bytes(fixtures.Echo))
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	res := p.do(http.MethodPost, "/v1/modules", key, mw.FormDataContentType(), buf.Bytes())
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	m := decode[client.Module](t, res)
	require.Equal(t, "echo", m.Name)
	require.True(t, m.WASI)
	require.Len(t, m.SHA256, 64)

	// Another account uploading the same bytes gets its own module.
	other := p.account("free")
	res = p.do(http.MethodPost, "/v1/modules", other, "application/wasm", fixtures.Bytes(fixtures.Hello))
	require.Equal(t, http.StatusCreated, res.Status)
	require.NotEqual(t, decode[client.Module](t, first).ID, decode[client.Module](t, res).ID)

	// Pagination walks every module exactly once.
	seen := map[string]bool{}
	modules, _ := walkPages[struct{ ID string }](p, "/v1/modules?limit=1", key)
	for _, m := range modules {
		require.False(t, seen[m.ID])
		seen[m.ID] = true
	}
	require.Len(t, seen, 2)
}

func TestJobListFilters(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("free")
	ok := p.run(key, fixtures.Hello, nil)
	bad := p.run(key, fixtures.Exit3, nil)

	list := func(q string) []string {
		res := p.do(http.MethodGet, "/v1/jobs"+q, key, "", nil)
		require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
		var ids []string
		for _, j := range decode[client.Page[client.Job]](t, res).Data {
			ids = append(ids, j.ID)
		}
		return ids
	}
	require.Equal(t, []string{bad.ID, ok.ID}, list(""), "newest first")
	require.Equal(t, []string{ok.ID}, list("?status=succeeded"))
	require.Equal(t, []string{bad.ID}, list("?module_id="+bad.ModuleID))
	require.Empty(t, list("?created_after="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)))
	res := p.do(http.MethodGet, "/v1/jobs?status=done", key, "", nil)
	require.Equal(t, http.StatusBadRequest, res.Status)
	res = p.do(http.MethodGet, "/v1/jobs?limit=201", key, "", nil)
	require.Equal(t, http.StatusBadRequest, res.Status)
	res = p.do(http.MethodGet, "/v1/jobs?cursor=!!", key, "", nil)
	require.Equal(t, http.StatusBadRequest, res.Status)
}

func TestHealth(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	for _, path := range []string{"/healthz", "/readyz", "/health", "/metrics"} {
		res := p.do(http.MethodGet, path, "", "", nil)
		require.Equal(t, http.StatusOK, res.Status, "%s: %s", path, res.Body)
	}
	require.Contains(t, string(p.do(http.MethodGet, "/metrics", "", "", nil).Body), "wasmwizard_http_request_duration_seconds")

	// The worker's own endpoints.
	key := p.account("free")
	p.run(key, fixtures.Hello, nil)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		res, err := http.Get(p.workerURL + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, "%s: %s", path, body)
		if path == "/metrics" {
			require.Contains(t, string(body), `wasmwizard_jobs_finished_total{error_code="",status="succeeded"} 1`)
			require.Regexp(t, `\nwasmwizard_module_store_bytes [1-9]`, string(body), "the module the job ran")
			require.Contains(t, string(body), "\nwasmwizard_compile_cache_bytes ")
		}
	}
}
