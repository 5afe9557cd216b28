package main

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
)

func pgMessage(typ byte, body string) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(4+len(body))) //nolint:gosec // test sizes
	return append(b, body...)
}

// The counters find the same messages however the stream is cut into reads.
func TestCountersAcrossReadBoundaries(t *testing.T) {
	t.Parallel()
	startup := make([]byte, 8, 16)
	binary.BigEndian.PutUint32(startup[0:], 16)
	binary.BigEndian.PutUint32(startup[4:], 196608) // protocol 3.0
	startup = append(startup, "user\x00x\x00\x00"...)
	pg := append([]byte{}, startup...)
	for _, m := range [][]byte{
		pgMessage('P', "\x00SELECT 1\x00\x00\x00"), pgMessage('B', "\x00\x00\x00\x00\x00\x00\x00\x00"),
		pgMessage('E', "\x00\x00\x00\x00\x00"), pgMessage('S', ""), // one extended-protocol round trip
		pgMessage('Q', "BEGIN\x00"), // one simple query
		pgMessage('B', "\x00\x00\x00\x00\x00\x00\x00\x00"), pgMessage('E', "\x00\x00\x00\x00\x00"), pgMessage('S', ""),
	} {
		pg = append(pg, m...)
	}
	redis := []byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\n*2\r\n\r\n*1\r\n$4\r\nPING\r\nPING\r\n")
	for _, c := range []struct {
		name   string
		stream []byte
		feed   func(n *atomic.Int64) func([]byte)
		want   int64
	}{
		{"postgres", pg, func(n *atomic.Int64) func([]byte) { return (&pgCounter{n: n}).feed }, 3},
		{"redis", redis, func(n *atomic.Int64) func([]byte) { return (&respCounter{n: n}).feed }, 3},
	} {
		for step := 1; step <= len(c.stream); step++ {
			var n atomic.Int64
			feed := c.feed(&n)
			for i := 0; i < len(c.stream); i += step {
				feed(c.stream[i:min(i+step, len(c.stream))])
			}
			if n.Load() != c.want {
				t.Fatalf("%s in reads of %d bytes: counted %d, want %d", c.name, step, n.Load(), c.want)
			}
		}
	}
}
