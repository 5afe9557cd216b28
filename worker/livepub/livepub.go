// Package livepub publishes a running job's output to its Redis stream as
// the guest writes.
//
// The stream (shared/livestream) feeds the API's live output (GET
// /v1/jobs/{id}/stream).
//
// Publishing never slows the guest: the executor's output hook copies each
// chunk into a buffer of at most Config.BufferBytes per run and returns; one
// goroutine per run sends what has been buffered to Redis in one pipeline
// (chunks written meanwhile are coalesced into entries of up to
// livestream.MaxChunk bytes). When the buffer is full, because Redis is slow
// or down, a chunk is dropped rather than waited for: the offsets of the
// entries that follow reveal the gap, and readers send the rest from
// Postgres once the job has ended ("resync"). Postgres stays the record of
// the output; losing Redis only degrades the live view.
package livepub

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/livestream"
)

// DefaultBufferBytes is Config.BufferBytes's default.
const DefaultBufferBytes = 256 << 10

// entryOverhead is what an entry costs beyond its bytes, counted against
// the buffer so that many tiny entries (a guest alternating one-byte
// writes to stdout and stderr) cannot hold more memory than it says.
const entryOverhead = 64

func cost(n int) int { return n + entryOverhead }

// sendTimeout bounds one pipeline to Redis.
const sendTimeout = 2 * time.Second

// Config is what a Publisher is built from.
type Config struct {
	Redis redis.UniversalClient
	// Queue is the deployment's base queue (tasks.Queue), which names the
	// streams.
	Queue string
	// BufferBytes bounds the output one run holds on its way to Redis
	// (default DefaultBufferBytes); past it output is dropped from the
	// live view.
	BufferBytes int
	Log         *zap.Logger
	// Registry, when set, gets the publisher's metrics.
	Registry prometheus.Registerer
}

// Publisher publishes the live output of a worker's runs.
type Publisher struct {
	rdb     redis.UniversalClient
	queue   string
	buffer  int
	log     *zap.Logger
	dropped prometheus.Counter
	failed  prometheus.Counter
	entries prometheus.Counter
}

// New returns a Publisher.
func New(c Config) *Publisher {
	p := &Publisher{rdb: c.Redis, queue: c.Queue, buffer: c.BufferBytes, log: c.Log,
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasmwizard_live_dropped_bytes_total",
			Help: "Guest output left out of the live view because the run's publish buffer was full (readers resync from Postgres).",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasmwizard_live_publish_errors_total",
			Help: "Pipelines of live output entries Redis did not take (their output is left out of the live view).",
		}),
		entries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasmwizard_live_entries_total",
			Help: "Live output entries written to Redis streams.",
		}),
	}
	if p.buffer <= 0 {
		p.buffer = DefaultBufferBytes
	}
	if p.log == nil {
		p.log = zap.NewNop()
	}
	if c.Registry != nil {
		c.Registry.MustRegister(p.dropped, p.failed, p.entries)
	}
	return p
}

// Run is the live output of one attempt of a job.
type Run struct {
	p       *Publisher
	key     string
	attempt int

	mu      sync.Mutex
	pending []livestream.Entry
	held    int      // cost of the output entries buffered or being sent
	offsets [2]int64 // next offset of stdout, stderr (dropped bytes count)
	closed  bool

	wake chan struct{}
	done chan struct{}
}

// Start begins the live output of attempt of job id: it publishes that the
// job is running. Call Finish when the run is over.
func (p *Publisher) Start(id uuid.UUID, attempt int) *Run {
	r := &Run{p: p, key: livestream.Key(p.queue, id), attempt: attempt,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	r.pending = append(r.pending, livestream.Entry{Kind: livestream.Status, Attempt: attempt, Data: []byte(jobstate.Running)})
	r.signal()
	go r.loop()
	return r
}

// Output takes a chunk of the guest's output (kind livestream.Stdout or
// livestream.Stderr). It copies what it keeps and never blocks on Redis:
// past the run's buffer, the chunk is dropped from the live view. It is
// the executor's output hook: calls come from one goroutine, in order.
func (r *Run) Output(kind livestream.Kind, chunk []byte) {
	i := 0
	if kind == livestream.Stderr {
		i = 1
	}
	r.mu.Lock()
	off := r.offsets[i]
	r.offsets[i] += int64(len(chunk))
	if r.closed || len(chunk) == 0 {
		r.mu.Unlock()
		return
	}
	if r.held+len(chunk)+entryOverhead > r.p.buffer {
		r.mu.Unlock()
		r.p.dropped.Add(float64(len(chunk)))
		return
	}
	for len(chunk) > 0 {
		if n := len(r.pending); n > 0 {
			last := &r.pending[n-1]
			if last.Kind == kind && last.Offset+int64(len(last.Data)) == off && len(last.Data) < livestream.MaxChunk {
				k := min(livestream.MaxChunk-len(last.Data), len(chunk))
				last.Data = append(last.Data, chunk[:k]...)
				r.held += k
				off += int64(k)
				chunk = chunk[k:]
				continue
			}
		}
		k := min(livestream.MaxChunk, len(chunk))
		data := append([]byte(nil), chunk[:k]...)
		r.held += cost(k)
		r.pending = append(r.pending, livestream.Entry{Kind: kind, Attempt: r.attempt, Offset: off, Data: data})
		off += int64(k)
		chunk = chunk[k:]
	}
	r.mu.Unlock()
	r.signal()
}

// Finish ends the run's live output with the job's status: a terminal
// status (its result is in Postgres) publishes the end; "queued" (the job
// was handed back) a status change; "" (nothing could be written) nothing
// more. It does not wait for Redis; later calls do nothing.
func (r *Run) Finish(status jobstate.Status) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	switch status {
	case "":
	case jobstate.Queued:
		r.pending = append(r.pending, livestream.Entry{Kind: livestream.Status, Attempt: r.attempt, Data: []byte(status)})
	default:
		r.pending = append(r.pending, livestream.Entry{Kind: livestream.End, Attempt: r.attempt, Data: []byte(status)})
	}
	r.mu.Unlock()
	r.signal()
}

// Done is closed when everything the run published has been sent (or
// failed) after Finish.
func (r *Run) Done() <-chan struct{} { return r.done }

func (r *Run) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *Run) loop() {
	defer close(r.done)
	for range r.wake {
		r.mu.Lock()
		batch := r.pending
		r.pending = nil
		last := r.closed
		r.mu.Unlock()
		if len(batch) > 0 {
			r.send(batch, last)
			n := 0
			for _, e := range batch {
				if e.Kind == livestream.Stdout || e.Kind == livestream.Stderr {
					n += cost(len(e.Data))
				}
			}
			r.mu.Lock()
			r.held -= n
			r.mu.Unlock()
		}
		if last {
			return
		}
	}
}

// send writes a batch of entries and the stream's expiry in one pipeline.
func (r *Run) send(batch []livestream.Entry, last bool) {
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	pipe := r.p.rdb.Pipeline()
	for _, e := range batch {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: r.key, MaxLen: livestream.MaxLen, Approx: true, Values: e.Values()})
	}
	ttl := livestream.TTL
	if last {
		ttl = livestream.EndTTL
	}
	pipe.Expire(ctx, r.key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		r.p.failed.Inc()
		r.p.log.Debug("live output not published", zap.String("stream", r.key), zap.Error(err))
		return
	}
	r.p.entries.Add(float64(len(batch)))
}
