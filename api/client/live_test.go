package client_test

import (
	"archive/tar"
	"bytes"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/api/client/clienttest"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// streamAll collects a stream's events.
func streamAll(t *testing.T, c *client.Client, id string, opts *client.StreamOptions) []*client.StreamEvent {
	t.Helper()
	var evs []*client.StreamEvent
	for ev, err := range c.Stream(ctxFor(t), id, opts) {
		require.NoError(t, err)
		evs = append(evs, ev)
	}
	return evs
}

func outputOf(evs []*client.StreamEvent, typ string) string {
	var b bytes.Buffer
	for _, ev := range evs {
		if ev.Type == typ {
			b.Write(ev.Output)
		}
	}
	return b.String()
}

func TestStreamOfTheRealAPI(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	key := platform.Key(t, "free")
	c, err := client.New(platform.URL, key)
	require.NoError(t, err)
	m := ensure(ctx, t, c, fixtures.Echo)
	job, err := c.Submit(ctx, client.JobRequest{ModuleID: m.ID, Args: []string{"live"}, Stdin: str("in\n")}, nil)
	require.NoError(t, err)

	evs := streamAll(t, c, job.ID, nil)
	end := evs[len(evs)-1]
	require.Equal(t, client.EventEnd, end.Type)
	require.Equal(t, client.StatusSucceeded, end.Job.Status)
	require.Equal(t, "live\nGREETING=\nin\n", outputOf(evs, client.EventStdout))
	require.Equal(t, "echo done\n", outputOf(evs, client.EventStderr))

	// Resuming after each event gives the rest, without repeats.
	for i := range evs[:len(evs)-1] {
		rest := streamAll(t, c, job.ID, &client.StreamOptions{LastEventID: evs[i].ID})
		require.Equal(t, client.EventEnd, rest[len(rest)-1].Type)
		want := outputOf(evs[i+1:], client.EventStdout)
		require.Equal(t, want, outputOf(rest, client.EventStdout), "after event %d", i)
	}

	// A connection broken mid-stream: the first answer's body is cut after
	// its first event; Stream reconnects with Last-Event-ID.
	var conns atomic.Int64
	cut := &http.Client{Transport: clienttest.Transport(func(r *http.Request) (*http.Response, error) {
		res, err := http.DefaultTransport.RoundTrip(r)
		if err != nil || conns.Add(1) > 1 || res.StatusCode != http.StatusOK {
			return res, err
		}
		res.Body = &cutBody{r: res.Body}
		return res, nil
	})}
	cc, err := client.New(platform.URL, key, client.WithHTTPClient(cut), client.WithRetryPolicy(fastRetries))
	require.NoError(t, err)
	again := streamAll(t, cc, job.ID, nil)
	require.EqualValues(t, 2, conns.Load(), "one reconnection")
	require.Equal(t, outputOf(evs, client.EventStdout), outputOf(again, client.EventStdout))
	require.Equal(t, outputOf(evs, client.EventStderr), outputOf(again, client.EventStderr))
	require.Equal(t, client.EventEnd, again[len(again)-1].Type)

	// Another account's job is not found.
	other := platform.Client(t, "free")
	for _, err := range other.Stream(ctx, job.ID, nil) {
		require.True(t, client.IsCode(err, client.CodeNotFound), "%v", err)
	}
}

// cutBody ends with an error after its first event (blank line).
type cutBody struct {
	r    io.ReadCloser
	seen []byte
}

func (b *cutBody) Read(p []byte) (int, error) {
	if i := bytes.Index(b.seen, []byte("\n\n")); i >= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n, err := b.r.Read(p[:min(len(p), 64)])
	if i := bytes.Index(append(b.seen, p[:n]...), []byte("\n\n")); i >= 0 {
		keep := i + 2 - len(b.seen)
		b.seen = append(b.seen, p[:keep]...)
		return keep, nil
	}
	b.seen = append(b.seen, p[:n]...)
	return n, err
}

func (b *cutBody) Close() error { return b.r.Close() }

func TestAssetsAndInputFiles(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	c := platform.Client(t, "free")
	m := ensure(ctx, t, c, fixtures.Hello)

	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "voices/a.txt", Mode: 0o644, Size: 5, Typeflag: tar.TypeReg}))
	_, _ = tw.Write([]byte("hello"))
	require.NoError(t, tw.Close())
	sent := 0
	a, err := c.PutAsset(ctx, m.ID, "/share", tb.Bytes(), false, func(n int) { sent += n })
	require.NoError(t, err)
	require.Equal(t, "/share", a.Mount)
	require.EqualValues(t, 1, a.Files)
	require.Equal(t, tb.Len(), sent)
	list, err := c.ListAssets(ctx, m.ID)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.NoError(t, c.DeleteAsset(ctx, m.ID, "/share"))
	list, err = c.ListAssets(ctx, m.ID)
	require.NoError(t, err)
	require.Empty(t, list)
	_, err = c.PutAsset(ctx, m.ID, "/share", []byte("not a tar"), false, nil)
	var e *client.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, http.StatusBadRequest, e.Status)

	// Input files, in the JSON body and as multipart parts.
	j, err := c.Submit(ctx, client.JobRequest{ModuleID: m.ID, Files: []client.File{{Path: "/in/a.txt", Content: "a"}},
		Collect: []string{"/out/**"}}, nil)
	require.NoError(t, err)
	_, err = c.Wait(ctx, j.ID)
	require.NoError(t, err)
	j, err = c.Submit(ctx, client.JobRequest{ModuleID: m.ID}, &client.SubmitOptions{
		Uploads: []client.Upload{{Path: "/in/b.bin", Content: []byte{0, 1, 2, 0xff}}}})
	require.NoError(t, err)
	done, err := c.Wait(ctx, j.ID)
	require.NoError(t, err)
	arts, err := c.ListArtifacts(ctx, done.ID)
	require.NoError(t, err)
	require.Empty(t, arts)
	_, err = c.DownloadArtifact(ctx, done.ID, "/out/none.txt")
	require.True(t, client.IsCode(err, client.CodeNotFound), "%v", err)
	d, err := c.DownloadArtifactsTar(ctx, done.ID)
	require.NoError(t, err)
	_, err = io.ReadAll(d)
	require.NoError(t, err)
	require.NoError(t, d.Close())
}
