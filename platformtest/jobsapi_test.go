package platformtest

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/api/app"
	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/shared/config"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	workerapp "github.com/wasmwizard/wasmwizard/worker/app"
)

// patience bounds every wait for something that must happen.
const patience = 60 * time.Second

// doWith is do with extra request headers.
func (p *platform) doWith(method, path, token string, headers map[string]string, body []byte) response {
	p.t.Helper()
	req, err := http.NewRequest(method, p.baseURL+path, bytes.NewReader(body))
	require.NoError(p.t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return p.send(req)
}

func (p *platform) job(key, id string) client.Job {
	p.t.Helper()
	res := p.do(http.MethodGet, "/v1/jobs/"+id, key, "", nil)
	require.Equal(p.t, http.StatusOK, res.Status, "%s", res.Body)
	return decode[client.Job](p.t, res)
}

// awaitStatus waits until the job has the given status.
func (p *platform) awaitStatus(key, id, status string) {
	p.t.Helper()
	require.Eventually(p.t, func() bool { return p.job(key, id).Status == status },
		patience, 5*time.Millisecond, "job %s never became %s", id, status)
}

func (p *platform) actions(key, id string) []string {
	p.t.Helper()
	res := p.do(http.MethodGet, "/v1/jobs/"+id+"/events", key, "", nil)
	require.Equal(p.t, http.StatusOK, res.Status, "%s", res.Body)
	var out []string
	for _, e := range decode[client.Page[client.Event]](p.t, res).Data {
		out = append(out, e.Action)
	}
	return out
}

func requireProblem(t *testing.T, res response, status int, code string) client.Error {
	t.Helper()
	require.Equal(t, status, res.Status, "%s", res.Body)
	require.Equal(t, "application/problem+json", res.Header.Get("Content-Type"))
	body := decode[client.Error](t, res)
	require.Equal(t, code, body.Code, "%s", res.Body)
	return body
}

func TestWait(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("pro")
	hello := p.upload(key, fixtures.Hello)
	loop := p.upload(key, fixtures.Loop)

	t.Run("submit and wait answers the finished job", func(t *testing.T) {
		t.Parallel()
		res := p.postJSON("/v1/jobs?wait=30s", key, map[string]any{"module_id": hello})
		require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
		job := decode[client.Job](t, res)
		require.Equal(t, "succeeded", job.Status)
		require.Equal(t, new("hello, world\n"), job.Stdout)
		require.Equal(t, "/v1/jobs/"+job.ID, res.Header.Get("Location"))
	})

	t.Run("seconds work as well as durations", func(t *testing.T) {
		t.Parallel()
		id := p.submit(key, map[string]any{"module_id": hello})
		res := p.do(http.MethodGet, "/v1/jobs/"+id+"?wait=30", key, "", nil)
		require.Equal(t, http.StatusOK, res.Status)
		require.Equal(t, "succeeded", decode[client.Job](t, res).Status)
	})

	t.Run("a wait that ends first answers the job as it is", func(t *testing.T) {
		t.Parallel()
		id := p.submit(key, map[string]any{"module_id": loop, "timeout_ms": 30000})
		res := p.do(http.MethodGet, "/v1/jobs/"+id+"?wait=100ms", key, "", nil)
		require.Equal(t, http.StatusOK, res.Status)
		require.Contains(t, []string{"queued", "running"}, decode[client.Job](t, res).Status)
		res = p.postJSON("/v1/jobs/"+id+"/cancel", key, nil)
		require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	})

	t.Run("the job finishes while another replica holds the wait", func(t *testing.T) {
		t.Parallel()
		other := p.another(adminToken)
		// The job runs for its whole timeout, so the wait is in place
		// long before it ends.
		id := p.submit(key, map[string]any{"module_id": loop, "timeout_ms": 1000})
		start := time.Now()
		res := other.do(http.MethodGet, "/v1/jobs/"+id+"?wait=60s", key, "", nil)
		require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
		job := decode[client.Job](t, res)
		require.Equal(t, "timed_out", job.Status, "answered when the job ended, not when the wait did")
		require.Less(t, time.Since(start), 60*time.Second)
	})

	t.Run("many waiters on one job", func(t *testing.T) {
		t.Parallel()
		other := p.another(adminToken)
		id := p.submit(key, map[string]any{"module_id": loop, "timeout_ms": 500})
		var wg sync.WaitGroup
		for i := range 20 {
			api := p
			if i%2 == 1 {
				api = other
			}
			wg.Go(func() {
				res := api.do(http.MethodGet, "/v1/jobs/"+id+"?wait=60s", key, "", nil)
				require.Equal(t, http.StatusOK, res.Status)
				require.Equal(t, "timed_out", decode[client.Job](t, res).Status)
			})
		}
		wg.Wait()
	})

	t.Run("bad wait values", func(t *testing.T) {
		t.Parallel()
		id := p.submit(key, map[string]any{"module_id": hello})
		for _, v := range []string{"61s", "61", "-1s", "-1", "soon", "1e400", "NaN", "2m"} {
			body := requireProblem(t, p.do(http.MethodGet, "/v1/jobs/"+id+"?wait="+v, key, "", nil), http.StatusBadRequest, "validation_failed")
			require.Equal(t, "wait", firstField(t, body), v)
			requireProblem(t, p.postJSON("/v1/jobs?wait="+v, key, map[string]any{"module_id": hello}), http.StatusBadRequest, "validation_failed")
		}
		requireProblem(t, p.do(http.MethodGet, "/v1/jobs/0190b0a0-0000-7000-8000-000000000000?wait=5s", key, "", nil),
			http.StatusNotFound, "not_found")
	})
}

func TestCancel(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("pro")
	other := p.account("pro")
	hello := p.upload(key, fixtures.Hello)
	loop := p.upload(key, fixtures.Loop)

	t.Run("a running job's sandbox is stopped", func(t *testing.T) {
		t.Parallel()
		id := p.submit(key, map[string]any{"module_id": loop, "timeout_ms": 30000})
		p.awaitStatus(key, id, "running")
		res := p.postJSON("/v1/jobs/"+id+"/cancel", key, nil)
		require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
		job := decode[client.Job](t, res)
		require.Equal(t, "cancelled", job.Status)
		require.Equal(t, "cancelled", errorCode(job))
		require.NotNil(t, job.FinishedAt)
		require.Equal(t, []string{"job.created", "job.started", "job.cancel_requested", "job.cancelled"}, p.actions(key, id))

		requireProblem(t, p.postJSON("/v1/jobs/"+id+"/cancel", key, nil), http.StatusConflict, "conflict")
	})

	t.Run("terminal jobs conflict", func(t *testing.T) {
		t.Parallel()
		res := p.postJSON("/v1/jobs?wait=30s", key, map[string]any{"module_id": hello})
		job := decode[client.Job](t, res)
		require.Equal(t, "succeeded", job.Status)
		requireProblem(t, p.postJSON("/v1/jobs/"+job.ID+"/cancel", key, nil), http.StatusConflict, "conflict")
	})

	t.Run("unknown and other accounts' jobs are not found", func(t *testing.T) {
		t.Parallel()
		requireProblem(t, p.postJSON("/v1/jobs/0190b0a0-0000-7000-8000-000000000000/cancel", key, nil), http.StatusNotFound, "not_found")
		requireProblem(t, p.postJSON("/v1/jobs/nope/cancel", key, nil), http.StatusNotFound, "not_found")
		id := p.submit(key, map[string]any{"module_id": loop, "timeout_ms": 30000})
		requireProblem(t, p.postJSON("/v1/jobs/"+id+"/cancel", other, nil), http.StatusNotFound, "not_found")
		require.Equal(t, http.StatusOK, p.postJSON("/v1/jobs/"+id+"/cancel", key, nil).Status)
	})

	t.Run("cancel racing completion ends in exactly one terminal state", func(t *testing.T) {
		t.Parallel()
		const n = 24
		ids := make([]string, n)
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				ids[i] = p.submit(key, map[string]any{"module_id": hello})
				// Spread the cancels over the job's life: queued, running,
				// finishing, finished.
				time.Sleep(time.Duration(i%8) * 2 * time.Millisecond)
				res := p.postJSON("/v1/jobs/"+ids[i]+"/cancel", key, nil)
				codes[i] = res.Status
			})
		}
		wg.Wait()
		// A job submitted after all the others finishing means the queue
		// delivered everything before it.
		p.run(key, fixtures.Hello, nil)
		outcomes := map[string]int{}
		for i, id := range ids {
			job := p.await(key, id)
			switch codes[i] {
			case http.StatusOK:
				require.Equal(t, "cancelled", job.Status)
			case http.StatusConflict:
				require.Equal(t, "succeeded", job.Status)
			default:
				t.Fatalf("cancel answered %d", codes[i])
			}
			outcomes[job.Status]++
			acts := p.actions(key, id)
			terminals := 0
			for _, a := range acts {
				if a == "job.finished" || a == "job.cancelled" {
					terminals++
				}
			}
			require.Equal(t, 1, terminals, "%s: %v", id, acts)
			if job.Status == "cancelled" && !strings.Contains(strings.Join(acts, ","), "job.started") {
				require.Equal(t, []string{"job.created", "job.cancelled"}, acts, "a job cancelled while queued never runs")
			}
		}
		t.Logf("outcomes: %v", outcomes)
	})
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("pro")
	hello := p.upload(key, fixtures.Hello)
	echo := p.upload(key, fixtures.Echo)
	body := func(v map[string]any) []byte {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return b
	}

	t.Run("same key and body replays the job", func(t *testing.T) {
		t.Parallel()
		h := map[string]string{"Idempotency-Key": "order-1"}
		first := p.doWith(http.MethodPost, "/v1/jobs", key, h, body(map[string]any{"module_id": hello, "env": map[string]string{"A": "1", "B": "2"}}))
		require.Equal(t, http.StatusCreated, first.Status, "%s", first.Body)
		require.Empty(t, first.Header.Get("Idempotent-Replayed"))
		// Key order and spacing do not make a different request.
		again := p.doWith(http.MethodPost, "/v1/jobs?wait=30s", key, h, []byte(`{ "env": {"B":"2","A":"1"}, "module_id": "`+hello+`" }`))
		require.Equal(t, http.StatusOK, again.Status, "%s", again.Body)
		require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
		require.Equal(t, decode[client.Job](t, first).ID, decode[client.Job](t, again).ID)
		require.Equal(t, "succeeded", decode[client.Job](t, again).Status, "a replay may wait too")
		require.Equal(t, first.Header.Get("Location"), again.Header.Get("Location"))

		reused := p.doWith(http.MethodPost, "/v1/jobs", key, h, body(map[string]any{"module_id": echo}))
		requireProblem(t, reused, http.StatusUnprocessableEntity, "idempotency_key_reused")
	})

	t.Run("keys are per account", func(t *testing.T) {
		t.Parallel()
		other := p.account("pro")
		otherHello := p.upload(other, fixtures.Hello)
		h := map[string]string{"Idempotency-Key": "shared-name"}
		a := p.doWith(http.MethodPost, "/v1/jobs", key, h, body(map[string]any{"module_id": hello}))
		b := p.doWith(http.MethodPost, "/v1/jobs", other, h, body(map[string]any{"module_id": otherHello}))
		require.Equal(t, http.StatusCreated, a.Status)
		require.Equal(t, http.StatusCreated, b.Status)
		require.NotEqual(t, decode[client.Job](t, a).ID, decode[client.Job](t, b).ID)
	})

	t.Run("concurrent requests with one key make exactly one job", func(t *testing.T) {
		t.Parallel()
		const n = 12
		h := map[string]string{"Idempotency-Key": "concurrent"}
		res := make([]response, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				res[i] = p.doWith(http.MethodPost, "/v1/jobs", key, h, body(map[string]any{"module_id": hello, "args": []string{"x"}}))
			})
		}
		wg.Wait()
		ids := map[string]bool{}
		created := 0
		for _, r := range res {
			require.Contains(t, []int{http.StatusCreated, http.StatusOK}, r.Status, "%s", r.Body)
			if r.Status == http.StatusCreated {
				created++
			} else {
				require.Equal(t, "true", r.Header.Get("Idempotent-Replayed"))
			}
			ids[decode[client.Job](t, r).ID] = true
		}
		require.Equal(t, 1, created)
		require.Len(t, ids, 1)
	})

	t.Run("a replay answers even after the module is deleted", func(t *testing.T) {
		t.Parallel()
		exit3 := p.upload(key, fixtures.Exit3)
		h := map[string]string{"Idempotency-Key": "before-delete"}
		first := p.doWith(http.MethodPost, "/v1/jobs?wait=30s", key, h, body(map[string]any{"module_id": exit3}))
		require.Equal(t, http.StatusCreated, first.Status, "%s", first.Body)
		require.Equal(t, http.StatusNoContent, p.do(http.MethodDelete, "/v1/modules/"+exit3, key, "", nil).Status)
		again := p.doWith(http.MethodPost, "/v1/jobs", key, h, body(map[string]any{"module_id": exit3}))
		require.Equal(t, http.StatusOK, again.Status, "%s", again.Body)
		require.Equal(t, decode[client.Job](t, first).ID, decode[client.Job](t, again).ID)
		// Without the key, the deleted module is not found.
		requireProblem(t, p.postJSON("/v1/jobs", key, map[string]any{"module_id": exit3}), http.StatusNotFound, "not_found")
	})

	t.Run("a refused request does not take the key", func(t *testing.T) {
		t.Parallel()
		h := map[string]string{"Idempotency-Key": "first-try-invalid"}
		requireProblem(t, p.doWith(http.MethodPost, "/v1/jobs", key, h, body(map[string]any{"module_id": hello, "timeout_ms": 999999})),
			http.StatusBadRequest, "validation_failed")
		res := p.doWith(http.MethodPost, "/v1/jobs", key, h, body(map[string]any{"module_id": hello}))
		require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	})

	t.Run("bad keys", func(t *testing.T) {
		t.Parallel()
		for _, k := range []string{strings.Repeat("k", 256), "tab\there"} {
			body := requireProblem(t, p.doWith(http.MethodPost, "/v1/jobs", key, map[string]string{"Idempotency-Key": k},
				body(map[string]any{"module_id": hello})), http.StatusBadRequest, "validation_failed")
			require.Equal(t, "Idempotency-Key", firstField(t, body))
		}
		res := p.doWith(http.MethodPost, "/v1/jobs", key, map[string]string{"Idempotency-Key": strings.Repeat("k", 255)},
			body(map[string]any{"module_id": hello}))
		require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	})
}

func TestBatch(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("pro")
	other := p.account("pro")
	hello := p.upload(key, fixtures.Hello)
	theirs := p.upload(other, fixtures.Echo)

	res := p.postJSON("/v1/jobs/batch", key, map[string]any{"jobs": []any{
		map[string]any{"module_id": hello},
		map[string]any{"args": []string{"no module"}},
		map[string]any{"module_id": theirs},
		map[string]any{"module_id": hello, "colour": "red"},
		map[string]any{"module_id": hello, "args": []string{"second"}},
	}})
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	data := decode[client.Page[client.BatchItem]](t, res).Data
	require.Len(t, data, 5)
	for _, i := range []int{0, 4} {
		require.Nil(t, data[i].Error)
		job := data[i].Job
		require.NotNil(t, job, "item %d", i)
		require.Equal(t, "queued", job.Status)
		require.Equal(t, "succeeded", p.await(key, job.ID).Status)
	}
	for i, want := range map[int]string{1: "validation_failed", 2: "not_found", 3: "validation_failed"} {
		require.Nil(t, data[i].Job)
		prob := data[i].Error
		require.NotNil(t, prob, "item %d", i)
		require.Equal(t, want, prob.Code, "item %d", i)
		require.NotEmpty(t, prob.Detail)
		require.Equal(t, res.Header.Get("X-Request-ID"), prob.RequestID)
	}
	require.Equal(t, "module_id", firstField(t, *data[1].Error))

	t.Run("refused batches", func(t *testing.T) {
		t.Parallel()
		many := make([]any, 101)
		for i := range many {
			many[i] = map[string]any{"module_id": hello}
		}
		requireProblem(t, p.postJSON("/v1/jobs/batch", key, map[string]any{"jobs": many}), http.StatusBadRequest, "validation_failed")
		requireProblem(t, p.postJSON("/v1/jobs/batch", key, map[string]any{"jobs": []any{}}), http.StatusBadRequest, "validation_failed")
		requireProblem(t, p.postJSON("/v1/jobs/batch", key, map[string]any{}), http.StatusBadRequest, "validation_failed")
		requireProblem(t, p.postJSON("/v1/jobs/batch", key, []any{}), http.StatusBadRequest, "validation_failed")
		requireProblem(t, p.doWith(http.MethodPost, "/v1/jobs/batch", key, map[string]string{"Idempotency-Key": "k"},
			[]byte(`{"jobs":[{"module_id":"`+hello+`"}]}`)), http.StatusBadRequest, "validation_failed")
		requireProblem(t, p.do(http.MethodPost, "/v1/jobs/batch", "", "application/json", []byte(`{"jobs":[]}`)), http.StatusUnauthorized, "unauthorized")
	})
}

func TestPaginationWhileJobsAreInserted(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("pro")
	hello := p.upload(key, fixtures.Hello)
	before := map[string]bool{}
	for range 25 {
		before[p.submit(key, map[string]any{"module_id": hello})] = true
	}

	stop := make(chan struct{})
	inserted := make(chan int)
	go func() {
		n := 0
		defer func() { inserted <- n }()
		for {
			select {
			case <-stop:
				return
			default:
				p.submit(key, map[string]any{"module_id": hello})
				n++
			}
		}
	}()
	seen := map[string]int{}
	jobs, pages := walkPages[struct{ ID string }](p, "/v1/jobs?limit=4", key)
	for _, j := range jobs {
		seen[j.ID]++
	}
	close(stop)
	t.Logf("%d pages; %d jobs inserted while paging", pages, <-inserted)
	for id, n := range seen {
		require.Equal(t, 1, n, "job %s listed %d times", id, n)
	}
	for id := range before {
		require.Contains(t, seen, id, "a job that existed before paging began is missing")
	}
}

func TestDeleteModule(t *testing.T) {
	t.Parallel()
	p := startPlatform(t) // two sandbox slots
	key := p.account("pro")
	other := p.account("pro")
	loop := p.upload(key, fixtures.Loop)
	hello := p.upload(key, fixtures.Hello)

	// Both slots busy, so hello's jobs stay queued.
	busy := []string{
		p.submit(key, map[string]any{"module_id": loop, "timeout_ms": 30000}),
		p.submit(key, map[string]any{"module_id": loop, "timeout_ms": 30000}),
	}
	for _, id := range busy {
		p.awaitStatus(key, id, "running")
	}
	queued := []string{p.submit(key, map[string]any{"module_id": hello}), p.submit(key, map[string]any{"module_id": hello})}

	requireProblem(t, p.do(http.MethodDelete, "/v1/modules/"+hello, other, "", nil), http.StatusNotFound, "not_found")
	requireProblem(t, p.do(http.MethodDelete, "/v1/modules/0190b0a0-0000-7000-8000-000000000000", key, "", nil), http.StatusNotFound, "not_found")
	res := p.do(http.MethodDelete, "/v1/modules/"+hello, key, "", nil)
	require.Equal(t, http.StatusNoContent, res.Status, "%s", res.Body)
	require.Empty(t, res.Body)

	for _, id := range queued {
		job := p.job(key, id)
		require.Equal(t, "failed", job.Status)
		require.Equal(t, "module_deleted", errorCode(job))
		require.Equal(t, []string{"job.created", "job.finished"}, p.actions(key, id))
	}
	requireProblem(t, p.do(http.MethodGet, "/v1/modules/"+hello, key, "", nil), http.StatusNotFound, "not_found")
	requireProblem(t, p.do(http.MethodDelete, "/v1/modules/"+hello, key, "", nil), http.StatusNotFound, "not_found")
	requireProblem(t, p.postJSON("/v1/jobs", key, map[string]any{"module_id": hello}), http.StatusNotFound, "not_found")
	list := decode[client.Page[client.Module]](t, p.do(http.MethodGet, "/v1/modules", key, "", nil)).Data
	require.Len(t, list, 1, "a deleted module is not listed")

	// Running jobs of a deleted module finish; uploading the bytes again
	// makes a new module.
	res = p.do(http.MethodDelete, "/v1/modules/"+loop, key, "", nil)
	require.Equal(t, http.StatusNoContent, res.Status)
	for _, id := range busy {
		require.Equal(t, "running", p.job(key, id).Status, "events: %v", p.actions(key, id))
		require.Equal(t, http.StatusOK, p.postJSON("/v1/jobs/"+id+"/cancel", key, nil).Status)
	}
	again := p.upload(key, fixtures.Hello)
	require.NotEqual(t, hello, again)
	// The deleted jobs never run, even after the slots free up.
	p.run(key, fixtures.Hello, nil)
	for _, id := range queued {
		require.Equal(t, []string{"job.created", "job.finished"}, p.actions(key, id))
	}
}

func (p *platform) execute(key string, wasm []byte, input *string) response {
	p.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if wasm != nil {
		fw, err := mw.CreateFormFile("wasm", "module.wasm")
		require.NoError(p.t, err)
		_, err = fw.Write(wasm)
		require.NoError(p.t, err)
	}
	if input != nil {
		require.NoError(p.t, mw.WriteField("input", *input))
	}
	require.NoError(p.t, mw.Close())
	return p.do(http.MethodPost, "/api/execute", key, mw.FormDataContentType(), buf.Bytes())
}

func TestExecute(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("free")
	str := func(s string) *string { return &s }
	answer := func(t *testing.T, res response, status int) (output, errMsg *string) {
		t.Helper()
		require.Equal(t, status, res.Status, "%s", res.Body)
		require.Equal(t, "application/json", strings.Split(res.Header.Get("Content-Type"), ";")[0])
		require.Len(t, members(t, res.Body), 2, "%s", res.Body)
		body := decode[struct {
			Output *string `json:"output"`
			Error  *string `json:"error"`
		}](t, res)
		return body.Output, body.Error
	}

	t.Run("hello", func(t *testing.T) {
		t.Parallel()
		out, errMsg := answer(t, p.execute(key, fixtures.Bytes(fixtures.Hello), nil), http.StatusOK)
		require.Equal(t, new("hello, world\n"), out)
		require.Nil(t, errMsg)
	})
	t.Run("input is stdin", func(t *testing.T) {
		t.Parallel()
		res := p.execute(key, fixtures.Bytes(fixtures.Echo), str("from input"))
		out, errMsg := answer(t, res, http.StatusOK)
		require.Equal(t, new("\nGREETING=\nfrom input"), out)
		require.Nil(t, errMsg)
		// It is an ordinary job of the account.
		require.Equal(t, "succeeded", p.job(key, strings.TrimPrefix(res.Header.Get("Location"), "/v1/jobs/")).Status)
	})
	t.Run("a failing guest", func(t *testing.T) {
		t.Parallel()
		out, errMsg := answer(t, p.execute(key, fixtures.Bytes(fixtures.Exit3), nil), http.StatusOK)
		require.Equal(t, new(""), out)
		require.NotNil(t, errMsg)
		require.Contains(t, *errMsg, "exit_nonzero")
	})
	t.Run("request errors", func(t *testing.T) {
		t.Parallel()
		out, errMsg := answer(t, p.execute(key, nil, str("x")), http.StatusBadRequest)
		require.Nil(t, out)
		require.NotNil(t, errMsg)
		require.Contains(t, *errMsg, "wasm")
		_, errMsg = answer(t, p.execute(key, []byte("not wasm"), nil), http.StatusBadRequest)
		require.NotNil(t, errMsg)
		require.Contains(t, *errMsg, "not a WebAssembly module")
		_, errMsg = answer(t, p.execute(key, fixtures.Bytes(fixtures.BadImport), nil), http.StatusBadRequest)
		require.NotNil(t, errMsg)
		require.Contains(t, *errMsg, "host_log")
		_, _ = answer(t, p.execute(key, append(fixtures.Bytes(fixtures.Hello), make([]byte, 10<<20)...), nil), http.StatusRequestEntityTooLarge)
		_, _ = answer(t, p.do(http.MethodPost, "/api/execute", key, "application/wasm", fixtures.Bytes(fixtures.Hello)), http.StatusUnsupportedMediaType)
		requireProblem(t, p.execute("", fixtures.Bytes(fixtures.Hello), nil), http.StatusUnauthorized, "unauthorized")
	})
}

func TestBadWaitIsNotAJob(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("free")
	hello := p.upload(key, fixtures.Hello)
	requireProblem(t, p.postJSON("/v1/jobs?wait=forever", key, map[string]any{"module_id": hello}), http.StatusBadRequest, "validation_failed")
	list := decode[client.Page[client.Job]](t, p.do(http.MethodGet, "/v1/jobs", key, "", nil)).Data
	require.Empty(t, list, asJSON(list))
}

// With a worker that polls Redis only every few seconds, jobs still start at
// once: the API rings the doorbell, and the idle worker is waiting on it.
// The proof is that a job is finished while asynq still holds its task as
// pending (not yet delivered); the task is acknowledged when asynq delivers
// it later.
func TestDoorbellStartsJobsBetweenPolls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	common := config.Common{
		DatabaseURL: testenv.DB(t), RedisURL: testenv.RedisURL(), QueueNamespace: testenv.Namespace(t),
		LogLevel: "warn", LogFormat: "json", DBMaxOpenConns: 8,
	}
	apiCfg := config.API{Common: common, HTTPAddr: "127.0.0.1:0", AdminToken: adminToken,
		ShutdownTimeout: 5 * time.Second, EnqueueTimeout: 2 * time.Second}
	api, err := app.Start(ctx, apiCfg, zap.NewNop())
	require.NoError(t, err)
	w, err := workerapp.Start(ctx, config.Worker{
		Common: common, HTTPAddr: "127.0.0.1:0", Concurrency: 2, DataDir: t.TempDir(),
		PollInterval: 5 * time.Second, ShutdownTimeout: 5 * time.Second, SandboxMemoryMB: 2048,
	}, zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(func() {
		w.Shutdown()
		_ = api.Shutdown(context.Background())
	})
	redisOpt, err := asynq.ParseRedisURI(testenv.RedisURL())
	require.NoError(t, err)
	inspector := asynq.NewInspector(redisOpt)
	t.Cleanup(func() { _ = inspector.Close() })
	p := &platform{t: t, baseURL: "http://" + api.Addr(), common: common}
	key := p.account("free")
	hello := p.upload(key, fixtures.Hello)
	beforeAsynq := 0
	for range 3 {
		res := p.postJSON("/v1/jobs?wait=20s", key, map[string]any{"module_id": hello})
		require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
		job := decode[client.Job](t, res)
		require.Equal(t, "succeeded", job.Status)
		info, err := inspector.GetTaskInfo(tasks.TierQueue(common.QueueNamespace, "free"), job.ID)
		if err == nil && info.State == asynq.TaskStatePending {
			beforeAsynq++
		}
	}
	require.Positive(t, beforeAsynq, "no job ran before asynq delivered it")
	// A doorbell run is cancelled like any other.
	loop := p.upload(key, fixtures.Loop)
	id := p.submit(key, map[string]any{"module_id": loop})
	p.awaitStatus(key, id, "running")
	res := p.postJSON("/v1/jobs/"+id+"/cancel", key, nil)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	require.Equal(t, "cancelled", decode[client.Job](t, res).Status)
}
