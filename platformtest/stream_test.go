package platformtest

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/api/app"
	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/shared/config"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

const streamPatience = 60 * time.Second

// sseEvent is one Server-Sent Event. Its data is JSON, which eventData
// decodes into the type the event's name calls for.
type sseEvent struct {
	ID, Name string
	Data     json.RawMessage
}

// sseOutput is the data of a stdout or stderr event: text, or base64 when
// the bytes are not UTF-8.
type sseOutput struct {
	Text   *string `json:"text"`
	Base64 *string `json:"base64"`
}

// sseStatus is the data of a status event.
type sseStatus struct {
	Status  string `json:"status"`
	Attempt int    `json:"attempt"`
}

// eventData decodes e's data into a T.
func eventData[T any](t *testing.T, e sseEvent) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(e.Data, &v), "%s event: %s", e.Name, e.Data)
	return v
}

// bytes is an output event's bytes.
func (e sseEvent) bytes(t *testing.T) []byte {
	t.Helper()
	out := eventData[sseOutput](t, e)
	if out.Text != nil {
		return []byte(*out.Text)
	}
	require.NotNil(t, out.Base64, "%s event without text or base64: %s", e.Name, e.Data)
	b, err := base64.StdEncoding.DecodeString(*out.Base64)
	require.NoError(t, err)
	return b
}

// sseClient reads one stream's events in the background.
type sseClient struct {
	t      *testing.T
	res    *http.Response
	events chan sseEvent
	done   chan error
	pings  int
}

// openStream opens job id's stream on base with key, resuming after
// lastID when it is not empty; hc may be nil (http.DefaultClient).
func openStream(t *testing.T, hc *http.Client, base, key, id, lastID string) *sseClient {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/v1/jobs/"+id+"/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	c := &sseClient{t: t, res: res, events: make(chan sseEvent, 1024), done: make(chan error, 1)}
	t.Cleanup(c.close)
	return c
}

// start reads events in the background (a stream read slowly is not
// started until the test wants it read).
func (c *sseClient) start() *sseClient {
	go func() {
		defer close(c.events)
		r := bufio.NewReader(c.res.Body)
		var ev sseEvent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				c.done <- err
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if ev.Name != "" {
					c.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				c.pings++
			case strings.HasPrefix(line, "id: "):
				ev.ID = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.Name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data := []byte(strings.TrimPrefix(line, "data: "))
				if !json.Valid(data) {
					c.done <- fmt.Errorf("event data is not JSON: %s", data)
					return
				}
				ev.Data = data
			}
		}
	}()
	return c
}

func (c *sseClient) close() { _ = c.res.Body.Close() }

// next returns the next event, failing the test if none comes in time.
func (c *sseClient) next() sseEvent {
	c.t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok {
			c.t.Fatalf("the stream ended early: %v", <-c.done)
		}
		return ev
	case <-time.After(streamPatience):
		c.t.Fatal("no event in time")
		return sseEvent{}
	}
}

// until returns the events up to and including the first named name.
func (c *sseClient) until(name string) []sseEvent {
	c.t.Helper()
	var evs []sseEvent
	for {
		ev := c.next()
		evs = append(evs, ev)
		if ev.Name == name {
			return evs
		}
	}
}

// outputs joins the events' stdout and stderr.
func outputs(t *testing.T, evs []sseEvent) (stdout, stderr string) {
	t.Helper()
	var o, e []byte
	for _, ev := range evs {
		switch ev.Name {
		case "stdout":
			o = append(o, ev.bytes(t)...)
		case "stderr":
			e = append(e, ev.bytes(t)...)
		}
	}
	return string(o), string(e)
}

// status reads job id's status.
func (p *platform) status(key, id string) string {
	p.t.Helper()
	res := p.do(http.MethodGet, "/v1/jobs/"+id, key, "", nil)
	require.Equal(p.t, http.StatusOK, res.Status, "%s", res.Body)
	return decode[client.Job](p.t, res).Status
}

// replica starts another API on the platform's database and Redis, with
// adjust's changes to its configuration.
func (p *platform) replica(adjust func(*config.API)) string {
	p.t.Helper()
	cfg := config.API{Common: p.common, HTTPAddr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second,
		EnqueueTimeout: 2 * time.Second}
	adjust(&cfg)
	api, err := app.Start(context.Background(), cfg, zap.NewNop())
	require.NoError(p.t, err)
	p.t.Cleanup(func() { _ = api.Shutdown(context.Background()) })
	return "http://" + api.Addr()
}

// A running job's output reaches a stream (on another replica than the
// one it was submitted to) while the job runs; a client that breaks its
// connection and resumes with Last-Event-ID gets the rest without repeats;
// the job's end ends the stream with the Job.
func TestStreamLiveOutputResumeAndEnd(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("pro")
	other := p.replica(func(*config.API) {})
	id := p.submit(key, map[string]any{"module_id": p.upload(key, fixtures.TalkLoop), "timeout_ms": 30000})

	s := openStream(t, nil, other, key, id, "").start()
	first := s.next()
	require.Equal(t, "status", first.Name)
	var seen []sseEvent
	for {
		ev := s.next()
		seen = append(seen, ev)
		if ev.Name == "stdout" {
			break
		}
	}
	require.Equal(t, "partial out\n", string(seen[len(seen)-1].bytes(t)))
	// The output came while the job runs (it loops until cancelled).
	require.Equal(t, "running", p.status(key, id))
	running := false
	for _, ev := range append([]sseEvent{first}, seen...) {
		running = running || ev.Name == "status" && eventData[sseStatus](t, ev) == sseStatus{Status: "running", Attempt: 1}
	}
	require.True(t, running, "a status event says the job runs: %s %s", asJSON(first), asJSON(seen))

	// Break the connection after stdout; resume after it.
	s.close()
	resumed := openStream(t, nil, p.baseURL, key, id, seen[len(seen)-1].ID).start()
	res := p.do(http.MethodPost, "/v1/jobs/"+id+"/cancel", key, "", nil)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	evs := resumed.until("end")
	stdout, stderr := outputs(t, evs)
	require.Empty(t, stdout, "nothing is sent twice")
	require.Equal(t, "partial err\n", stderr)
	require.JSONEq(t, `{"status": "cancelled", "attempt": 1}`, string(evs[len(evs)-2].Data))
	end := eventData[client.Job](t, evs[len(evs)-1])
	require.Equal(t, id, end.ID)
	require.Equal(t, "cancelled", end.Status)
	require.True(t, end.OutputOmitted)
	_, ok := <-resumed.events
	require.False(t, ok, "the stream ends after end")

	// A finished job replays its stored output, from any position.
	replay := openStream(t, nil, p.baseURL, key, id, "").start().until("end")
	stdout, stderr = outputs(t, replay)
	require.Equal(t, "partial out\n", stdout)
	require.Equal(t, "partial err\n", stderr)
	replay = openStream(t, nil, other, key, id, seen[len(seen)-1].ID).start().until("end")
	stdout, stderr = outputs(t, replay)
	require.Empty(t, stdout)
	require.Equal(t, "partial err\n", stderr)

	// Streams are counted while open and let go of when they end.
	require.Eventually(t, func() bool { return metric(t, other, "wasmwizard_api_streams") == 0 },
		streamPatience, 10*time.Millisecond)
}

// metric reads a gauge or counter without labels from an API's /metrics.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			require.NoError(t, json.Unmarshal([]byte(v), &f))
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// A finished job replays; non-UTF-8 output comes as base64; another
// account's job does not exist; a bad Last-Event-ID is refused.
func TestStreamFinishedJobs(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("free")
	hello := p.run(key, fixtures.Hello, nil)
	evs := openStream(t, nil, p.baseURL, key, hello.ID, "").start().until("end")
	stdout, _ := outputs(t, evs)
	require.Equal(t, hello.Stdout, &stdout)
	require.Equal(t, "succeeded", eventData[client.Job](t, evs[len(evs)-1]).Status)

	bin := p.run(key, fixtures.BinOut, nil)
	evs = openStream(t, nil, p.baseURL, key, bin.ID, "").start().until("end")
	for _, ev := range evs {
		if ev.Name == "stdout" {
			require.Equal(t, new(base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe, 0x00, 0x80})), eventData[sseOutput](t, ev).Base64)
		}
	}
	stdout, _ = outputs(t, evs)
	require.Equal(t, string([]byte{0xff, 0xfe, 0x00, 0x80}), stdout)

	stranger := p.account("free")
	res := p.do(http.MethodGet, "/v1/jobs/"+hello.ID+"/stream", stranger, "", nil)
	require.Equal(t, http.StatusNotFound, res.Status)
	require.Equal(t, "not_found", decode[client.Error](t, res).Code)

	req, err := http.NewRequest(http.MethodGet, p.baseURL+"/v1/jobs/"+hello.ID+"/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Last-Event-ID", "1-0.1.x.0")
	r, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = r.Body.Close()
	require.Equal(t, http.StatusBadRequest, r.StatusCode)
}

// A reader that does not read holds up neither the job nor another reader,
// and still gets every byte exactly once when it reads at last.
func TestStreamSlowReader(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("pro")
	// Queued first: both readers are there before the job runs.
	id := p.submit(key, map[string]any{"module_id": p.upload(key, fixtures.Spam), "timeout_ms": 30000})

	// A client whose socket takes almost nothing.
	tiny := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
			if err != nil {
				return err
			}
			return serr
		}}).DialContext}}
	slow := openStream(t, tiny, p.baseURL, key, id, "")
	fast := openStream(t, nil, p.baseURL, key, id, "").start()

	evs := fast.until("end")
	stdout, _ := outputs(t, evs)
	require.Equal(t, strings.Repeat("x", 1<<20), stdout)
	require.Equal(t, "succeeded", eventData[client.Job](t, evs[len(evs)-1]).Status)
	require.Equal(t, "succeeded", p.status(key, id))

	evs = slow.start().until("end")
	stdout, _ = outputs(t, evs)
	require.Equal(t, 1<<20, len(stdout), "every byte once")
	require.Equal(t, strings.Repeat("x", 1<<20), stdout)
}

// An account has at most WIZARD_STREAMS_PER_ACCOUNT streams open on a
// replica; closing one makes room.
func TestStreamsPerAccount(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("pro")
	api := p.replica(func(c *config.API) { c.StreamsPerAccount = 1 })
	id := p.submit(key, map[string]any{"module_id": p.upload(key, fixtures.TalkLoop), "timeout_ms": 30000})
	defer p.do(http.MethodPost, "/v1/jobs/"+id+"/cancel", key, "", nil)
	s := openStream(t, nil, api, key, id, "").start()
	s.next()

	req, err := http.NewRequest(http.MethodGet, api+"/v1/jobs/"+id+"/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	require.NotEmpty(t, res.Header.Get("Retry-After"))

	s.close()
	require.Eventually(t, func() bool { return metric(t, api, "wasmwizard_api_streams") == 0 },
		streamPatience, 10*time.Millisecond)
	openStream(t, nil, api, key, id, "").start().next()
}
