// Package telemetry holds the metrics and the tracing set-up both binaries
// share.
//
// It has the build-info and dependency metrics, a Redis hook counting
// errors, and the OpenTelemetry tracing set-up with the W3C trace context
// that jobs carry from the API to the worker (see docs/OPERATIONS.md).
package telemetry

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// RegisterBuildInfo registers wasmwizard_build_info, 1 with the binary's
// component ("api" or "worker"), version and Go version as labels.
func RegisterBuildInfo(reg prometheus.Registerer, component, version string) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wasmwizard_build_info",
		Help: "Always 1: the component, version and Go version of this process.",
		ConstLabels: prometheus.Labels{"component": component, "version": version,
			"goversion": runtime.Version()},
	})
	g.Set(1)
	reg.MustRegister(g)
}

// Ping checks that a dependency answers.
type Ping func(ctx context.Context) error

// RegisterDependencies registers wasmwizard_dependency_up{dependency}: 1
// when the dependency answered a ping made while Prometheus scraped
// (within timeout), else 0. A scrape costs one round trip to each.
func RegisterDependencies(reg prometheus.Registerer, timeout time.Duration, deps map[string]Ping) {
	reg.MustRegister(&dependencyCollector{timeout: timeout, deps: deps, desc: prometheus.NewDesc(
		"wasmwizard_dependency_up",
		"1 if the dependency (postgres, redis) answered a ping during this scrape, else 0.",
		[]string{"dependency"}, nil)})
}

type dependencyCollector struct {
	timeout time.Duration
	deps    map[string]Ping
	desc    *prometheus.Desc
}

func (c *dependencyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *dependencyCollector) Collect(ch chan<- prometheus.Metric) {
	for name, ping := range c.deps {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		up := 0.0
		if ping(ctx) == nil {
			up = 1
		}
		cancel()
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, up, name)
	}
}

// RedisErrors returns a go-redis hook that counts failed commands in
// wasmwizard_redis_errors_total (registered on reg). Replies that are not
// failures are not counted: redis.Nil (an empty BRPOP, a missing key),
// NOSCRIPT (go-redis then loads the script), the connection handshake's
// refusals and cancelled contexts (shutdown).
func RedisErrors(reg prometheus.Registerer) redis.Hook {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmwizard_redis_errors_total",
		Help: "Redis commands that failed, by kind: network (no answer: refused, reset, timed out) or reply (Redis answered with an error, such as OOM or READONLY).",
	}, []string{"kind"})
	c.WithLabelValues("network")
	c.WithLabelValues("reply")
	reg.MustRegister(c)
	return redisErrorHook{c}
}

type redisErrorHook struct{ errs *prometheus.CounterVec }

func (h redisErrorHook) count(err error) {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) {
		return
	}
	var reply redis.Error
	if errors.As(err, &reply) {
		if strings.HasPrefix(reply.Error(), "NOSCRIPT") {
			return
		}
		h.errs.WithLabelValues("reply").Inc()
		return
	}
	h.errs.WithLabelValues("network").Inc()
}

func (h redisErrorHook) DialHook(next redis.DialHook) redis.DialHook {
	return next // a failed dial fails the command, counted below
}

func (h redisErrorHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if !handshake(cmd) {
			h.count(err)
		}
		return err
	}
}

func (h redisErrorHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds { // a pipeline that fails counts once
			if c.Err() != nil && !handshake(c) {
				h.count(c.Err())
				break
			}
		}
		return err
	}
}

// handshake: a command of go-redis's connection handshake (HELLO 3, CLIENT
// SETINFO), which an older Redis refuses and go-redis does without.
func handshake(c redis.Cmder) bool { return c.Name() == "hello" || c.Name() == "client" }
