package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/jobview"
	"github.com/wasmwizard/wasmwizard/shared/livestream"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// Live output (GET /v1/jobs/{id}/stream, Server-Sent Events).
//
// A running job's output is read from its Redis stream (shared/livestream)
// with XREAD, at most streamBatch entries (of at most livestream.MaxChunk
// bytes) at a time, each read waiting at most streamBlock: a stream holds a
// Redis connection only while it waits for entries, and none while it
// writes to its client, however slow the client is. The job's end comes
// from the worker's end entry, or from the job watcher (LISTEN) when no
// worker says so (a job cancelled while queued, a worker lost). Output the
// stream misses (dropped by the worker, trimmed from Redis, Redis lost) is
// sent from Postgres once the job has ended: the event IDs carry byte
// offsets, so nothing is sent twice.
const (
	// DefaultStreamsPerAccount and DefaultStreamsMax bound the streams one
	// API process serves at once, per account and in all.
	DefaultStreamsPerAccount = 8
	DefaultStreamsMax        = 256
	// DefaultStreamHeartbeat is how long a stream may stay silent before a
	// ": ping" comment is sent, so proxies keep the connection open.
	DefaultStreamHeartbeat = 15 * time.Second

	streamBlock        = time.Second
	streamBatch        = 16
	streamWriteTimeout = 30 * time.Second
	// streamPiece is how much of a stored output one Postgres read brings
	// when a stream sends output from Postgres.
	streamPiece = 64 << 10
)

// streamLimits counts the streams this process serves.
type streamLimits struct {
	mu                    sync.Mutex
	perAccount            map[uuid.UUID]int
	total                 int
	maxTotal, maxAccount  int
	refused               *prometheus.CounterVec
	resyncs, served, ends prometheus.Counter
}

func newStreamLimits(reg prometheus.Registerer, maxAccount, maxTotal int) *streamLimits {
	if maxAccount <= 0 {
		maxAccount = DefaultStreamsPerAccount
	}
	if maxTotal <= 0 {
		maxTotal = DefaultStreamsMax
	}
	l := &streamLimits{perAccount: map[uuid.UUID]int{}, maxTotal: maxTotal, maxAccount: maxAccount,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmwizard_api_streams_refused_total",
			Help: "Live output streams refused because the account (account) or this process (process) had too many open.",
		}, []string{"limit"}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasmwizard_api_stream_resyncs_total",
			Help: "Live output streams that missed output in Redis and sent it from Postgres once the job ended.",
		}),
		served: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasmwizard_api_streams_total",
			Help: "Live output streams opened.",
		}),
		ends: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wasmwizard_api_stream_ends_total",
			Help: "Live output streams that sent their job's end event.",
		}),
	}
	reg.MustRegister(l.refused, l.resyncs, l.served, l.ends, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "wasmwizard_api_streams",
		Help: "Live output streams open on this API process.",
	}, func() float64 {
		l.mu.Lock()
		defer l.mu.Unlock()
		return float64(l.total)
	}))
	return l
}

// acquire counts a stream of account, or refuses it with 429.
func (l *streamLimits) acquire(account uuid.UUID) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.perAccount[account] >= l.maxAccount:
		l.refused.WithLabelValues("account").Inc()
		return nil, apperr.New(apperr.RateLimited, "this account has %d live output streams open on this server, the most it may; close one first", l.maxAccount)
	case l.total >= l.maxTotal:
		l.refused.WithLabelValues("process").Inc()
		return nil, apperr.New(apperr.Unavailable, "this server is serving as many live output streams as it can; retry shortly")
	}
	l.perAccount[account]++
	l.total++
	l.served.Inc()
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.total--
		if l.perAccount[account]--; l.perAccount[account] <= 0 {
			delete(l.perAccount, account)
		}
	}, nil
}

// streamJob serves a job's live output as Server-Sent Events.
func (s *Server) streamJob(c echo.Context) error {
	id, err := pathID(c, "job")
	if err != nil {
		return err
	}
	pos, err := livestream.ParsePosition(c.Request().Header.Get("Last-Event-ID"))
	if err != nil {
		return apperr.Validation(apperr.FieldError{Field: "Last-Event-ID",
			Message: "must be the id of an event of this job's stream, as sent"})
	}
	ctx := c.Request().Context()
	account := principal(c).AccountID
	st := &sseStream{s: s, c: c, account: account, id: id, pos: pos}
	st.rewatch() // before the first read, so that no end is missed
	defer st.stopWatch()
	j, err := s.store.GetJobView(ctx, account, id)
	if err != nil {
		return err
	}
	release, err := s.streams.acquire(account)
	if err != nil {
		return err
	}
	defer release()
	if !j.Status.Terminal() && !j.Watched && s.watcher != nil {
		// Only watched jobs notify their end (see awaitJob).
		if err := s.store.WatchJob(ctx, account, id); err != nil {
			return err
		}
		if j, err = s.store.GetJobView(ctx, account, id); err != nil {
			return err
		}
	}
	if err := st.begin(); err != nil {
		return nil // the client is gone
	}
	if err := st.sendStatus(j.Status, j.Attempts); err != nil {
		return nil
	}
	if !j.Status.Terminal() {
		if j, err = st.follow(ctx); err != nil {
			if ctx.Err() == nil && !isWriteError(err) {
				s.log.Warn("live output stream failed", zap.String("job_id", id.String()), zap.Error(err))
			}
			return nil
		}
	}
	if err := st.finish(ctx, j); err != nil && ctx.Err() == nil && !isWriteError(err) {
		s.log.Warn("live output stream failed", zap.String("job_id", id.String()), zap.Error(err))
	}
	return nil
}

// writeError marks a failed write to the client.
type writeError struct{ error }

func (e writeError) Unwrap() error { return e.error }

func isWriteError(err error) bool { return errors.As(err, new(writeError)) }

// sseStream is one client's stream.
type sseStream struct {
	s       *Server
	c       echo.Context
	rc      *http.ResponseController
	account uuid.UUID
	id      uuid.UUID
	watch   watchHandle

	// pos is what the client has; held[i] the bytes of output i received
	// past it and not sent yet (the start of a UTF-8 character whose end
	// has not come), which come from the entries after heldFrom[i].
	pos      livestream.Position
	held     [2][]byte
	heldFrom [2]string
	// cursor is the last entry read.
	cursor string
	// status and attempt are the last status sent.
	status    jobstate.Status
	attempt   int
	lastWrite time.Time
	buf       bytes.Buffer
}

// watchHandle is a job watch, or nothing without a watcher.
type watchHandle interface {
	C() <-chan struct{}
	Stop()
}

func (st *sseStream) rewatch() {
	st.stopWatch()
	if st.s.watcher != nil {
		st.watch = st.s.watcher.Watch(st.id)
	}
}

func (st *sseStream) stopWatch() {
	if st.watch != nil {
		st.watch.Stop()
		st.watch = nil
	}
}

// watchC fires when the job may have ended (nil without a watcher).
func (st *sseStream) watchC() <-chan struct{} {
	if st.watch == nil {
		return nil
	}
	return st.watch.C()
}

// begin sends the response's headers. A stream outlives the server's
// ReadTimeout, whose deadline would end it: it is lifted.
func (st *sseStream) begin() error {
	r := st.c.Response()
	st.rc = http.NewResponseController(r)
	_ = st.rc.SetReadDeadline(time.Time{})
	h := r.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer
	r.WriteHeader(http.StatusOK)
	return st.flush()
}

func (st *sseStream) flush() error {
	_ = st.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if _, err := st.c.Response().Write(st.buf.Bytes()); err != nil {
		return writeError{err}
	}
	st.buf.Reset()
	if err := st.rc.Flush(); err != nil {
		return writeError{err}
	}
	st.lastWrite = time.Now()
	return nil
}

// event sends one event with the current position as its ID.
func (st *sseStream) event(name string, data any) error {
	st.buf.WriteString("id: ")
	st.buf.WriteString(st.eventID().String())
	st.buf.WriteString("\nevent: ")
	st.buf.WriteString(name)
	st.buf.WriteString("\ndata: ")
	enc := json.NewEncoder(&st.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(data); err != nil { // one line: JSON escapes line breaks
		return err
	}
	st.buf.WriteString("\n")
	return st.flush()
}

// eventID is where a client resumes: after the last entry read, or before
// the entry a held byte came from.
func (st *sseStream) eventID() livestream.Position {
	p := st.pos
	if st.cursor != "" {
		p.Entry = st.cursor
	}
	for i := range st.held {
		if len(st.held[i]) == 0 {
			continue
		}
		from, err1 := livestream.ParseEntryID(st.heldFrom[i])
		cur, err2 := livestream.ParseEntryID(p.Entry)
		if err1 == nil && (err2 != nil || from.Less(cur)) {
			p.Entry = st.heldFrom[i]
		}
	}
	if p.Entry == "0-0" {
		p.Entry = ""
	}
	return p
}

func (st *sseStream) heartbeat() error {
	if time.Since(st.lastWrite) < st.s.streamPing {
		return nil
	}
	st.buf.WriteString(": ping\n\n")
	return st.flush()
}

func (st *sseStream) sendStatus(status jobstate.Status, attempt int) error {
	if status == st.status && attempt == st.attempt {
		return nil
	}
	st.status, st.attempt = status, attempt
	return st.event("status", statusEvent{Attempt: attempt, Status: status})
}

// statusEvent is a status event's data.
type statusEvent struct {
	Attempt int             `json:"attempt"`
	Status  jobstate.Status `json:"status"`
}

// output is an output event's data.
type output struct {
	Text   *string `json:"text,omitempty"`
	Base64 *string `json:"base64,omitempty"`
}

// sendOutput sends b, the bytes of output i from the client's position on,
// and returns how many it sent: all of them when final, else all but an
// incomplete UTF-8 character at the end.
func (st *sseStream) sendOutput(i int, b []byte, final bool) (int, error) {
	n := len(b)
	if !final {
		n = completeUTF8(b)
	}
	if n == 0 {
		return 0, nil
	}
	st.advance(i, int64(n))
	var data output
	if s := string(b[:n]); utf8.ValidString(s) {
		data.Text = &s
	} else {
		e := base64.StdEncoding.EncodeToString(b[:n])
		data.Base64 = &e
	}
	name := "stdout"
	if i == 1 {
		name = "stderr"
	}
	return n, st.event(name, data)
}

func (st *sseStream) offset(i int) int64 {
	if i == 1 {
		return st.pos.Stderr
	}
	return st.pos.Stdout
}

func (st *sseStream) advance(i int, n int64) {
	if i == 1 {
		st.pos.Stderr += n
	} else {
		st.pos.Stdout += n
	}
}

// completeUTF8 returns the length of b without a trailing incomplete UTF-8
// character (at most three bytes that start one).
func completeUTF8(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}

// errShuttingDown ends streams when the server shuts down.
var errShuttingDown = writeError{errors.New("the server is shutting down")}

// errResync: the stream missed output; the rest comes from Postgres.
var errResync = errors.New("live output missed; resync from postgres")

// follow sends the job's live output until it ends, and returns the job as
// it ended. When the Redis stream cannot give the output exactly, it waits
// for the end without it (finish then sends the rest from Postgres).
func (st *sseStream) follow(ctx context.Context) (store.Job, error) {
	if st.s.liveRedis == nil {
		return st.resync(ctx)
	}
	key := livestream.Key(st.s.queue, st.id)
	st.cursor = st.pos.Entry
	if st.cursor == "" {
		st.cursor = "0-0"
	}
	for {
		select {
		case <-st.watchC():
			if j, done, err := st.ended(ctx); done || err != nil {
				return j, err
			}
		default:
		}
		if err := ctx.Err(); err != nil {
			return store.Job{}, err
		}
		res, err := st.s.liveRedis.XRead(ctx, &redis.XReadArgs{Streams: []string{key, st.cursor},
			Count: streamBatch, Block: streamBlock}).Result()
		if errors.Is(err, redis.Nil) {
			if err := st.heartbeat(); err != nil {
				return store.Job{}, err
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return store.Job{}, ctx.Err()
			}
			st.s.log.Info("live output unreadable from Redis; the stream resyncs from Postgres",
				zap.String("job_id", st.id.String()), zap.Error(err))
			return st.resync(ctx)
		}
		for _, m := range res[0].Messages {
			prev := st.cursor
			st.cursor = m.ID
			e, err := livestream.Parse(m.Values)
			if err != nil {
				continue
			}
			j, done, err := st.entry(ctx, prev, e)
			if errors.Is(err, errResync) {
				return st.resync(ctx)
			}
			if done || err != nil {
				return j, err
			}
		}
	}
}

// entry sends what one stream entry says; done when the job has ended.
func (st *sseStream) entry(ctx context.Context, prev string, e livestream.Entry) (store.Job, bool, error) {
	switch {
	case e.Attempt < st.pos.Attempt:
		return store.Job{}, false, nil // a stale attempt's
	case e.Attempt > st.pos.Attempt:
		// A new attempt's output starts again from its first byte.
		st.pos.Attempt, st.pos.Stdout, st.pos.Stderr = e.Attempt, 0, 0
		st.held = [2][]byte{}
	}
	switch e.Kind {
	case livestream.Status:
		return store.Job{}, false, st.sendStatus(jobstate.Status(e.Data), e.Attempt)
	case livestream.End:
		return st.ended(ctx)
	}
	i := 0
	if e.Kind == livestream.Stderr {
		i = 1
	}
	have := st.offset(i) + int64(len(st.held[i]))
	switch {
	case e.Offset > have:
		return store.Job{}, false, errResync
	case e.Offset+int64(len(e.Data)) <= have:
		return store.Job{}, false, nil // the client has it
	}
	if len(st.held[i]) == 0 {
		st.heldFrom[i] = prev
	}
	b := append(st.held[i], e.Data[have-e.Offset:]...)
	n, err := st.sendOutput(i, b, false)
	st.held[i] = append([]byte(nil), b[n:]...)
	return store.Job{}, false, err
}

// ended reads the job after its watch fired or its end entry came: done
// when it is terminal; otherwise it watches it again.
func (st *sseStream) ended(ctx context.Context) (store.Job, bool, error) {
	if st.s.watcher != nil && st.s.watcher.Closed() {
		// The server is shutting down: the client resumes elsewhere.
		return store.Job{}, false, errShuttingDown
	}
	st.rewatch()
	j, err := st.s.store.GetJobView(ctx, st.account, st.id)
	if err != nil {
		return store.Job{}, false, err
	}
	return j, j.Status.Terminal(), nil
}

// resync waits for the job's end without the Redis stream, keeping the
// connection open with heartbeats.
func (st *sseStream) resync(ctx context.Context) (store.Job, error) {
	st.s.streams.resyncs.Inc()
	ping := time.NewTicker(st.s.streamPing)
	defer ping.Stop()
	for {
		j, done, err := st.ended(ctx)
		if done || err != nil {
			return j, err
		}
		select {
		case <-st.watchC():
		case <-ping.C:
			if err := st.heartbeat(); err != nil {
				return store.Job{}, err
			}
		case <-ctx.Done():
			return store.Job{}, ctx.Err()
		}
	}
}

// finish sends the ended job's output the client does not have, from
// Postgres, then its status and the end event (the Job without its
// outputs: they came as events).
func (st *sseStream) finish(ctx context.Context, j store.Job) error {
	st.held = [2][]byte{}
	if j.Attempts != st.pos.Attempt {
		// The client's offsets are of another attempt's output.
		st.pos.Attempt, st.pos.Stdout, st.pos.Stderr = j.Attempts, 0, 0
	}
	stdout, stderr := st.s.outputs(ctx, j)
	buf := make([]byte, streamPiece)
	for i, out := range []jobview.Output{stdout, stderr} {
		size := out.Size()
		for off := st.offset(i); off < size; {
			n := int(min(int64(len(buf)), size-off))
			if _, err := out.ReadAt(buf[:n], off); err != nil {
				return err
			}
			b := buf[:n]
			for len(b) > 0 {
				k := min(len(b), livestream.MaxChunk)
				last := off+int64(k) == size
				sent, err := st.sendOutput(i, b[:k], last)
				if err != nil {
					return err
				}
				if sent == 0 { // an incomplete character: read it with what follows
					break
				}
				b, off = b[sent:], off+int64(sent)
			}
		}
	}
	if err := st.sendStatus(j.Status, j.Attempts); err != nil {
		return err
	}
	// The end event's Job lists the artifacts like GET /v1/jobs/{id}.
	if err := st.s.store.LoadArtifacts(ctx, &j); err != nil {
		return err
	}
	if err := st.event("end", jobview.Summary(j)); err != nil {
		return err
	}
	st.s.streams.ends.Inc()
	return nil
}
