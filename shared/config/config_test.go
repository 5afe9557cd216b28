package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/config"
)

func env(m map[string]string) config.Getenv { return func(k string) string { return m[k] } }

func TestDefaultsWorkOnADeveloperMachine(t *testing.T) {
	t.Parallel()
	a, err := config.LoadAPI(env(nil))
	require.NoError(t, err)
	require.Equal(t, config.DefaultDatabaseURL, a.DatabaseURL)
	require.Equal(t, config.DefaultRedisURL, a.RedisURL)
	require.Equal(t, ":8080", a.HTTPAddr)
	require.Empty(t, a.AdminToken)
	require.Equal(t, 2*time.Second, a.AuthCacheTTL)
	require.Equal(t, 10*time.Second, a.BodyStallTimeout)
	require.Empty(t, a.TrustedProxies, "no forwarding header is trusted by default")
	require.Equal(t, 100, a.AuthFailureLimit)
	w, err := config.LoadWorker(env(nil))
	require.NoError(t, err)
	require.Equal(t, ":8081", w.HTTPAddr)
	require.Equal(t, 2, w.Concurrency)
	require.Equal(t, 30*time.Second, w.ShutdownTimeout)
	require.Equal(t, time.Second, w.PollInterval)
	require.False(t, w.DisableDoorbell)
	w, err = config.LoadWorker(env(map[string]string{"WIZARD_WORKER_DOORBELL": "off"}))
	require.NoError(t, err)
	require.True(t, w.DisableDoorbell)
	_, err = config.LoadWorker(env(map[string]string{"WIZARD_WORKER_DOORBELL": "maybe"}))
	require.ErrorContains(t, err, "WIZARD_WORKER_DOORBELL")
}

func TestFallbacksAndOverrides(t *testing.T) {
	t.Parallel()
	a, err := config.LoadAPI(env(map[string]string{
		"DATABASE_URL": "postgres://a@db:5432/x", "REDIS_URL": "redis://r:6379/2",
		"WIZARD_HTTP_ADDR": "127.0.0.1:9000", "WIZARD_ADMIN_TOKEN": "0123456789abcdef",
	}))
	require.NoError(t, err)
	require.Equal(t, "postgres://a@db:5432/x", a.DatabaseURL)
	require.Equal(t, "redis://r:6379/2", a.RedisURL)
	require.Equal(t, "0123456789abcdef", a.AdminToken)

	a, err = config.LoadAPI(env(map[string]string{"DATABASE_URL": "postgres://a@db/x", "WIZARD_DATABASE_URL": "postgres://b@db/y"}))
	require.NoError(t, err)
	require.Equal(t, "postgres://b@db/y", a.DatabaseURL, "the WIZARD_ name wins")
}

func TestInvalidValuesAreNamed(t *testing.T) {
	t.Parallel()
	_, err := config.LoadWorker(env(map[string]string{
		"WIZARD_DATABASE_URL":         "mysql://x",
		"WIZARD_REDIS_URL":            "redis://:secret@",
		"WIZARD_WORKER_CONCURRENCY":   "0",
		"WIZARD_WORKER_POLL_INTERVAL": "fast",
		"WIZARD_LOG_LEVEL":            "loud",
		"WIZARD_WORKER_HTTP_ADDR":     "8081",
	}))
	require.Error(t, err)
	for _, name := range []string{"WIZARD_DATABASE_URL", "WIZARD_REDIS_URL", "WIZARD_WORKER_CONCURRENCY",
		"WIZARD_WORKER_POLL_INTERVAL", "WIZARD_LOG_LEVEL", "WIZARD_WORKER_HTTP_ADDR"} {
		require.Contains(t, err.Error(), name)
	}
	require.NotContains(t, err.Error(), "secret", "passwords are not echoed")

	_, err = config.LoadAPI(env(map[string]string{"WIZARD_ADMIN_TOKEN": "short"}))
	require.ErrorContains(t, err, "WIZARD_ADMIN_TOKEN")
	_, err = config.LoadAPI(env(map[string]string{"WIZARD_AUTH_CACHE_TTL": "6s"}))
	require.ErrorContains(t, err, "WIZARD_AUTH_CACHE_TTL", "revocation must reach every replica within 5 s")
	a, err := config.LoadAPI(env(map[string]string{"WIZARD_AUTH_CACHE_TTL": "0"}))
	require.NoError(t, err)
	require.Zero(t, a.AuthCacheTTL, "0 turns the cache off")
}

func TestWorkerLease(t *testing.T) {
	t.Parallel()
	w, err := config.LoadWorker(env(nil))
	require.NoError(t, err)
	require.Equal(t, 2*time.Second, w.HeartbeatInterval)
	require.Equal(t, 10*time.Second, w.Lease)
	_, err = config.LoadWorker(env(map[string]string{"WIZARD_WORKER_LEASE": "5s"}))
	require.ErrorContains(t, err, "WIZARD_WORKER_LEASE", "a lease shorter than three beats")
	w, err = config.LoadWorker(env(map[string]string{"WIZARD_WORKER_LEASE": "5s", "WIZARD_WORKER_HEARTBEAT_INTERVAL": "1s"}))
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, w.Lease)
}

func TestDiskCacheBounds(t *testing.T) {
	t.Parallel()
	w, err := config.LoadWorker(env(nil))
	require.NoError(t, err)
	require.EqualValues(t, 1<<30, w.ModuleCacheBytes)
	require.EqualValues(t, 2<<30, w.CompileCacheBytes)
	w, err = config.LoadWorker(env(map[string]string{"WIZARD_MODULE_CACHE_BYTES": "104857600", "WIZARD_COMPILE_CACHE_BYTES": "209715200"}))
	require.NoError(t, err)
	require.EqualValues(t, 100<<20, w.ModuleCacheBytes)
	require.EqualValues(t, 200<<20, w.CompileCacheBytes)
	_, err = config.LoadWorker(env(map[string]string{"WIZARD_MODULE_CACHE_BYTES": "0", "WIZARD_COMPILE_CACHE_BYTES": "1GiB"}))
	require.ErrorContains(t, err, "WIZARD_MODULE_CACHE_BYTES")
	require.ErrorContains(t, err, "WIZARD_COMPILE_CACHE_BYTES")
}

func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	a, err := config.LoadAPI(env(map[string]string{"WIZARD_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7 2001:db8::/32,::1"}))
	require.NoError(t, err)
	var got []string
	for _, n := range a.TrustedProxies {
		got = append(got, n.String())
	}
	require.Equal(t, []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "::1/128"}, got)

	_, err = config.LoadAPI(env(map[string]string{"WIZARD_TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"}))
	require.ErrorContains(t, err, "WIZARD_TRUSTED_PROXIES")
	require.ErrorContains(t, err, "proxy.internal")
	_, err = config.LoadAPI(env(map[string]string{"WIZARD_BODY_STALL_TIMEOUT": "10ms"}))
	require.ErrorContains(t, err, "WIZARD_BODY_STALL_TIMEOUT")
}

func TestMetricsTokenAndScaling(t *testing.T) {
	t.Parallel()
	a, err := config.LoadAPI(env(map[string]string{
		"WIZARD_ADMIN_TOKEN": "0123456789abcdef", "WIZARD_METRICS_TOKEN": " fedcba9876543210 ",
		"WIZARD_SCALING_CACHE_TTL": "250ms", "WIZARD_SCALING_SLOTS_PER_WORKER": "8", "WIZARD_WORKER_LEASE": "20s",
	}))
	require.NoError(t, err)
	require.Equal(t, "fedcba9876543210", a.MetricsToken)
	require.Equal(t, 250*time.Millisecond, a.ScalingCacheTTL)
	require.Equal(t, 8, a.ScalingSlotsPerWorker)
	require.Equal(t, 20*time.Second, a.WorkerLease)

	a, err = config.LoadAPI(env(nil))
	require.NoError(t, err)
	require.Empty(t, a.MetricsToken)
	require.Equal(t, time.Second, a.ScalingCacheTTL)
	require.Equal(t, 2, a.ScalingSlotsPerWorker)

	_, err = config.LoadAPI(env(map[string]string{"WIZARD_METRICS_TOKEN": "short"}))
	require.ErrorContains(t, err, "WIZARD_METRICS_TOKEN")
	_, err = config.LoadAPI(env(map[string]string{"WIZARD_METRICS_TOKEN": "0123456789abcdef", "WIZARD_ADMIN_TOKEN": "0123456789abcdef"}))
	require.ErrorContains(t, err, "must differ from WIZARD_ADMIN_TOKEN")
	_, err = config.LoadAPI(env(map[string]string{"WIZARD_SCALING_SLOTS_PER_WORKER": "0"}))
	require.ErrorContains(t, err, "WIZARD_SCALING_SLOTS_PER_WORKER")
}
