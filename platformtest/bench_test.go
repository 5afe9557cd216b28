package platformtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/api/app"
	"github.com/wasmwizard/wasmwizard/shared/config"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	workerapp "github.com/wasmwizard/wasmwizard/worker/app"
)

// BenchmarkIdleSubmitWait measures what a client of an idle platform sees:
// POST /v1/jobs?wait=5s for a hello-world module, one request at a time,
// each after a random pause (so it meets the idle worker at a random point
// of its poll cycle), through a real API and worker on the local Postgres
// and Redis. It reports the latency's p50 and p99 and the Redis commands per
// second the platform issues while idle, with the doorbell on and off
// (WIZARD_BENCH_DOORBELL, default "on,off") for each worker poll interval
// (asynq's TaskCheckInterval) in WIZARD_BENCH_POLL_INTERVALS (default
// "10ms,100ms,1s"). The platform uses its own Redis database, whose
// commands MONITOR tells apart.
//
//	go test -run '^$' -bench IdleSubmitWait -benchtime 200x ./platformtest/
func BenchmarkIdleSubmitWait(b *testing.B) {
	intervals := os.Getenv("WIZARD_BENCH_POLL_INTERVALS")
	if intervals == "" {
		intervals = "10ms,100ms,1s"
	}
	bells := os.Getenv("WIZARD_BENCH_DOORBELL")
	if bells == "" {
		bells = "on,off"
	}
	for _, bell := range strings.Split(bells, ",") {
		for _, s := range strings.Split(intervals, ",") {
			poll, err := time.ParseDuration(strings.TrimSpace(s))
			require.NoError(b, err)
			b.Run("doorbell="+bell+"/poll="+poll.String(), func(b *testing.B) { benchIdleSubmitWait(b, poll, bell == "off") })
		}
	}
}

func benchIdleSubmitWait(b *testing.B, poll time.Duration, noDoorbell bool) {
	ctx := context.Background()
	common := config.Common{
		DatabaseURL: testenv.DB(b), RedisURL: benchRedisURL(b), QueueNamespace: benchNamespace(b),
		LogLevel: "error", LogFormat: "json", DBMaxOpenConns: 8,
	}
	api, err := app.Start(ctx, config.API{Common: common, HTTPAddr: "127.0.0.1:0", AdminToken: adminToken,
		ShutdownTimeout: 5 * time.Second, EnqueueTimeout: 2 * time.Second}, zap.NewNop())
	require.NoError(b, err)
	defer func() { _ = api.Shutdown(ctx) }()
	w, err := workerapp.Start(ctx, config.Worker{Common: common, HTTPAddr: "127.0.0.1:0", Concurrency: 2,
		DataDir: b.TempDir(), PollInterval: poll, ShutdownTimeout: 5 * time.Second, SandboxMemoryMB: 2048,
		DisableDoorbell: noDoorbell}, zap.NewNop())
	require.NoError(b, err)
	defer w.Shutdown()

	p := &platform{t: b, baseURL: "http://" + api.Addr()}
	key := p.account("free")
	hello := p.upload(key, fixtures.Hello)
	body := []byte(`{"module_id":"` + hello + `"}`)
	submit := func() {
		res := p.do(http.MethodPost, "/v1/jobs?wait=5s", key, "application/json", body)
		if res.Status != http.StatusCreated || !strings.Contains(string(res.Body), `"status":"succeeded"`) {
			b.Fatalf("submit: %d %s", res.Status, res.Body)
		}
	}
	submit() // warm: the module is compiled and cached

	// Idle: asynq has delivered and acknowledged the warm-up job's task.
	time.Sleep(max(time.Second, 2*poll))
	cmdsPerSec := idleRedisCommands(b, 5*time.Second)

	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		// Idle: the request arrives at a random point of the poll cycle.
		time.Sleep(time.Duration(rand.Int64N(int64(min(max(2*poll, 100*time.Millisecond), 2*time.Second)))))
		b.StartTimer()
		start := time.Now()
		submit()
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(cmdsPerSec, "idle-redis-cmds/s")
	b.ReportMetric(0, "ns/op") // the mean hides the distribution; see p50/p99
}

// benchRedisDB is the Redis database the benchmark's platform uses, so that
// MONITOR can tell its commands from those of tests running meanwhile.
const benchRedisDB = 14

// benchNamespace is a fresh queue namespace whose keys are deleted at the end.
func benchNamespace(b *testing.B) string {
	ns := fmt.Sprintf("bench-%d:", rand.Int64())
	b.Cleanup(func() {
		opt, err := redis.ParseURL(benchRedisURL(b))
		if err != nil {
			return
		}
		rdb := redis.NewClient(opt)
		defer func() { _ = rdb.Close() }()
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, "asynq:{"+ns+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		rdb.SRem(ctx, "asynq:queues", ns+"jobs")
	})
	return ns
}

func benchRedisURL(b *testing.B) string {
	u, err := url.Parse(testenv.RedisURL())
	require.NoError(b, err)
	u.Path = "/" + strconv.Itoa(benchRedisDB)
	return u.String()
}

// idleRedisCommands counts the commands the platform sends Redis during d,
// per second, with MONITOR (over a plain connection: each command arrives
// as a status line `+<time> [<db> <client>] "<name>" …`), and logs them by
// command name.
func idleRedisCommands(b *testing.B, d time.Duration) float64 {
	opt, err := redis.ParseURL(benchRedisURL(b))
	require.NoError(b, err)
	conn, err := net.Dial("tcp", opt.Addr)
	require.NoError(b, err)
	defer func() { _ = conn.Close() }()
	if opt.Password != "" {
		_, err = fmt.Fprintf(conn, "AUTH %s\r\n", opt.Password)
		require.NoError(b, err)
	}
	_, err = io.WriteString(conn, "MONITOR\r\n")
	require.NoError(b, err)
	require.NoError(b, conn.SetReadDeadline(time.Now().Add(d)))
	tag := "[" + strconv.Itoa(benchRedisDB) + " "
	byName := map[string]int{}
	n := 0
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.Contains(l, tag) {
			continue
		}
		name := "?"
		if _, rest, ok := strings.Cut(l, "] \""); ok {
			name, _, _ = strings.Cut(rest, "\"")
		}
		byName[strings.ToLower(name)]++
		n++
	}
	b.Logf("idle Redis commands in %s: %v", d, byName)
	return float64(n) / d.Seconds()
}
