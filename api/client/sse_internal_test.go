package client

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func collect(t *testing.T, in string, maxEvent int) ([]sseEvent, error) {
	t.Helper()
	var out []sseEvent
	err := readSSE(strings.NewReader(in), maxEvent, func(e sseEvent) bool {
		out = append(out, e)
		return true
	})
	return out, err
}

func TestReadSSE(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		in   string
		want []sseEvent
	}{
		"one":              {"id: 1\nevent: stdout\ndata: {\"text\":\"a\"}\n\n", []sseEvent{{ID: "1", HasID: true, Event: "stdout", Data: []byte(`{"text":"a"}`)}}},
		"crlf and cr":      {"event: a\r\ndata: x\r\n\r\nevent: b\rdata: y\r\r", []sseEvent{{Event: "a", Data: []byte("x")}, {Event: "b", Data: []byte("y")}}},
		"multi-line data":  {"data: a\ndata:b\ndata\n\n", []sseEvent{{Data: []byte("a\nb\n")}}},
		"comments":         {": ping\n\n: ping\ndata: x\n\n", []sseEvent{{Data: []byte("x")}}},
		"id carries over":  {"id: 7\ndata: a\n\ndata: b\n\n", []sseEvent{{ID: "7", HasID: true, Data: []byte("a")}, {ID: "7", HasID: true, Data: []byte("b")}}},
		"no data no event": {"event: x\n\n", nil},
		"unterminated":     {"data: a\n\ndata: b\n", []sseEvent{{Data: []byte("a")}}},
		"bom":              {"\xef\xbb\xbfdata: a\n\n", []sseEvent{{Data: []byte("a")}}},
		"unknown fields":   {"retry: 10\nfoo: bar\ndata: a\n\n", []sseEvent{{Data: []byte("a")}}},
	} {
		got, err := collect(t, tc.in, 1<<10)
		require.ErrorIs(t, err, io.EOF, name)
		require.Equal(t, tc.want, got, name)
	}
}

func TestReadSSEBounds(t *testing.T) {
	t.Parallel()
	_, err := collect(t, "data: "+strings.Repeat("x", 2000)+"\n\n", 1<<10)
	require.ErrorIs(t, err, errEventTooLarge)
	// Many short data lines add up to one event too large.
	_, err = collect(t, strings.Repeat("data: "+strings.Repeat("x", 100)+"\n", 20)+"\n", 1<<10)
	require.ErrorIs(t, err, errEventTooLarge)
	// Stopping early.
	n := 0
	err = readSSE(strings.NewReader("data: a\n\ndata: b\n\n"), 1<<10, func(sseEvent) bool { n++; return false })
	require.NoError(t, err)
	require.Equal(t, 1, n)
	// A reader's error is returned.
	boom := errors.New("boom")
	err = readSSE(io.MultiReader(strings.NewReader("data: a\n"), iotestErr{boom}), 1<<10, func(sseEvent) bool { return true })
	require.ErrorIs(t, err, boom)
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

func FuzzReadSSE(f *testing.F) {
	f.Add([]byte("id: 1\nevent: stdout\ndata: {\"text\":\"a\"}\n\n"))
	f.Add([]byte("data: a\r\ndata: b\r\r: c\n\n"))
	f.Add([]byte("\xef\xbb\xbfid\x00: x\ndata\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		total := 0
		err := readSSE(bytes.NewReader(in), 256, func(e sseEvent) bool {
			total += len(e.Data)
			if len(e.Data) > 256 {
				t.Fatalf("event of %d bytes past the bound", len(e.Data))
			}
			_, _ = parseEvent(e) // never panics on any data
			return true
		})
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, errEventTooLarge) {
			t.Fatalf("unexpected error %v", err)
		}
		if total > len(in) {
			t.Fatalf("%d bytes of data from %d bytes of input", total, len(in))
		}
	})
}
