package httpapi_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/httpapi"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/livestream"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// streamLine is a line of an event stream, or the end of the stream.
type streamLine struct {
	text string
	err  error
}

// streamJob submits a job, claims it as a worker would, and opens its
// stream, whose lines come on the channel returned.
func streamJob(t *testing.T, a testAPI) (store.Job, <-chan streamLine) {
	t.Helper()
	ctx := context.Background()
	status, mod := a.post(t, "/v1/modules?name=hello", "application/wasm", fixtures.Bytes(fixtures.Hello))
	require.Contains(t, []int{http.StatusCreated, http.StatusOK}, status)
	body, err := json.Marshal(map[string]any{"module_id": mod["id"]})
	require.NoError(t, err)
	status, j := a.post(t, "/v1/jobs", "application/json", body)
	require.Equal(t, http.StatusCreated, status, "%v", j)
	job, err := a.st.ClaimJob(ctx, uuid.MustParse(j["id"].(string)), "w")
	require.NoError(t, err)

	req, err := http.NewRequest(http.MethodGet, a.url+"/v1/jobs/"+job.ID.String()+"/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+a.key)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Body.Close() })
	require.Equal(t, http.StatusOK, res.StatusCode)
	lines := make(chan streamLine, 256)
	go func() {
		r := bufio.NewReader(res.Body)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				lines <- streamLine{err: err}
				close(lines)
				return
			}
			lines <- streamLine{text: strings.TrimSuffix(l, "\n")}
		}
	}()
	return job, lines
}

// nextLine returns the next line that starts with prefix.
func nextLine(t *testing.T, lines <-chan streamLine, prefix string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "the stream ended")
			require.NoError(t, l.err)
			if strings.HasPrefix(l.text, prefix) {
				return l.text
			}
		case <-timeout:
			t.Fatalf("no line %q in time", prefix)
		}
	}
}

func xadd(t *testing.T, a testAPI, id uuid.UUID, e livestream.Entry) {
	t.Helper()
	require.NoError(t, a.rdb.XAdd(context.Background(), &redis.XAddArgs{
		Stream: livestream.Key(a.queue, id), Values: e.Values()}).Err())
}

func streamAPI(t *testing.T) testAPI {
	t.Helper()
	return newTestAPI(t, func(rdb *redis.Client, d *httpapi.Deps) {
		d.Enqueuer = asynq.NewClientFromRedisClient(rdb)
		// No job watcher here: a stream looks at its job at each
		// heartbeat instead.
		d.StreamHeartbeat = 20 * time.Millisecond
		d.Registry = prometheus.NewRegistry()
	})
}

// A character split between two entries is sent whole, as text; a gap in
// the offsets (output dropped or trimmed) is filled from Postgres once the
// job ends, each byte once; a silent stream sends heartbeats.
func TestStreamSplitsAndGaps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := streamAPI(t)
	job, lines := streamJob(t, a)
	require.Equal(t, `data: {"attempt":1,"status":"running"}`, nextLine(t, lines, "data: "))
	nextLine(t, lines, ": ping")

	out := func(off int64, s string) livestream.Entry {
		return livestream.Entry{Kind: livestream.Stdout, Attempt: 1, Offset: off, Data: []byte(s)}
	}
	xadd(t, a, job.ID, out(0, "h\xc3"))
	require.Equal(t, `data: {"text":"h"}`, nextLine(t, lines, "data: "))
	xadd(t, a, job.ID, out(2, "\xa9!"))
	require.Equal(t, `data: {"text":"é!"}`, nextLine(t, lines, "data: "))
	xadd(t, a, job.ID, out(0, "h\xc3\xa9")) // a repeat is not sent again
	xadd(t, a, job.ID, out(10, "xyz"))      // bytes 4-9 missing
	xadd(t, a, job.ID, out(13, "late"))     // not sent live after a gap

	zero := 0
	ok, err := a.st.FinishJob(ctx, job.ID, job.Attempts, "w", jobstate.Outcome{Status: jobstate.Succeeded,
		ExitCode: &zero, Stdout: []byte("h\xc3\xa9!\xffabcdexyzlate")})
	require.NoError(t, err)
	require.True(t, ok)
	// From Postgres: the rest, not UTF-8.
	require.Equal(t, `data: {"base64":"`+base64.StdEncoding.EncodeToString([]byte("\xffabcdexyzlate"))+`"}`,
		nextLine(t, lines, "data: "))
	require.Equal(t, `data: {"attempt":1,"status":"succeeded"}`, nextLine(t, lines, "data: "))
	require.Equal(t, "event: end", nextLine(t, lines, "event: "))
}
