package platformtest

import (
	"database/sql"
	"net/http"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// spansNamed waits until exp holds every named span, and returns them by name.
func spansNamed(t *testing.T, exp *tracetest.InMemoryExporter, names ...string) map[string]tracetest.SpanStub {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := map[string]tracetest.SpanStub{}
		for _, s := range exp.GetSpans() {
			got[s.Name] = s
		}
		missing := ""
		for _, n := range names {
			if _, ok := got[n]; !ok {
				missing = n
			}
		}
		if missing == "" {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no span %q among %d spans", missing, len(exp.GetSpans()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOneTraceAcrossAPIAndWorker: the API and the worker each have their
// own tracer provider (as two processes would), and the only way a trace
// gets from one to the other is the traceparent the job carries. One trace
// holds the submit, the enqueue, the worker's claim, sandbox run and result
// write, and the webhook delivery; the worker's log lines carry its ID.
func TestOneTraceAcrossAPIAndWorker(t *testing.T) {
	t.Parallel()
	apiSpans, workerSpans := tracetest.NewInMemoryExporter(), tracetest.NewInMemoryExporter()
	apiTP := sdktrace.NewTracerProvider(sdktrace.WithSyncer(apiSpans))
	workerTP := sdktrace.NewTracerProvider(sdktrace.WithSyncer(workerSpans))
	common := testCommon(t)
	common.WebhookAllowPrivate, common.WebhookAllowHTTP = true, true
	apiCommon, workerCommon := common, common
	apiCommon.TracerProvider, workerCommon.TracerProvider = apiTP, workerTP
	core, logs := observer.New(zap.InfoLevel)
	p := launch(t, apiCommon, workerCommon, 1, zap.New(core))
	hook := newHookReceiver(t)
	key := p.account("pro")

	// A client's own trace context is the parent of the submit.
	clientTrace := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	res := p.doWith(http.MethodPost, "/v1/jobs", key, map[string]string{"Content-Type": "application/json", "traceparent": clientTrace},
		[]byte(`{"module_id":"`+p.upload(key, fixtures.Hello)+`","webhook_url":"`+hook.url()+`"}`))
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	id := decode[client.Job](t, res).ID
	require.Equal(t, "succeeded", p.await(key, id).Status)
	hook.wait(1)

	a := spansNamed(t, apiSpans, "POST /v1/jobs", "job.enqueue")
	wk := spansNamed(t, workerSpans, "job.run", "job.claim", "sandbox.run", "job.result", "webhook.deliver")
	submit := a["POST /v1/jobs"]
	traceID := submit.SpanContext.TraceID()
	require.Equal(t, "0af7651916cd43dd8448eb211c80319c", traceID.String(), "the client's trace goes on")
	require.Equal(t, trace.SpanKindServer, submit.SpanKind)
	require.Equal(t, submit.SpanContext.SpanID(), a["job.enqueue"].Parent.SpanID())

	run := wk["job.run"]
	require.Equal(t, traceID, run.SpanContext.TraceID(), "the worker's run is in the submit's trace")
	require.Equal(t, submit.SpanContext.SpanID(), run.Parent.SpanID(), "its parent is the submit, from the job's traceparent")
	require.True(t, run.Parent.IsRemote())
	for _, name := range []string{"job.claim", "sandbox.run", "job.result"} {
		require.Equal(t, run.SpanContext.SpanID(), wk[name].Parent.SpanID(), name)
	}
	require.False(t, wk["job.claim"].EndTime.After(wk["sandbox.run"].StartTime), "the claim comes before the run")
	require.False(t, wk["sandbox.run"].EndTime.After(wk["job.result"].StartTime), "the run before the result write")
	deliver := wk["webhook.deliver"]
	require.Equal(t, traceID, deliver.SpanContext.TraceID(), "the delivery is in the same trace")
	require.Equal(t, run.SpanContext.SpanID(), deliver.Parent.SpanID(), "queued by the run")

	// The worker's log line about the job carries the trace.
	var found bool
	for _, e := range logs.FilterMessage("job finished").All() {
		if e.ContextMap()["job_id"] == id {
			found = true
			require.Equal(t, traceID.String(), e.ContextMap()["trace_id"])
		}
	}
	require.True(t, found, "the worker logged the job's end")

	// The trace context is stored on the job (the claim reads it back).
	db, err := sql.Open("postgres", common.DatabaseURL)
	require.NoError(t, err)
	defer func() { _ = db.Close() }()
	var stored sql.NullString
	require.NoError(t, db.QueryRow(`SELECT traceparent FROM jobs WHERE id = $1`, id).Scan(&stored))
	require.Equal(t, "00-"+traceID.String()+"-"+submit.SpanContext.SpanID().String()+"-01", stored.String)
}

// TestNoTraceWhenTracingIsOff: without a tracer nothing is stored or sent,
// even when the client sends a trace context.
func TestNoTraceWhenTracingIsOff(t *testing.T) {
	t.Parallel()
	p := startAPI(t, nil)
	key := p.account("pro")
	res := p.doWith(http.MethodPost, "/v1/jobs", key, map[string]string{"Content-Type": "application/json",
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		[]byte(`{"module_id":"`+p.upload(key, fixtures.Hello)+`"}`))
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	db, err := sql.Open("postgres", p.common.DatabaseURL)
	require.NoError(t, err)
	defer func() { _ = db.Close() }()
	var stored sql.NullString
	require.NoError(t, db.QueryRow(`SELECT traceparent FROM jobs WHERE id = $1`, decode[client.Job](t, res).ID).Scan(&stored))
	require.False(t, stored.Valid)
}
