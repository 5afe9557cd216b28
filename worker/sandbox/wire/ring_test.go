package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/worker/sandbox/wire"
)

// ring returns shared memory for a ring (8-aligned like a mapping).
func ring() []byte {
	words := make([]uint64, wire.RingSize/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), wire.RingSize)
}

type rec struct {
	s uint8
	b []byte
}

// The writer in one goroutine, the reader in another, exchanging the frames
// through channels as child and worker do through their pipes: every byte
// arrives, in order, across wraps and full-ring waits, and the writer never
// rings twice before a drain.
func TestRingCarriesEverythingInOrder(t *testing.T) {
	t.Parallel()
	m := ring()
	frames := make(chan wire.Kind, 1024)
	acks := make(chan struct{}, 1024)
	w, err := wire.NewRingWriter(m, func(k wire.Kind) error { frames <- k; return nil },
		func() error { <-acks; return nil })
	require.NoError(t, err)
	r, err := wire.NewRingReader(m)
	require.NoError(t, err)

	rng := rand.New(rand.NewPCG(1, 2))
	var want [3]bytes.Buffer
	var writes []rec
	for i := range 2000 {
		s := uint8(1 + rng.IntN(2))
		n := rng.IntN(100 << 10)
		if i%10 != 0 {
			n = rng.IntN(200)
		}
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		writes = append(writes, rec{s, b})
	}
	limit := 40 << 20
	w.Reset(limit)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, wr := range writes {
			w.Write(wr.s, wr.b)
		}
		frames <- wire.Result
	}()
	var got [3]bytes.Buffer
	var order []uint8
	fulls := 0
	for k := range frames {
		ack, err := r.Drain(func(s uint8, chunk []byte) {
			if len(order) == 0 || order[len(order)-1] != s {
				order = append(order, s)
			}
			got[s].Write(chunk)
		})
		require.NoError(t, err)
		if k == wire.OutputFull {
			fulls++
		}
		if ack {
			acks <- struct{}{}
		}
		if k == wire.Result {
			break
		}
	}
	<-done
	var wantOrder []uint8
	for _, wr := range writes {
		if len(wr.b) == 0 {
			continue
		}
		if len(wantOrder) == 0 || wantOrder[len(wantOrder)-1] != wr.s {
			wantOrder = append(wantOrder, wr.s)
		}
		want[wr.s].Write(wr.b)
	}
	require.Equal(t, want[1].Bytes(), got[1].Bytes())
	require.Equal(t, want[2].Bytes(), got[2].Bytes())
	require.Equal(t, wantOrder, order, "the streams interleave as written")
	require.Positive(t, fulls, "the writer waited for room")
	require.NoError(t, w.Err())
	so, se := r.Cut()
	require.False(t, so)
	require.False(t, se)
}

func TestRingCutsAtTheLimitExactly(t *testing.T) {
	t.Parallel()
	m := ring()
	w, err := wire.NewRingWriter(m, func(wire.Kind) error { return nil }, func() error { return errors.New("no wait expected") })
	require.NoError(t, err)
	r, err := wire.NewRingReader(m)
	require.NoError(t, err)
	w.Reset(10)
	w.Write(1, []byte("0123456789")) // exactly the limit
	w.Write(2, []byte("abc"))
	w.Write(2, []byte("defghijklm")) // 3 over
	var got [3][]byte
	_, err = r.Drain(func(s uint8, c []byte) { got[s] = append(got[s], c...) })
	require.NoError(t, err)
	require.Equal(t, "0123456789", string(got[1]))
	require.Equal(t, "abcdefghij", string(got[2]))
	so, se := r.Cut()
	require.False(t, so, "stdout at the limit is not cut")
	require.True(t, se)

	// The next run starts uncut.
	w.Reset(10)
	so, se = r.Cut()
	require.False(t, so || se)
}

func TestRingRefusesCorruptRecords(t *testing.T) {
	t.Parallel()
	for name, corrupt := range map[string]func(m []byte){
		"written far ahead": func(m []byte) { binary.LittleEndian.PutUint64(m[0:], wire.RingData+1) },
		"written behind":    func(m []byte) { binary.LittleEndian.PutUint64(m[8:], 10) },
		"bad stream": func(m []byte) {
			binary.LittleEndian.PutUint64(m[0:], 8)
			binary.LittleEndian.PutUint32(m[64:], 4<<8|3)
		},
		"record past the end": func(m []byte) {
			binary.LittleEndian.PutUint64(m[0:], 8)
			binary.LittleEndian.PutUint32(m[64:], 5<<8|1)
		},
		"partial header": func(m []byte) { binary.LittleEndian.PutUint64(m[0:], 3) },
	} {
		m := ring()
		corrupt(m)
		r, err := wire.NewRingReader(m)
		require.NoError(t, err)
		_, err = r.Drain(func(uint8, []byte) { t.Fatalf("%s: a record was passed on", name) })
		require.ErrorIs(t, err, wire.ErrRingCorrupt, name)
	}
}

// FuzzRingDrain: whatever a compromised child leaves in the ring, the
// worker's reader neither panics nor passes on more than the ring holds.
func FuzzRingDrain(f *testing.F) {
	f.Add(uint64(8), uint64(0), []byte{4 << 0, 0, 0, 0})
	f.Add(uint64(wire.RingData+7), uint64(7), []byte{1, 4, 0, 0, 'a', 'b', 'c', 'd'})
	f.Fuzz(func(t *testing.T, w, r uint64, data []byte) {
		m := ring()
		binary.LittleEndian.PutUint64(m[0:], w)
		binary.LittleEndian.PutUint64(m[8:], r)
		copy(m[64:], data)
		rd, err := wire.NewRingReader(m)
		require.NoError(t, err)
		total := 0
		_, _ = rd.Drain(func(s uint8, c []byte) {
			require.True(t, s == 1 || s == 2)
			total += len(c)
		})
		require.LessOrEqual(t, total, wire.RingData)
	})
}
