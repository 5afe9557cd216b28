package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// The output ring: memory a sandbox child shares with its worker (a memfd
// both map), into which the child appends the guest's output as records and
// from which the worker takes them. Because the worker reads the memory
// itself, output the guest wrote reaches it even when the child can no longer
// answer: a guest that spins after a write (its goroutine cannot be
// preempted), a child killed at the timeout or by its client's cancel, a
// child that crashed.
//
// Layout: a 64-byte header, then RingData bytes of data used as a ring.
//
//	0   w        uint64  bytes ever written (the child's; published after the record)
//	8   r        uint64  bytes ever consumed (the worker's)
//	16  bell     uint32  1 while an Output frame is on its way and the worker has not drained since
//	20  waiting  uint32  1 while the child waits for room (it then expects an Ack)
//	24  cut      uint32  bit 0: stdout was cut at the output limit, bit 1: stderr
//
// A record is a 4-byte little-endian word (length<<8 | stream) followed by
// length bytes of output (at most MaxRecord), wrapping at the end of the data.
// Everything the worker reads from the ring is untrusted (a child may be
// compromised by its guest): lengths and counters are checked before use.
const (
	RingData   = 256 << 10
	ringHeader = 64
	RingSize   = ringHeader + RingData
	MaxRecord  = 64 << 10
	recHeader  = 4

	offW       = 0
	offR       = 8
	offBell    = 16
	offWaiting = 20
	offCut     = 24
)

// ErrRingCorrupt is a ring whose counters or records make no sense.
var ErrRingCorrupt = errors.New("wire: output ring corrupt")

func u64(m []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&m[off])) }
func u32(m []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&m[off])) }

// checkRing checks that m can hold a ring and is aligned for its atomics.
func checkRing(m []byte) error {
	if len(m) < RingSize || uintptr(unsafe.Pointer(&m[0]))%8 != 0 {
		return fmt.Errorf("wire: an output ring needs %d bytes, 8-aligned", RingSize)
	}
	return nil
}

// RingWriter is the child's end of the ring. It is used by one goroutine.
type RingWriter struct {
	m    []byte
	data []byte
	// notify sends a payload-less frame to the worker (Output or
	// OutputFull); waitAck blocks until the worker's next Ack.
	notify  func(Kind) error
	waitAck func() error
	limit   int
	n       [3]int
	err     error
}

// NewRingWriter returns the writer end of the ring in m.
func NewRingWriter(m []byte, notify func(Kind) error, waitAck func() error) (*RingWriter, error) {
	if err := checkRing(m); err != nil {
		return nil, err
	}
	return &RingWriter{m: m, data: m[ringHeader:RingSize], notify: notify, waitAck: waitAck}, nil
}

// Reset starts a run whose streams are cut at limit bytes each. The worker
// has consumed everything of the previous run.
func (w *RingWriter) Reset(limit int) {
	w.limit, w.n = limit, [3]int{}
	atomic.StoreUint32(u32(w.m, offCut), 0)
}

// Err is the first error of notify or waitAck; output after it is dropped.
func (w *RingWriter) Err() error { return w.err }

// Write appends p to stream s (1 stdout, 2 stderr), keeping at most the
// run's limit per stream and recording a cut past it. It blocks while the
// ring is full until the worker drains it.
func (w *RingWriter) Write(s uint8, p []byte) {
	if s != 1 && s != 2 {
		return
	}
	if room := w.limit - w.n[s]; len(p) > room {
		p = p[:max(room, 0)]
		cut := u32(w.m, offCut)
		atomic.StoreUint32(cut, atomic.LoadUint32(cut)|1<<(s-1))
	}
	w.n[s] += len(p)
	for len(p) > 0 && w.err == nil {
		wpos := atomic.LoadUint64(u64(w.m, offW))
		free := RingData - int(wpos-atomic.LoadUint64(u64(w.m, offR)))
		if free <= recHeader {
			w.wait()
			continue
		}
		n := min(len(p), MaxRecord, free-recHeader)
		var hdr [recHeader]byte
		binary.LittleEndian.PutUint32(hdr[:], uint32(n)<<8|uint32(s))
		w.put(wpos, hdr[:])
		w.put(wpos+recHeader, p[:n])
		atomic.StoreUint64(u64(w.m, offW), wpos+uint64(recHeader+n))
		p = p[n:]
		if atomic.CompareAndSwapUint32(u32(w.m, offBell), 0, 1) {
			w.fail(w.notify(Output))
		}
	}
}

// wait blocks until the worker has drained the ring (or says it did).
func (w *RingWriter) wait() {
	atomic.StoreUint32(u32(w.m, offWaiting), 1)
	wpos := atomic.LoadUint64(u64(w.m, offW))
	if RingData-int(wpos-atomic.LoadUint64(u64(w.m, offR))) > recHeader {
		return // drained meanwhile; a late Ack is skipped by whoever reads next
	}
	if w.fail(w.notify(OutputFull)); w.err == nil {
		w.fail(w.waitAck())
	}
}

func (w *RingWriter) fail(err error) {
	if err != nil && w.err == nil {
		w.err = err
	}
}

func (w *RingWriter) put(pos uint64, b []byte) {
	at := int(pos % RingData)
	n := copy(w.data[at:], b)
	copy(w.data, b[n:])
}

// RingReader is the worker's end of the ring. It is used by one goroutine.
type RingReader struct {
	m       []byte
	data    []byte
	scratch []byte
}

// NewRingReader returns the reader end of the ring in m.
func NewRingReader(m []byte) (*RingReader, error) {
	if err := checkRing(m); err != nil {
		return nil, err
	}
	return &RingReader{m: m, data: m[ringHeader:RingSize]}, nil
}

// Drain passes every complete record in the ring to fn (stream 1 or 2, the
// chunk valid during the call), in order, and frees their room. It reports
// whether the child waits for an Ack. A ring that makes no sense is
// ErrRingCorrupt; the worker then treats its child as broken.
func (r *RingReader) Drain(fn func(stream uint8, chunk []byte)) (ack bool, err error) {
	atomic.StoreUint32(u32(r.m, offBell), 0)
	end := atomic.LoadUint64(u64(r.m, offW))
	pos := atomic.LoadUint64(u64(r.m, offR))
	if end-pos > RingData {
		return false, fmt.Errorf("%w: %d bytes pending", ErrRingCorrupt, end-pos)
	}
	for pos < end {
		if end-pos < recHeader {
			return false, fmt.Errorf("%w: a partial record header", ErrRingCorrupt)
		}
		var hdr [recHeader]byte
		r.get(pos, hdr[:])
		word := binary.LittleEndian.Uint32(hdr[:])
		s, n := uint8(word&0xff), uint64(word>>8)
		if (s != 1 && s != 2) || n == 0 || n > MaxRecord || n > end-pos-recHeader {
			return false, fmt.Errorf("%w: record of stream %d, %d bytes", ErrRingCorrupt, s, n)
		}
		if r.scratch == nil {
			r.scratch = make([]byte, MaxRecord)
		}
		chunk := r.scratch[:n]
		r.get(pos+recHeader, chunk)
		fn(s, chunk)
		pos += recHeader + n
	}
	atomic.StoreUint64(u64(r.m, offR), pos)
	return atomic.CompareAndSwapUint32(u32(r.m, offWaiting), 1, 0), nil
}

// Cut reports whether the child cut stdout and stderr at the output limit.
func (r *RingReader) Cut() (stdout, stderr bool) {
	c := atomic.LoadUint32(u32(r.m, offCut))
	return c&1 != 0, c&2 != 0
}

func (r *RingReader) get(pos uint64, b []byte) {
	at := int(pos % RingData)
	n := copy(b, r.data[at:])
	copy(b[n:], r.data)
}
