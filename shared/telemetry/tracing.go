package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"
)

// Tracing says whether and where spans are exported (see docs/CONFIGURATION.md).
type Tracing struct {
	// Endpoint is WIZARD_OTEL_EXPORTER_OTLP_ENDPOINT: the base URL of an
	// OTLP/HTTP collector ("http://collector:4318"); /v1/traces is added
	// when the URL has no path.
	Endpoint string
	// FromEnv: the standard OTEL_EXPORTER_OTLP_ENDPOINT or
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (the exporter reads them,
	// and the other OTEL_EXPORTER_OTLP_* variables, itself).
	FromEnv bool
}

// On reports whether spans are exported.
func (t Tracing) On() bool { return t.Endpoint != "" || t.FromEnv }

// NewTracerProvider returns the process's tracer provider and the function
// that flushes and stops it: a no-op provider when tracing is off (spans
// cost nothing and are never recorded), else the SDK's with a batching
// OTLP/HTTP exporter, sampled per OTEL_TRACES_SAMPLER (default: parent
// based, always on), with service.name (OTEL_SERVICE_NAME overrides it),
// service.version and OTEL_RESOURCE_ATTRIBUTES.
func NewTracerProvider(ctx context.Context, t Tracing, service, version string) (trace.TracerProvider, func(context.Context) error, error) {
	if !t.On() {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	var opts []otlptracehttp.Option
	if t.Endpoint != "" {
		u, err := url.Parse(t.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, nil, fmt.Errorf("WIZARD_OTEL_EXPORTER_OTLP_ENDPOINT: want an http(s) URL such as http://collector:4318, got %q", t.Endpoint)
		}
		if strings.Trim(u.Path, "/") == "" {
			u.Path = "/v1/traces"
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(u.String()))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service), attribute.String("service.version", version)),
		resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil {
		return nil, nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(2*time.Second)),
		sdktrace.WithResource(res))
	return tp, tp.Shutdown, nil
}

// Tracer is the tracer the platform's spans come from.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer("github.com/wasmwizard/wasmwizard")
}

// propagator reads and writes W3C trace context (traceparent); tracestate
// does not travel with jobs.
var propagator = propagation.TraceContext{}

// Traceparent returns the W3C traceparent of ctx's span ("" when there is
// no valid span, as with tracing off).
func Traceparent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	return c["traceparent"]
}

// WithTraceparent returns ctx with the remote span context a traceparent
// names; ctx unchanged when tp is empty or malformed.
func WithTraceparent(ctx context.Context, tp string) context.Context {
	if tp == "" || len(tp) > 128 {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier{"traceparent": tp})
}

// FromHeaders returns ctx with the trace context of an incoming request's
// headers, if any.
func FromHeaders(ctx context.Context, h map[string][]string) context.Context {
	return propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// LogFields are the fields that tie a log line to its trace: trace_id and
// span_id when ctx has a sampled span, none otherwise.
func LogFields(ctx context.Context) []zap.Field {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsSampled() {
		return nil
	}
	return []zap.Field{zap.String("trace_id", sc.TraceID().String()), zap.String("span_id", sc.SpanID().String())}
}

// ProviderFor returns the tracer provider a process uses and the function
// that flushes it at shutdown: given when set (tests), else one built from
// t; nil when tracing is off, so that no span is even started.
func ProviderFor(ctx context.Context, given trace.TracerProvider, t Tracing, service, version string) (trace.TracerProvider, func(context.Context) error, error) {
	none := func(context.Context) error { return nil }
	switch {
	case given != nil:
		return given, none, nil
	case !t.On():
		return nil, none, nil
	}
	return NewTracerProvider(ctx, t, service, version)
}
