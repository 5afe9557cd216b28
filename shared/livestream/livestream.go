// Package livestream is the protocol of a running job's live output, from
// worker to API.
//
// The worker publishes the output to one Redis stream per job, and the API
// serves it as Server-Sent Events; the protocol is the stream's key, the
// format of its entries and the event IDs a client resumes from.
//
// An output entry carries its byte offset in its stream (stdout or stderr)
// within the job's attempt. The offsets are what make a resume exact: a
// reader knows how many bytes of each stream its client has, so it skips
// what the client has and notices what it missed (an entry dropped by the
// worker, or trimmed from Redis), and then sends the rest from Postgres,
// where the job's output is stored, once the job has ended.
package livestream

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Bounds of a stream. An entry holds at most MaxChunk bytes of output; a
// stream keeps about MaxLen entries (XADD MAXLEN ~), so a job's stream holds
// at most about MaxLen*MaxChunk bytes of output in Redis (8 MiB) however
// much it writes; it expires TTL after its last entry, or EndTTL after the
// job's end (readers of a finished job read Postgres).
const (
	MaxChunk = 16 << 10
	MaxLen   = 512
	TTL      = 10 * time.Minute
	EndTTL   = time.Minute
)

// Key is the Redis key of job id's stream in the deployment of base queue
// queue (tasks.Queue), beside the deployment's other keys (doorbell.Key).
func Key(queue string, id uuid.UUID) string {
	return "wasmwizard:{" + queue + "}:live:" + id.String()
}

// Kind is what an entry says.
type Kind byte

// Kinds of entries.
const (
	// Stdout and Stderr carry output bytes at an offset.
	Stdout Kind = 'o'
	Stderr Kind = 'e'
	// Status says the job's attempt is in a new state (running; queued
	// again when the worker handed it back).
	Status Kind = 's'
	// End says the job's terminal result is in Postgres.
	End Kind = 'x'
)

// Entry is one entry of a stream.
type Entry struct {
	Kind    Kind
	Attempt int
	// Offset is where Data starts in its output stream (Stdout, Stderr).
	Offset int64
	// Data is output bytes (Stdout, Stderr) or a job status (Status, End).
	Data []byte
}

// Field names of an entry in Redis.
const (
	fieldKind    = "k"
	fieldAttempt = "a"
	fieldOffset  = "n"
	fieldData    = "d"
)

// Values are the entry's fields and values for XADD.
func (e Entry) Values() []any {
	return []any{fieldKind, string(e.Kind), fieldAttempt, strconv.Itoa(e.Attempt),
		fieldOffset, strconv.FormatInt(e.Offset, 10), fieldData, e.Data}
}

// Limits on what Parse accepts.
const (
	maxAttempt = 1 << 20
	maxOffset  = 1 << 40
	maxStatus  = 32
)

// Parse reads an entry from the values of a stream message (as go-redis
// returns them). It refuses anything the worker would not have written.
func Parse(values map[string]any) (Entry, error) {
	str := func(name string) (string, error) {
		v, ok := values[name].(string)
		if !ok {
			return "", fmt.Errorf("live entry: no field %q", name)
		}
		return v, nil
	}
	k, err := str(fieldKind)
	if err != nil {
		return Entry{}, err
	}
	a, err := str(fieldAttempt)
	if err != nil {
		return Entry{}, err
	}
	n, err := str(fieldOffset)
	if err != nil {
		return Entry{}, err
	}
	d, err := str(fieldData)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{}
	if len(k) != 1 {
		return Entry{}, errors.New("live entry: bad kind")
	}
	e.Kind = Kind(k[0])
	if e.Attempt, err = boundedInt(a, maxAttempt); err != nil {
		return Entry{}, fmt.Errorf("live entry: attempt: %w", err)
	}
	off, err := boundedInt(n, maxOffset)
	if err != nil {
		return Entry{}, fmt.Errorf("live entry: offset: %w", err)
	}
	e.Offset = int64(off)
	switch e.Kind {
	case Stdout, Stderr:
		if len(d) == 0 || len(d) > MaxChunk {
			return Entry{}, errors.New("live entry: output chunk of a bad size")
		}
	case Status, End:
		if len(d) == 0 || len(d) > maxStatus || strings.ContainsFunc(d, func(r rune) bool { return (r < 'a' || r > 'z') && r != '_' }) {
			return Entry{}, errors.New("live entry: bad status")
		}
	default:
		return Entry{}, errors.New("live entry: bad kind")
	}
	e.Data = []byte(d)
	return e, nil
}

// boundedInt parses a decimal from 0 to limit, digits only.
func boundedInt(s string, limit int) (int, error) {
	if s == "" || len(s) > 13 || strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, errors.New("not a small decimal")
	}
	v, err := strconv.Atoi(s)
	if err != nil || v > limit {
		return 0, errors.New("out of range")
	}
	return v, nil
}

// Position is where a client is in a job's live output: an SSE event's ID.
// Entry is the ID of the last stream entry it has read everything of ("" for
// none), Attempt the job's attempt, and Stdout and Stderr how many bytes of
// each output of that attempt it has.
type Position struct {
	Entry          string
	Attempt        int
	Stdout, Stderr int64
}

// String is the event ID: "<entry>.<attempt>.<stdout>.<stderr>", with
// "0-0" for no entry.
func (p Position) String() string {
	e := p.Entry
	if e == "" {
		e = "0-0"
	}
	return e + "." + strconv.Itoa(p.Attempt) + "." + strconv.FormatInt(p.Stdout, 10) + "." + strconv.FormatInt(p.Stderr, 10)
}

// maxPosition bounds an event ID's length.
const maxPosition = 100

// ParsePosition reads an event ID (a Last-Event-ID header). The empty
// string is the start.
func ParsePosition(s string) (Position, error) {
	if s == "" {
		return Position{}, nil
	}
	bad := errors.New("not an event ID of this stream")
	if len(s) > maxPosition {
		return Position{}, bad
	}
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return Position{}, bad
	}
	if _, err := ParseEntryID(parts[0]); err != nil {
		return Position{}, bad
	}
	var p Position
	var err error
	if parts[0] != "0-0" {
		p.Entry = parts[0]
	}
	if p.Attempt, err = boundedInt(parts[1], maxAttempt); err != nil {
		return Position{}, bad
	}
	out, err := boundedInt(parts[2], maxOffset)
	if err != nil {
		return Position{}, bad
	}
	errb, err := boundedInt(parts[3], maxOffset)
	if err != nil {
		return Position{}, bad
	}
	p.Stdout, p.Stderr = int64(out), int64(errb)
	return p, nil
}

// EntryID is a Redis stream entry ID, "<ms>-<seq>".
type EntryID struct{ MS, Seq uint64 }

// ParseEntryID reads a stream entry ID.
func ParseEntryID(s string) (EntryID, error) {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok || ms == "" || seq == "" || len(ms) > 20 || len(seq) > 20 {
		return EntryID{}, errors.New("not a stream entry ID")
	}
	a, err1 := strconv.ParseUint(ms, 10, 64)
	b, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil {
		return EntryID{}, errors.New("not a stream entry ID")
	}
	return EntryID{a, b}, nil
}

// Less orders entry IDs.
func (a EntryID) Less(b EntryID) bool { return a.MS < b.MS || a.MS == b.MS && a.Seq < b.Seq }
