package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/client"
)

// sseServer plays a job's stream: each connection is answered by the
// next script, given the request's Last-Event-ID.
func sseServer(t *testing.T, scripts ...func(w http.ResponseWriter, last string)) (*httptest.Server, *[]string) {
	var mu sync.Mutex
	var lasts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/v1/jobs/j1/stream", r.URL.Path)
		require.Equal(t, "text/event-stream", r.Header.Get("Accept"))
		mu.Lock()
		i := len(lasts)
		lasts = append(lasts, r.Header.Get("Last-Event-ID"))
		mu.Unlock()
		if i >= len(scripts) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"code":"not_found","status":404,"detail":"no such job"}`))
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		scripts[i](w, r.Header.Get("Last-Event-ID"))
	}))
	t.Cleanup(srv.Close)
	return srv, &lasts
}

func event(w http.ResponseWriter, id, name, data string) {
	_, _ = fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", id, name, data)
	w.(http.Flusher).Flush()
}

// breakConn ends the answer abruptly: the client sees a broken body.
func breakConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func TestStreamResumesAfterABrokenConnection(t *testing.T) {
	t.Parallel()
	srv, lasts := sseServer(t,
		func(w http.ResponseWriter, _ string) {
			event(w, "e1", "status", `{"status":"running","attempt":1}`)
			event(w, "e2", "stdout", `{"text":"hel"}`)
			_, _ = w.Write([]byte("id: e3\nevent: stdout\ndata: {\"te")) // cut mid-event
			w.(http.Flusher).Flush()
			breakConn(w)
		},
		func(w http.ResponseWriter, _ string) {
			breakConn(w) // broken before any event
		},
		func(w http.ResponseWriter, _ string) {
			_, _ = w.Write([]byte(": ping\n\n"))
			event(w, "e3", "stdout", `{"text":"lo\n"}`)
			event(w, "e4", "stderr", `{"base64":"/w=="}`)
			event(w, "e5", "end", `{"id":"j1","status":"succeeded","exit_code":0}`)
		})
	c, err := client.New(srv.URL, "k", client.WithRetryPolicy(fastRetries))
	require.NoError(t, err)
	var out, errOut []byte
	var types []string
	var end *client.Job
	for ev, err := range c.Stream(context.Background(), "j1", nil) {
		require.NoError(t, err)
		types = append(types, ev.Type)
		switch ev.Type {
		case client.EventStdout:
			out = append(out, ev.Output...)
		case client.EventStderr:
			errOut = append(errOut, ev.Output...)
		case client.EventStatus:
			require.Equal(t, "running", ev.Status)
			require.Equal(t, 1, ev.Attempt)
		case client.EventEnd:
			end = ev.Job
		}
	}
	require.Equal(t, []string{"status", "stdout", "stdout", "stderr", "end"}, types)
	require.Equal(t, "hello\n", string(out))
	require.Equal(t, []byte{0xff}, errOut)
	require.Equal(t, client.StatusSucceeded, end.Status)
	require.Equal(t, []string{"", "e2", "e2"}, *lasts, "each reconnection resumes after the last whole event")
}

func TestStreamErrors(t *testing.T) {
	t.Parallel()
	// An API error ends the stream at once (not retried).
	srv, lasts := sseServer(t)
	c, err := client.New(srv.URL, "k", client.WithRetryPolicy(fastRetries))
	require.NoError(t, err)
	var got error
	for ev, err := range c.Stream(context.Background(), "j1", &client.StreamOptions{LastEventID: "e9"}) {
		require.Nil(t, ev)
		got = err
	}
	require.True(t, client.IsCode(got, client.CodeNotFound), "%v", got)
	require.Equal(t, []string{"e9"}, *lasts)

	// A stream that keeps breaking gives up after MaxReconnects.
	broken := func(w http.ResponseWriter, _ string) {
		_, _ = w.Write([]byte(": ping\n\n"))
		w.(http.Flusher).Flush()
		breakConn(w)
	}
	srv, lasts = sseServer(t, broken, broken, broken, broken)
	c, err = client.New(srv.URL, "k", client.WithRetryPolicy(fastRetries))
	require.NoError(t, err)
	got = nil
	for _, err := range c.Stream(context.Background(), "j1", &client.StreamOptions{MaxReconnects: 2}) {
		got = err
	}
	require.ErrorContains(t, got, "broken 3 times in a row")
	require.Len(t, *lasts, 3)

	// A malformed event is an error, not a reconnection.
	srv, _ = sseServer(t, func(w http.ResponseWriter, _ string) { event(w, "e1", "stdout", `{"base64":"!!"}`) })
	c, err = client.New(srv.URL, "k", client.WithRetryPolicy(fastRetries))
	require.NoError(t, err)
	got = nil
	for _, err := range c.Stream(context.Background(), "j1", nil) {
		got = err
	}
	require.ErrorContains(t, got, "malformed stream event")

	// Breaking out of the loop stops the stream.
	srv, _ = sseServer(t, func(w http.ResponseWriter, _ string) {
		event(w, "e1", "stdout", `{"text":"a"}`)
		event(w, "e2", "stdout", `{"text":"b"}`)
	})
	c, err = client.New(srv.URL, "k")
	require.NoError(t, err)
	n := 0
	for _, err := range c.Stream(context.Background(), "j1", nil) {
		_ = err
		n++
		break
	}
	require.Equal(t, 1, n)
}
