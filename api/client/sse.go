package client

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// sseEvent is one Server-Sent Event as read from the wire.
type sseEvent struct {
	ID    string
	Event string
	Data  []byte
	// HasID is true when the event carried an id field (even empty).
	HasID bool
}

// errEventTooLarge is returned for a line or event past the reader's bound.
var errEventTooLarge = errors.New("server-sent event too large")

// readSSE reads Server-Sent Events (the WHATWG "event stream" format) from
// r and calls fn with each; fn returns false to stop. No line and no
// event's data may exceed maxEvent bytes: memory grows with what arrives,
// never with a length the sender announces. It returns nil when fn stopped,
// io.EOF when r ended (an event not yet terminated by a blank line is
// dropped, as the format says), or r's error.
func readSSE(r io.Reader, maxEvent int, fn func(sseEvent) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxEvent)
	sc.Split(scanLines)
	var ev sseEvent
	var data bytes.Buffer
	hasData := false
	first := true
	for sc.Scan() {
		line := sc.Bytes()
		if first {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf")) // a leading BOM
			first = false
		}
		if len(line) == 0 { // dispatch
			if hasData {
				ev.Data = bytes.Clone(bytes.TrimSuffix(data.Bytes(), []byte("\n")))
				if !fn(ev) {
					return nil
				}
			}
			ev = sseEvent{ID: ev.ID, HasID: ev.HasID}
			data.Reset()
			hasData = false
			continue
		}
		if line[0] == ':' { // a comment (heartbeats)
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			ev.Event = string(value)
		case "data":
			if data.Len()+len(value)+1 > maxEvent {
				return errEventTooLarge
			}
			data.Write(value)
			data.WriteByte('\n')
			hasData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				ev.ID, ev.HasID = string(value), true
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return errEventTooLarge
		}
		return fmt.Errorf("read event stream: %w", err)
	}
	return io.EOF
}

// scanLines splits on LF, CRLF or a lone CR (the format allows all three).
func scanLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	for i, b := range data {
		switch b {
		case '\n':
			return i + 1, data[:i], nil
		case '\r':
			if i+1 < len(data) {
				if data[i+1] == '\n' {
					return i + 2, data[:i], nil
				}
				return i + 1, data[:i], nil
			}
			if atEOF {
				return i + 1, data[:i], nil
			}
			return 0, nil, nil // a CR at the end of what was read: wait for the next byte
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
