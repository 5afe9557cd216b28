package telemetry_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/wasmwizard/wasmwizard/shared/telemetry"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
)

const sample = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

func TestTraceparentRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := telemetry.WithTraceparent(context.Background(), sample)
	require.True(t, trace.SpanContextFromContext(ctx).IsRemote())
	require.Equal(t, sample, telemetry.Traceparent(ctx))
	for _, bad := range []string{"", "junk", "00-00000000000000000000000000000000-b7ad6b7169203331-01", sample + "x"} {
		require.Empty(t, telemetry.Traceparent(telemetry.WithTraceparent(context.Background(), bad)), bad)
	}
	require.Empty(t, telemetry.LogFields(context.Background()))
	require.Len(t, telemetry.LogFields(ctx), 2)
}

// With tracing off, the hot path's calls allocate nothing.
func TestNoTraceCostsNothing(t *testing.T) {
	ctx := context.Background()
	require.Zero(t, testing.AllocsPerRun(100, func() {
		_ = telemetry.Traceparent(ctx)
		_ = telemetry.LogFields(ctx)
	}))
	tp, stop, err := telemetry.ProviderFor(ctx, nil, telemetry.Tracing{}, "x", "v")
	require.NoError(t, err)
	require.Nil(t, tp, "off: no provider, so no span is started at all")
	require.NoError(t, stop(ctx))
}

func TestBadEndpointIsRefused(t *testing.T) {
	t.Parallel()
	_, _, err := telemetry.NewTracerProvider(context.Background(), telemetry.Tracing{Endpoint: "collector:4318"}, "x", "v")
	require.ErrorContains(t, err, "WIZARD_OTEL_EXPORTER_OTLP_ENDPOINT")
	tp, stop, err := telemetry.NewTracerProvider(context.Background(), telemetry.Tracing{Endpoint: "http://127.0.0.1:1"}, "x", "v")
	require.NoError(t, err)
	require.NotNil(t, tp)
	require.NoError(t, stop(context.Background()))
}

// FuzzTraceparent: whatever a client sends as traceparent, a context
// comes out, and a trace context read from it writes back as a well-formed
// version-00 traceparent.
func FuzzTraceparent(f *testing.F) {
	for _, s := range []string{sample, "", "00-", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ctx := telemetry.FromHeaders(context.Background(), map[string][]string{"Traceparent": {s}})
		if out := telemetry.Traceparent(ctx); out != "" {
			require.Len(t, out, 55)
			require.Equal(t, out, telemetry.Traceparent(telemetry.WithTraceparent(context.Background(), out)))
		}
	})
}

func TestRedisErrorsAreCounted(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	hook := telemetry.RedisErrors(reg)
	ctx := context.Background()

	// An empty reply (redis.Nil) is not a failure.
	opt, err := redis.ParseURL(testenv.RedisURL())
	require.NoError(t, err)
	ok := redis.NewClient(opt)
	defer func() { _ = ok.Close() }()
	ok.AddHook(hook)
	require.ErrorIs(t, ok.Get(ctx, testenv.Namespace(t)+"missing").Err(), redis.Nil)
	require.Error(t, ok.Do(ctx, "NOSUCHCOMMAND").Err())

	// Nobody listens here.
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer func() { _ = down.Close() }()
	down.AddHook(hook)
	require.Error(t, down.Ping(ctx).Err())

	n, err := testutil.GatherAndCount(reg, "wasmwizard_redis_errors_total")
	require.NoError(t, err)
	require.Equal(t, 2, n)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, m := range mfs[0].GetMetric() {
		got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
	}
	require.Equal(t, map[string]float64{"network": 1, "reply": 1}, got)
}
