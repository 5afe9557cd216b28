package platformtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// A guest's output costs its own size in the answers that carry it, not
// six times it: '<' is not HTML-escaped, control characters (six bytes each
// in JSON) make the output base64, and list items carry no outputs at all.
func TestBigOutputsAreAnsweredAtTheirSize(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("pro")
	echo := p.upload(key, fixtures.Echo)
	const n = 1<<20 - 64 // stdin's limit; Echo copies it to stdout
	lt := strings.Repeat("<", n)

	// Sent without HTML escaping, or the request would be 6 MiB.
	var req bytes.Buffer
	enc := json.NewEncoder(&req)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(map[string]any{"module_id": echo, "stdin": lt, "max_output_bytes": 2 << 20}))
	res := p.do(http.MethodPost, "/v1/jobs", key, "application/json", req.Bytes())
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	id := decode[client.Job](t, res).ID
	p.await(key, id)
	res = p.do(http.MethodGet, "/v1/jobs/"+id, key, "", nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.Less(t, len(res.Body), n+4096, "the answer is the output's size (HTML escaping made it six times that)")
	job := decode[client.Job](t, res)
	require.Equal(t, "succeeded", job.Status)
	require.NotNil(t, job.Stdout)
	require.True(t, strings.HasSuffix(*job.Stdout, lt))
	require.Equal(t, new("echo done\n"), job.Stderr)
	require.NotContains(t, members(t, res.Body), "output_omitted")

	ctl := bytes.Repeat([]byte{1}, n)
	id2 := p.submit(key, map[string]any{"module_id": echo, "stdin_base64": base64.StdEncoding.EncodeToString(ctl),
		"max_output_bytes": 2 << 20})
	p.await(key, id2)
	res = p.do(http.MethodGet, "/v1/jobs/"+id2, key, "", nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.Less(t, len(res.Body), n*4/3+4096, "control characters are carried in base64")
	job = decode[client.Job](t, res)
	require.Nil(t, job.Stdout)
	require.NotNil(t, job.StdoutBase64)
	out, err := base64.StdEncoding.DecodeString(*job.StdoutBase64)
	require.NoError(t, err)
	require.True(t, bytes.HasSuffix(out, ctl))

	// A list carries no outputs, however large.
	res = p.do(http.MethodGet, "/v1/jobs?limit=5", key, "", nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.Less(t, len(res.Body), 8<<10)
	page := decode[client.Page[client.Job]](t, res)
	require.Len(t, page.Data, 2)
	for _, item := range page.Data {
		require.True(t, item.OutputOmitted)
		require.Nil(t, item.Stdout)
	}
	// Nor do they have the member stdout_base64.
	raw := decode[client.Page[map[string]json.RawMessage]](t, res)
	for _, item := range raw.Data {
		require.NotContains(t, item, "stdout_base64")
	}

	// The original synchronous call writes its output the same way.
	res = p.execute(key, fixtures.Bytes(fixtures.Echo), &lt)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	require.Less(t, len(res.Body), n+4096)
	executed := decode[struct {
		Output *string `json:"output"`
	}](t, res)
	require.NotNil(t, executed.Output)
	require.True(t, strings.HasSuffix(*executed.Output, lt))
}

// Text that Postgres cannot store (NUL) is refused with 400 naming the
// field, before the run's rate-limit token is spent.
func TestNULIsRefusedBeforeAnythingIsSpent(t *testing.T) {
	t.Parallel()
	p, key := startWithTier(t, "onerun", 1, 1000, 100)
	hello := p.upload(key, fixtures.Hello)
	reactor := p.upload(key, fixtures.Reactor)
	for field, req := range map[string]map[string]any{
		"metadata.k":  {"module_id": hello, "metadata": map[string]string{"k": "a\x00b"}},
		"metadata.a�": {"module_id": hello, "metadata": map[string]string{"a\x00": "v"}},
		"function":    {"module_id": hello, "function": "_st\x00art"},
		"env.E":       {"module_id": hello, "env": map[string]string{"E": "a\x00"}},
		"params[0]":   {"module_id": reactor, "function": "add", "params": []any{"1\x00", 2}},
	} {
		res := p.postJSON("/v1/jobs", key, req)
		require.Equal(t, http.StatusBadRequest, res.Status, "%s: %s", field, res.Body)
		body := decode[client.Error](t, res)
		require.Equal(t, "validation_failed", body.Code)
		require.Equal(t, field, firstField(t, body), "%s", res.Body)
		res = p.postJSON("/v1/jobs/batch", key, map[string]any{"jobs": []any{req}})
		require.Equal(t, http.StatusCreated, res.Status)
		require.Contains(t, string(res.Body), `"validation_failed"`)
	}
	// The one run of the minute is still there.
	res := p.postJSON("/v1/jobs", key, map[string]any{"module_id": hello})
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)

	// Modules: a name, or an export name, with NUL.
	res = p.do(http.MethodPost, "/v1/modules?name=a%00b", key, "application/wasm", fixtures.Bytes(fixtures.Hello))
	require.Equal(t, http.StatusBadRequest, res.Status, "%s", res.Body)
	require.Equal(t, "validation_failed", decode[client.Error](t, res).Code)
	wasm := bytes.Replace(fixtures.Bytes(fixtures.Trap), []byte("_start"), []byte("_s\x00art"), 1)
	res = p.do(http.MethodPost, "/v1/modules", key, "application/wasm", wasm)
	require.Equal(t, http.StatusBadRequest, res.Status, "%s", res.Body)
	require.Equal(t, "invalid_module", decode[client.Error](t, res).Code)

	// The admin API: names and tiers.
	for _, body := range []map[string]string{{"name": "a\x00b"}, {"name": "n", "tier": "pro\x00"}} {
		res = p.postJSON("/v1/admin/accounts", adminToken, body)
		require.Equal(t, http.StatusBadRequest, res.Status, "%s", res.Body)
	}
	res = p.do(http.MethodPatch, "/v1/admin/tiers/pro%00", adminToken, "application/json", []byte(`{"runs_per_minute":5}`))
	require.Equal(t, http.StatusNotFound, res.Status, "%s", res.Body)
}

// A trap whose stack trace names a function with a NUL ends the job
// failed/trap at its first attempt (it used to fail the result write, run
// three times and end worker_lost).
func TestTrapNamingAFunctionWithNULEndsFailedOnce(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("free")
	res := p.do(http.MethodPost, "/v1/modules?name=named", key, "application/wasm", fixtures.TrapNamed("a\x00b"))
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	job := p.await(key, p.submit(key, map[string]any{"module_id": decode[client.Module](t, res).ID}))
	require.Equal(t, "failed", job.Status)
	require.Equal(t, "trap", errorCode(job))
	require.Contains(t, job.Error.Message, "a\uFFFDb")
	require.Equal(t, 1, job.Attempts)
}
