package livepub_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/livestream"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/worker/livepub"
)

const patience = 30 * time.Second

type bundle struct {
	rdb   *redis.Client
	queue string
	reg   *prometheus.Registry
}

func setup(t *testing.T, adjust func(*livepub.Config)) (*livepub.Publisher, bundle) {
	t.Helper()
	opt, err := redis.ParseURL(testenv.RedisURL())
	require.NoError(t, err)
	opt.PoolSize = 2
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	b := bundle{rdb: rdb, queue: testenv.Namespace(t) + "jobs", reg: prometheus.NewRegistry()}
	cfg := livepub.Config{Redis: rdb, Queue: b.queue, Registry: b.reg}
	if adjust != nil {
		adjust(&cfg)
	}
	return livepub.New(cfg), b
}

// entries reads job id's whole stream.
func (b bundle) entries(t *testing.T, id uuid.UUID) []livestream.Entry {
	t.Helper()
	msgs, err := b.rdb.XRange(context.Background(), livestream.Key(b.queue, id), "-", "+").Result()
	require.NoError(t, err)
	out := make([]livestream.Entry, 0, len(msgs))
	for _, m := range msgs {
		e, err := livestream.Parse(m.Values)
		require.NoError(t, err)
		out = append(out, e)
	}
	return out
}

func waitDone(t *testing.T, r *livepub.Run) {
	t.Helper()
	select {
	case <-r.Done():
	case <-time.After(patience):
		t.Fatal("the run's publisher did not finish")
	}
}

// output joins the output entries of one kind, checking their offsets are
// contiguous.
func output(t *testing.T, es []livestream.Entry, kind livestream.Kind) string {
	t.Helper()
	var sb strings.Builder
	for _, e := range es {
		if e.Kind != kind {
			continue
		}
		require.Equal(t, int64(sb.Len()), e.Offset, "offsets are contiguous")
		sb.Write(e.Data)
	}
	return sb.String()
}

func TestPublishesOutputInOrderWithStatusAndEnd(t *testing.T) {
	t.Parallel()
	p, b := setup(t, nil)
	id := uuid.New()
	r := p.Start(id, 2)
	r.Output(livestream.Stdout, []byte("hello "))
	r.Output(livestream.Stderr, []byte("oops\n"))
	r.Output(livestream.Stdout, []byte("world\n"))
	big := strings.Repeat("x", 3*livestream.MaxChunk+5)
	r.Output(livestream.Stdout, []byte(big))
	r.Finish("succeeded")
	r.Output(livestream.Stdout, []byte("after the end"))
	waitDone(t, r)

	es := b.entries(t, id)
	require.Equal(t, livestream.Entry{Kind: livestream.Status, Attempt: 2, Data: []byte("running")}, es[0])
	require.Equal(t, livestream.End, es[len(es)-1].Kind)
	require.Equal(t, "succeeded", string(es[len(es)-1].Data))
	require.Equal(t, "hello world\n"+big, output(t, es, livestream.Stdout))
	require.Equal(t, "oops\n", output(t, es, livestream.Stderr))
	for _, e := range es {
		require.Equal(t, 2, e.Attempt)
		require.LessOrEqual(t, len(e.Data), livestream.MaxChunk)
	}
	ttl, err := b.rdb.TTL(context.Background(), livestream.Key(b.queue, id)).Result()
	require.NoError(t, err)
	require.Greater(t, ttl, time.Duration(0))
	require.LessOrEqual(t, ttl, livestream.EndTTL)
}

func TestHandBackPublishesQueued(t *testing.T) {
	t.Parallel()
	p, b := setup(t, nil)
	id := uuid.New()
	r := p.Start(id, 1)
	r.Finish("queued")
	r.Finish("succeeded") // a second Finish does nothing
	waitDone(t, r)
	es := b.entries(t, id)
	require.Len(t, es, 2)
	require.Equal(t, livestream.Status, es[1].Kind)
	require.Equal(t, "queued", string(es[1].Data))
}

// With Redis unreachable, Output neither blocks nor holds more than the
// buffer: what does not fit is dropped and counted.
func TestFullBufferDropsInsteadOfBlocking(t *testing.T) {
	t.Parallel()
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = dead.Close() })
	p, b := setup(t, func(c *livepub.Config) { c.Redis = dead; c.BufferBytes = 64 << 10 })
	r := p.Start(uuid.New(), 1)
	chunk := make([]byte, 4<<10)
	for range 1000 { // 4 MB: far more than the buffer, and Redis takes none
		r.Output(livestream.Stdout, chunk)
	}
	r.Finish("succeeded")
	waitDone(t, r)
	dropped := counter(t, b.reg, "wasmwizard_live_dropped_bytes_total")
	require.GreaterOrEqual(t, dropped, float64(1000*len(chunk)-64<<10), "all but the buffer is dropped")
	require.Greater(t, counter(t, b.reg, "wasmwizard_live_publish_errors_total"), 0.0)
}

// A chunk dropped for want of room leaves a gap the next entries' offsets
// show.
func TestDropLeavesAGapInOffsets(t *testing.T) {
	t.Parallel()
	p, b := setup(t, func(c *livepub.Config) { c.BufferBytes = 1 << 10 })
	id := uuid.New()
	r := p.Start(id, 1)
	// Whatever is buffered, a 4 KiB chunk never fits a 1 KiB buffer.
	r.Output(livestream.Stdout, []byte("a"))
	r.Output(livestream.Stdout, make([]byte, 4<<10))
	r.Output(livestream.Stdout, []byte("b"))
	r.Finish("succeeded")
	waitDone(t, r)
	var offs []int64
	for _, e := range b.entries(t, id) {
		if e.Kind == livestream.Stdout {
			offs = append(offs, e.Offset)
		}
	}
	require.Equal(t, []int64{0, 1 + 4<<10}, offs)
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
