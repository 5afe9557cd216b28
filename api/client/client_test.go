package client_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/api/client/clienttest"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func str(s string) *string { return &s }

// ensure uploads the named fixture with c unless the platform has it.
func ensure(ctx context.Context, t *testing.T, c *client.Client, fixture string) *client.Module {
	t.Helper()
	m, _, err := c.EnsureModule(ctx, fixtures.Bytes(fixture), nil)
	require.NoError(t, err)
	return m
}

func TestModules(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	c := platform.Client(t, "free")
	wasm := fixtures.Bytes(fixtures.Hello)

	m, uploaded, err := c.EnsureModule(ctx, wasm, &client.UploadOptions{Name: "hello"})
	require.NoError(t, err)
	require.True(t, uploaded)
	sum := sha256.Sum256(wasm)
	require.Equal(t, hex.EncodeToString(sum[:]), m.SHA256)
	require.Equal(t, "hello", m.Name)
	require.True(t, m.WASI)

	again, uploaded, err := c.EnsureModule(ctx, wasm, nil)
	require.NoError(t, err)
	require.False(t, uploaded, "the platform has these bytes: no upload")
	require.Equal(t, m.ID, again.ID)

	same, created, err := c.UploadModule(ctx, wasm, nil)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, m.ID, same.ID)

	got, err := c.GetModule(ctx, m.ID)
	require.NoError(t, err)
	require.Equal(t, m.SizeBytes, got.SizeBytes)
	page, err := c.ListModules(ctx, client.ListOptions{Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Data, 1)
	require.Empty(t, page.NextCursor)

	_, _, err = c.UploadModule(ctx, []byte("not wasm"), nil)
	var e *client.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, client.CodeInvalidModule, e.Code)
	require.Equal(t, http.StatusBadRequest, e.Status)
	require.NotEmpty(t, e.RequestID)
	require.NotEmpty(t, e.Detail)

	require.NoError(t, c.DeleteModule(ctx, m.ID))
	_, err = c.GetModule(ctx, m.ID)
	require.True(t, client.IsCode(err, client.CodeNotFound), "%v", err)
	_, found, err := c.ModuleBySHA256(ctx, m.SHA256)
	require.NoError(t, err)
	require.False(t, found)
}

func TestSubmitWaitAndIdempotency(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	c := platform.Client(t, "free")
	m := ensure(ctx, t, c, fixtures.Echo)

	req := client.JobRequest{ModuleID: m.ID, Args: []string{"a", "b"}, Env: map[string]string{"GREETING": "hi"},
		Stdin: str("in\n"), Metadata: map[string]string{"k": "v"}}
	job, err := c.Submit(ctx, req, &client.SubmitOptions{IdempotencyKey: "order-1"})
	require.NoError(t, err)
	require.Equal(t, client.StatusQueued, job.Status)
	done, err := c.Wait(ctx, job.ID)
	require.NoError(t, err)
	require.Equal(t, client.StatusSucceeded, done.Status)
	require.Equal(t, "a b\nGREETING=hi\nin\n", *done.Stdout)
	require.Equal(t, "echo done\n", *done.Stderr)
	require.Equal(t, 0, *done.ExitCode)
	require.Equal(t, "v", done.Metadata["k"])

	// The same key and body: the same job. Another body: refused.
	replay, err := c.Submit(ctx, req, &client.SubmitOptions{IdempotencyKey: "order-1"})
	require.NoError(t, err)
	require.Equal(t, job.ID, replay.ID)
	req.Args = []string{"c"}
	_, err = c.Submit(ctx, req, &client.SubmitOptions{IdempotencyKey: "order-1"})
	require.True(t, client.IsCode(err, client.CodeIdempotencyKeyReused), "%v", err)

	// Submit with a wait answers the finished job.
	waited, err := c.Submit(ctx, client.JobRequest{ModuleID: m.ID}, &client.SubmitOptions{Wait: 30 * time.Second})
	require.NoError(t, err)
	require.Equal(t, client.StatusSucceeded, waited.Status)

	// A job failing with exit code 3.
	m3 := ensure(ctx, t, c, fixtures.Exit3)
	j3, err := c.Submit(ctx, client.JobRequest{ModuleID: m3.ID}, &client.SubmitOptions{Wait: 30 * time.Second})
	require.NoError(t, err)
	j3, err = c.Wait(ctx, j3.ID)
	require.NoError(t, err)
	require.Equal(t, client.StatusFailed, j3.Status)
	require.Equal(t, 3, *j3.ExitCode)
	require.Equal(t, "exit_nonzero", j3.Error.Code)
}

func TestValidationErrorsNameTheirFields(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	c := platform.Client(t, "free")
	m := ensure(ctx, t, c, fixtures.Hello)
	_, err := c.Submit(ctx, client.JobRequest{ModuleID: m.ID, TimeoutMS: 10_000_000, MemoryLimitMB: 100000}, nil)
	var e *client.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, client.CodeValidationFailed, e.Code)
	fields := map[string]bool{}
	for _, f := range e.Fields {
		fields[f.Field] = true
		require.NotEmpty(t, f.Message)
	}
	require.True(t, fields["timeout_ms"] && fields["memory_limit_mb"], "%+v", e.Fields)
	require.Contains(t, e.Error(), "validation_failed")

	bad, err := client.New(platform.URL, "ww_00000000000000000000000000000000")
	require.NoError(t, err)
	_, err = bad.Account(ctx)
	require.True(t, client.IsCode(err, client.CodeUnauthorized), "%v", err)

	_, err = client.New("ftp://x", "k")
	require.Error(t, err)
}

func TestListCancelEventsBatch(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	c := platform.Client(t, "free")
	loop := ensure(ctx, t, c, fixtures.Loop)
	hello := ensure(ctx, t, c, fixtures.Hello)

	items, err := c.SubmitBatch(ctx, []client.JobRequest{{ModuleID: hello.ID}, {ModuleID: hello.ID, Function: "nope", TimeoutMS: -1}, {ModuleID: loop.ID}})
	require.NoError(t, err)
	require.Len(t, items, 3)
	require.NotNil(t, items[0].Job)
	require.NotNil(t, items[1].Error)
	require.Equal(t, client.CodeValidationFailed, items[1].Error.Code)
	running := items[2].Job

	cancelled, err := c.CancelJob(ctx, running.ID)
	require.NoError(t, err)
	require.Equal(t, client.StatusCancelled, cancelled.Status)
	_, err = c.CancelJob(ctx, running.ID)
	require.True(t, client.IsCode(err, client.CodeConflict), "%v", err)

	events, err := c.JobEvents(ctx, running.ID)
	require.NoError(t, err)
	require.Equal(t, "job.created", events[0].Action)
	require.Equal(t, "job.cancelled", events[len(events)-1].Action)

	done, err := c.Wait(ctx, items[0].Job.ID)
	require.NoError(t, err)
	require.Equal(t, "hello, world\n", *done.Stdout)

	page, err := c.ListJobs(ctx, client.JobFilter{Status: client.StatusCancelled})
	require.NoError(t, err)
	require.Len(t, page.Data, 1)
	require.Equal(t, running.ID, page.Data[0].ID)
	page, err = c.ListJobs(ctx, client.JobFilter{ModuleID: hello.ID, CreatedAfter: time.Now().Add(-time.Hour), ListOptions: client.ListOptions{Limit: 1}})
	require.NoError(t, err)
	require.Len(t, page.Data, 1)
	require.True(t, page.Data[0].OutputOmitted)
	require.Empty(t, page.NextCursor)

	deliveries, err := c.JobDeliveries(ctx, done.ID)
	require.NoError(t, err)
	require.Empty(t, deliveries)
	_, err = c.RetryDelivery(ctx, done.ID)
	require.True(t, client.IsCode(err, client.CodeNotFound), "%v", err)

	_, err = c.GetJob(ctx, "not-a-uuid")
	require.True(t, client.IsCode(err, client.CodeNotFound), "%v", err)
}

func TestWaitEndsWithItsContext(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	c := platform.Client(t, "free")
	loop := ensure(ctx, t, c, fixtures.Loop)
	job, err := c.Submit(ctx, client.JobRequest{ModuleID: loop.ID, TimeoutMS: 5000}, nil)
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = c.Wait(short, job.ID)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = c.CancelJob(ctx, job.ID)
	require.NoError(t, err)
}

func TestAccount(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	c := platform.Client(t, "basic")
	a, err := c.Account(ctx)
	require.NoError(t, err)
	require.Equal(t, "basic", a.Tier)
	require.True(t, strings.HasPrefix(a.WebhookSecret, "whsec_"))
	require.NotEmpty(t, a.Limits["max_timeout_ms"])
	rot, err := c.RotateWebhookSecret(ctx)
	require.NoError(t, err)
	require.NotEqual(t, a.WebhookSecret, rot.WebhookSecret)
	require.True(t, rot.PreviousSecretExpires.After(time.Now()))
	h, err := c.Health(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, h)
}

func TestAdmin(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	adm := platform.Admin
	acct, err := adm.CreateAccount(ctx, "admin test", "free")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(acct.WebhookSecret, "whsec_"))
	moved, err := adm.SetAccountTier(ctx, acct.ID, "pro")
	require.NoError(t, err)
	require.Equal(t, "pro", moved.Tier)
	k, err := adm.CreateKey(ctx, acct.ID, "ci")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(k.Key, "ww_"))
	keys, err := adm.ListKeys(ctx, client.ListOptions{Limit: 200})
	require.NoError(t, err)
	require.NotEmpty(t, keys.Data)
	require.NoError(t, adm.RevokeKey(ctx, k.ID))
	c, err := client.New(platform.URL, k.Key)
	require.NoError(t, err)
	_, err = c.Account(ctx)
	require.True(t, client.IsCode(err, client.CodeUnauthorized), "%v", err)

	tiers, err := adm.ListTiers(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(tiers), 3)
	_, err = adm.CreateTier(ctx, client.Tier{"name": "free"})
	require.Error(t, err)
	accts, err := adm.ListAccounts(ctx, client.ListOptions{Limit: 1})
	require.NoError(t, err)
	require.Len(t, accts.Data, 1)
	q, err := adm.Queues(ctx)
	require.NoError(t, err)
	require.True(t, json.Valid(q))
	audit, err := adm.Audit(ctx, client.AuditFilter{AccountID: acct.ID})
	require.NoError(t, err)
	require.NotEmpty(t, audit.Data)

	wrong, err := client.NewAdmin(platform.URL, "wrong")
	require.NoError(t, err)
	_, err = wrong.ListTiers(ctx)
	require.True(t, client.IsCode(err, client.CodeUnauthorized), "%v", err)
}

// flaky wraps the platform's transport: answers fails(n) for the nth
// request (1-based) when it returns a status, or breaks the answer after
// the request reached the API when it returns -1.
func flaky(fails func(n int64, r *http.Request) int) (*http.Client, *atomic.Int64) {
	var n atomic.Int64
	return &http.Client{Transport: clienttest.Transport(func(r *http.Request) (*http.Response, error) {
		i := n.Add(1)
		switch code := fails(i, r); {
		case code > 0:
			h := http.Header{"Retry-After": {"0"}, "Content-Type": {"text/plain"}}
			return &http.Response{StatusCode: code, Header: h, Body: http.NoBody, Request: r}, nil
		case code < 0:
			res, err := http.DefaultTransport.RoundTrip(r)
			if err == nil {
				_ = res.Body.Close()
			}
			return nil, errors.New("connection reset after the request was sent")
		}
		return http.DefaultTransport.RoundTrip(r)
	})}, &n
}

var fastRetries = client.RetryPolicy{MaxRetries: 4, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, MaxRetryWait: 5 * time.Second}

func TestSubmitRetriesMakeOneJob(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	key := platform.Key(t, "free")
	plain, err := client.New(platform.URL, key)
	require.NoError(t, err)
	m := ensure(ctx, t, plain, fixtures.Hello)

	// The first submit reaches the API but its answer is lost; the second
	// meets a 503; the third is answered: by the job the first created.
	var keys []string
	hc, n := flaky(func(n int64, r *http.Request) int {
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		switch n {
		case 1:
			return -1
		case 2:
			return http.StatusServiceUnavailable
		}
		return 0
	})
	c, err := client.New(platform.URL, key, client.WithHTTPClient(hc), client.WithRetryPolicy(fastRetries))
	require.NoError(t, err)
	job, err := c.Submit(ctx, client.JobRequest{ModuleID: m.ID}, nil)
	require.NoError(t, err)
	require.EqualValues(t, 3, n.Load())
	require.NotEmpty(t, keys[0])
	require.Equal(t, []string{keys[0], keys[0], keys[0]}, keys, "one Idempotency-Key for every try")
	page, err := plain.ListJobs(ctx, client.JobFilter{})
	require.NoError(t, err)
	require.Len(t, page.Data, 1, "the retries made no second job")
	require.Equal(t, job.ID, page.Data[0].ID)
}

func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	key := platform.Key(t, "free")

	// A cancel is not repeated after a 503 (only on 429, when nothing was done).
	hc, n := flaky(func(int64, *http.Request) int { return http.StatusServiceUnavailable })
	c, err := client.New(platform.URL, key, client.WithHTTPClient(hc), client.WithRetryPolicy(fastRetries))
	require.NoError(t, err)
	_, err = c.CancelJob(ctx, "01a21c90-6c95-7a32-afa7-153a0e2b44cd")
	require.True(t, client.IsCode(err, client.CodeUnavailable), "%v", err)
	require.EqualValues(t, 1, n.Load())

	// A read is tried 1 + MaxRetries times, then the error is returned.
	_, err = c.Account(ctx)
	require.True(t, client.IsCode(err, client.CodeUnavailable), "%v", err)
	require.EqualValues(t, 1+1+fastRetries.MaxRetries, n.Load())

	// 429 is retried for any call.
	hc, n = flaky(func(i int64, _ *http.Request) int {
		if i == 1 {
			return http.StatusTooManyRequests
		}
		return 0
	})
	c, err = client.New(platform.URL, key, client.WithHTTPClient(hc), client.WithRetryPolicy(fastRetries))
	require.NoError(t, err)
	_, err = c.CancelJob(ctx, "01a21c90-6c95-7a32-afa7-153a0e2b44cd")
	require.True(t, client.IsCode(err, client.CodeNotFound), "%v", err)
	require.EqualValues(t, 2, n.Load())

	// A Retry-After beyond MaxRetryWait is not waited for.
	long := &http.Client{Transport: clienttest.Transport(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusTooManyRequests, Request: r, Body: http.NoBody,
			Header: http.Header{"Retry-After": {"3600"}}}, nil
	})}
	c, err = client.New(platform.URL, key, client.WithHTTPClient(long), client.WithRetryPolicy(fastRetries))
	require.NoError(t, err)
	start := time.Now()
	_, err = c.Account(ctx)
	var e *client.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, client.CodeRateLimited, e.Code)
	require.Equal(t, time.Hour, e.RetryAfter)
	require.Less(t, time.Since(start), time.Hour) // returned, not waited
}

// The SDK must not drag the server into its users' binaries: besides the
// standard library it imports only shared/apiobject, the API's objects,
// whose own imports are listed here too (so they are the standard
// library's).
func TestClientImportsNoServerPackages(t *testing.T) {
	t.Parallel()
	for _, pkg := range []string{".", "./webhook"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		require.NoError(t, err, "%s", out)
		for _, dep := range strings.Fields(string(out)) {
			thirdParty := strings.Contains(strings.Split(dep, "/")[0], ".")
			own := strings.HasPrefix(dep, "github.com/wasmwizard/wasmwizard/api/client") ||
				dep == "github.com/wasmwizard/wasmwizard/shared/apiobject"
			require.False(t, thirdParty && !own,
				"%s imports %s: the SDK uses the standard library and shared/apiobject only", pkg, dep)
			require.NotContains(t, dep, "clienttest")
		}
	}
}
