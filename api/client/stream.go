package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"time"
)

// Stream event types (docs/API.md, "Live output").
const (
	EventStdout = "stdout"
	EventStderr = "stderr"
	EventStatus = "status"
	EventEnd    = "end"
)

// StreamEvent is one event of a job's live output.
type StreamEvent struct {
	// ID is the event's ID; StreamOptions.LastEventID resumes after it.
	ID string
	// Type is EventStdout, EventStderr, EventStatus or EventEnd (or a type
	// this client does not know, with Raw set).
	Type string
	// Output is the bytes of a stdout or stderr event.
	Output []byte
	// Status and Attempt are set on a status event.
	Status  string
	Attempt int
	// Job is the finished job, on the end event.
	Job *Job
	// Raw is the event's data as sent.
	Raw json.RawMessage
}

// StreamOptions are the options of Stream.
type StreamOptions struct {
	// LastEventID resumes a stream after this event.
	LastEventID string
	// MaxReconnects is how many times in a row a broken stream is opened
	// again without receiving an event in between (default 5).
	MaxReconnects int
	// MaxEventBytes bounds one event (default 64 MiB: the end event
	// carries the job with its outputs).
	MaxEventBytes int
}

// Stream returns an iterator over a job's live output (GET
// /v1/jobs/{id}/stream): stdout and stderr as the guest writes them, status
// changes, and a final end event with the job, after which the iteration
// stops. A finished job replays its output then ends. When the connection
// breaks, Stream opens it again with Last-Event-ID, so no event is repeated
// or lost. An error ends the iteration: it is yielded with a nil event.
//
//	for ev, err := range c.Stream(ctx, id, nil) {
//		if err != nil { … }
//		if ev.Type == client.EventStdout { os.Stdout.Write(ev.Output) }
//	}
func (c *Client) Stream(ctx context.Context, id string, opts *StreamOptions) iter.Seq2[*StreamEvent, error] {
	o := StreamOptions{MaxReconnects: 5, MaxEventBytes: 64 << 20}
	if opts != nil {
		o.LastEventID = opts.LastEventID
		if opts.MaxReconnects > 0 {
			o.MaxReconnects = opts.MaxReconnects
		}
		if opts.MaxEventBytes > 0 {
			o.MaxEventBytes = opts.MaxEventBytes
		}
	}
	return func(yield func(*StreamEvent, error) bool) {
		last := o.LastEventID
		failures := 0
		for {
			ended, progressed, err := c.streamOnce(ctx, id, last, o.MaxEventBytes, func(ev *StreamEvent) bool {
				last = ev.ID
				return yield(ev, nil)
			})
			if ended {
				return
			}
			if progressed {
				failures = 0
			}
			var apiErr *Error
			if ctx.Err() != nil || errors.As(err, &apiErr) || errors.Is(err, errEventTooLarge) || errors.Is(err, errBadEvent) {
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				yield(nil, err)
				return
			}
			failures++
			if failures > o.MaxReconnects {
				yield(nil, fmt.Errorf("stream of job %s: broken %d times in a row: %w", id, failures, err))
				return
			}
			t := time.NewTimer(c.backoff(failures - 1))
			select {
			case <-ctx.Done():
				t.Stop()
				yield(nil, ctx.Err())
				return
			case <-t.C:
			}
		}
	}
}

var errBadEvent = errors.New("malformed stream event")

// streamOnce reads one connection of the stream. ended is true when the
// end event arrived or emit asked to stop; progressed when any event did.
func (c *Client) streamOnce(ctx context.Context, id, last string, maxEvent int, emit func(*StreamEvent) bool) (ended, progressed bool, err error) {
	h := http.Header{"Accept": {"text/event-stream"}}
	if last != "" {
		h.Set("Last-Event-ID", last)
	}
	res, err := c.send(ctx, request{method: http.MethodGet, path: "/v1/jobs/" + seg(id) + "/stream", header: h, safe: true})
	if err != nil {
		return false, false, err
	}
	defer func() { _ = res.Body.Close() }()
	var stop bool
	var parseErr error
	err = readSSE(res.Body, maxEvent, func(raw sseEvent) bool {
		ev, perr := parseEvent(raw)
		if perr != nil {
			parseErr = perr
			return false
		}
		progressed = true
		if !emit(ev) || ev.Type == EventEnd {
			stop = true
			return false
		}
		return true
	})
	if stop {
		return true, progressed, nil
	}
	if parseErr != nil {
		return false, progressed, parseErr
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF // the server closed before the end event
	}
	return false, progressed, err
}

// parseEvent decodes an event's data by its type.
func parseEvent(raw sseEvent) (*StreamEvent, error) {
	ev := &StreamEvent{ID: raw.ID, Type: raw.Event, Raw: raw.Data}
	bad := func(err error) (*StreamEvent, error) {
		return nil, fmt.Errorf("%w: %s: %w", errBadEvent, raw.Event, err)
	}
	switch raw.Event {
	case EventStdout, EventStderr:
		var d struct {
			Text   *string `json:"text"`
			Base64 *string `json:"base64"`
		}
		if err := json.Unmarshal(raw.Data, &d); err != nil {
			return bad(err)
		}
		switch {
		case d.Text != nil:
			ev.Output = []byte(*d.Text)
		case d.Base64 != nil:
			b, err := base64.StdEncoding.DecodeString(*d.Base64)
			if err != nil {
				return bad(err)
			}
			ev.Output = b
		}
	case EventStatus:
		var d struct {
			Status  string `json:"status"`
			Attempt int    `json:"attempt"`
		}
		if err := json.Unmarshal(raw.Data, &d); err != nil {
			return bad(err)
		}
		ev.Status, ev.Attempt = d.Status, d.Attempt
	case EventEnd:
		ev.Job = &Job{}
		if err := json.Unmarshal(raw.Data, ev.Job); err != nil {
			return bad(err)
		}
		ev.Status = ev.Job.Status
	}
	return ev, nil
}
