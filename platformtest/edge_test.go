package platformtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/api/app"
	"github.com/wasmwizard/wasmwizard/shared/config"
	"github.com/wasmwizard/wasmwizard/shared/fdlimit"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// startAPI starts a real API (no worker) on :0 with the admin routes on;
// adjust may change its configuration first.
func startAPI(t testing.TB, adjust func(*config.API)) *platform {
	t.Helper()
	cfg := apiConfig(testCommon(t), adminToken)
	if adjust != nil {
		adjust(&cfg)
	}
	api, err := app.Start(context.Background(), cfg, zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(func() { _ = api.Shutdown(context.Background()) })
	return &platform{t: t, baseURL: "http://" + api.Addr(), common: cfg.Common}
}

// stalledBodies is how many connections TestStalledBodiesDoNotHoldTheAPI
// opens: each announces a body it never sends.
const stalledBodies = 5000

// stallRequest announces 200,000 bytes of body, without credentials, and
// sends none of them.
const stallRequest = "POST /v1/jobs HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n\r\n"

// raiseFileLimit lifts the test process's own descriptor limit (client and
// server ends of every connection live in it) and skips when it stays too
// low for n connections.
func raiseFileLimit(t testing.TB, n int) {
	t.Helper()
	limit, err := fdlimit.Raise()
	require.NoError(t, err)
	if limit < uint64(2*n+1000) {
		t.Skipf("the open file limit is %d; %d connections need %d", limit, n, 2*n+1000)
	}
}

// openStalled opens n connections that each send stallRequest.
func openStalled(t testing.TB, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	d := net.Dialer{Timeout: 10 * time.Second}
	for range n {
		c, err := d.Dial("tcp", addr)
		require.NoError(t, err)
		conns = append(conns, c)
		_, err = io.WriteString(c, stallRequest)
		require.NoError(t, err)
	}
	return conns
}

// An unauthenticated request that announces a body and never sends it is
// answered 401 at once and its connection closed, instead of the server
// waiting up to ReadTimeout (5 minutes) for a body it does not want; and
// while 5,000 such connections are open, /healthz and an authenticated
// request are answered.
func TestStalledBodiesDoNotHoldTheAPI(t *testing.T) {
	raiseFileLimit(t, stalledBodies)
	p := startAPI(t, nil)
	key := p.account("free")
	addr := strings.TrimPrefix(p.baseURL, "http://")

	conns := openStalled(t, addr, stalledBodies)

	// A client of its own: no connection shared with the stalled ones.
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	get := func(path, token string) int {
		req, err := http.NewRequest(http.MethodGet, p.baseURL+path, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := client.Do(req)
		require.NoError(t, err, path)
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		return res.StatusCode
	}
	require.Equal(t, http.StatusOK, get("/healthz", ""))
	require.Equal(t, http.StatusOK, get("/v1/account", key))

	// Every stalled connection got its 401, told to close, and the server
	// closed it. The deadline only keeps a broken server from hanging the
	// test: the old server sent nothing for 5 minutes.
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	for _, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
			br := bufio.NewReader(c)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				errs <- fmt.Errorf("no answer: %w", err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			if res.StatusCode != http.StatusUnauthorized || !res.Close {
				errs <- fmt.Errorf("answer %d, Connection: %q", res.StatusCode, res.Header.Get("Connection"))
				return
			}
			if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
				errs <- fmt.Errorf("the server did not close the connection: %w", err)
			}
		})
	}
	wg.Wait()
	close(errs)
	failed := 0
	var first error
	for err := range errs {
		if first == nil {
			first = err
		}
		failed++
	}
	require.Zero(t, failed, "of %d stalled connections; the first: %v", len(conns), first)
	require.Equal(t, http.StatusOK, get("/healthz", ""))
}

// The worker's health server answers a request that announces a body it
// never sends at once, and closes the connection, instead of waiting for the
// body forever (it had no read timeout).
func TestWorkerHealthIgnoresStalledBodies(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	c, err := net.Dial("tcp", strings.TrimPrefix(p.workerURL, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: worker\r\nContent-Length: 200000\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second))) // only against a hang
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.True(t, res.Close)
}

// An authenticated body that stops arriving is cut off after
// WIZARD_BODY_STALL_TIMEOUT with 408 request_timeout, and the connection is
// closed; a body that keeps arriving, however slowly, is read.
func TestStalledBodyIsCutOff(t *testing.T) {
	t.Parallel()
	p := startAPI(t, func(c *config.API) { c.BodyStallTimeout = time.Second })
	key := p.account("free")
	addr := strings.TrimPrefix(p.baseURL, "http://")

	send := func(t *testing.T, body string, pause time.Duration, total int) (*http.Response, []byte, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		_, err = fmt.Fprintf(c, "POST /v1/jobs HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", key, total)
		require.NoError(t, err)
		for i := range len(body) {
			_, err = io.WriteString(c, body[i:i+1])
			require.NoError(t, err)
			time.Sleep(pause)
		}
		require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res, b, br
	}

	t.Run("stalled", func(t *testing.T) {
		t.Parallel()
		// Half of a body, then nothing.
		res, body, br := send(t, `{"module_id":`, 0, 100)
		require.Equal(t, http.StatusRequestTimeout, res.StatusCode, "%s", body)
		require.Contains(t, string(body), `"code":"request_timeout"`)
		require.Contains(t, string(body), "stalled")
		require.True(t, res.Close, "the answer closes the connection")
		_, err := br.ReadByte()
		require.ErrorIs(t, err, io.EOF)
	})
	t.Run("a long wait after the body", func(t *testing.T) {
		t.Parallel()
		// No worker: the job stays queued, and the answer comes when the
		// wait ends, well past the stall limit, with the job as it is.
		doc := fmt.Sprintf(`{"module_id":%q}`, p.upload(key, fixtures.Hello))
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		_, err = fmt.Fprintf(c, "POST /v1/jobs?wait=3s HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", key, len(doc), doc)
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		body, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode, "%s", body)
		require.Contains(t, string(body), `"status":"queued"`)
	})
	t.Run("slow but steady", func(t *testing.T) {
		t.Parallel()
		// 52 bytes, one every 50 ms: 2.6 s in all, past the stall limit,
		// but never a pause as long as it.
		doc := `{"module_id":"00000000-0000-0000-0000-000000000000"}`
		res, body, _ := send(t, doc, 50*time.Millisecond, len(doc))
		require.Equal(t, http.StatusNotFound, res.StatusCode, "the body was read and the module looked up: %s", body)
		require.False(t, res.Close, "the body was read to its end: the connection stays open")
	})
}

// BenchmarkStalledBodies measures what clients see while 5,000 connections
// each announce a 200,000-byte body without credentials and send none of it:
// the latency of GET /healthz and of an authenticated GET /v1/account
// (p50, p99), and how many descriptors the API process holds for the
// stalled connections, two seconds after they were opened.
//
//	go test -run '^$' -bench StalledBodies -benchtime 500x ./platformtest/
func BenchmarkStalledBodies(b *testing.B) {
	raiseFileLimit(b, stalledBodies)
	p := startAPI(b, nil)
	key := p.account("free")
	// The tier's read limit would refuse most of the measured reads.
	res := p.do(http.MethodPatch, "/v1/admin/tiers/free", adminToken, "application/json", []byte(`{"reads_per_minute":1000000}`))
	require.Equal(b, http.StatusOK, res.Status, "%s", res.Body)
	addr := strings.TrimPrefix(p.baseURL, "http://")

	before := openFiles(b)
	openStalled(b, addr, stalledBodies)
	time.Sleep(2 * time.Second)
	held := openFiles(b) - before - stalledBodies // the client ends are ours

	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	measure := func(path, token string) []time.Duration {
		out := make([]time.Duration, 0, b.N)
		for range b.N {
			req, err := http.NewRequest(http.MethodGet, p.baseURL+path, nil)
			require.NoError(b, err)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			start := time.Now()
			res, err := client.Do(req)
			require.NoError(b, err)
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			out = append(out, time.Since(start))
			require.Equal(b, http.StatusOK, res.StatusCode, path)
		}
		slices.Sort(out)
		return out
	}
	b.ResetTimer()
	health := measure("/healthz", "")
	account := measure("/v1/account", key)
	b.StopTimer()
	q := func(d []time.Duration, f float64) float64 {
		return float64(d[int(f*float64(len(d)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(health, .5), "healthz-p50-ms")
	b.ReportMetric(q(health, .99), "healthz-p99-ms")
	b.ReportMetric(q(account, .5), "account-p50-ms")
	b.ReportMetric(q(account, .99), "account-p99-ms")
	b.ReportMetric(float64(held), "api-fds-held")
	b.ReportMetric(0, "ns/op")
}

// openFiles counts this process's open descriptors.
func openFiles(t testing.TB) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(fds)
}
