package jobfs

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"testing"

	sysapi "github.com/tetratelabs/wazero/experimental/sys"
)

// fileOps applies a sequence of writes, truncates and reads decoded from ops
// to a job file and to a plain byte slice, and fails on any difference.
func fileOps(t *testing.T, input []byte, ops []byte) {
	const capBytes = 4 * chunkSize
	f, err := New(Options{MaxBytes: capBytes}, nil, []Input{{Path: "/f", Data: input}})
	if err != nil {
		t.Fatal(err)
	}
	h, errno := f.Root().OpenFile("f", sysapi.O_RDWR, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	model := append([]byte(nil), input...)
	charged := false // the input is charged from its first change on
	for len(ops) >= 5 {
		op := ops[0]
		arg := int64(binary.LittleEndian.Uint32(ops[1:5]) % (5 * chunkSize))
		ops = ops[5:]
		switch op % 3 {
		case 0: // pwrite of 1..3000 bytes at arg
			n := int(op)*12 + 1
			buf := bytes.Repeat([]byte{op | 1}, n)
			got, errno := h.Pwrite(buf, arg)
			end := arg + int64(n)
			room := int64(capBytes)
			want := n
			if end > int64(len(model)) && end > room {
				want = int(max(0, room-arg))
			}
			if want == 0 && n > 0 && end > int64(len(model)) {
				if errno != ENOSPC {
					t.Fatalf("pwrite past cap: %d %v", got, errno)
				}
				continue
			}
			if errno != 0 || got != want {
				t.Fatalf("pwrite(%d bytes at %d) = %d %v, want %d", n, arg, got, errno, want)
			}
			if e := arg + int64(want); e > int64(len(model)) {
				model = append(model, make([]byte, e-int64(len(model)))...)
			}
			copy(model[arg:], buf[:want])
			charged = true
		case 1: // truncate to arg
			errno := h.Truncate(arg)
			if arg > capBytes {
				if errno != ENOSPC {
					t.Fatalf("truncate past cap: %v", errno)
				}
				continue
			}
			if errno != 0 {
				t.Fatalf("truncate(%d): %v", arg, errno)
			}
			if arg != int64(len(model)) {
				charged = true
			}
			if arg < int64(len(model)) {
				model = model[:arg]
			} else {
				model = append(model, make([]byte, arg-int64(len(model)))...)
			}
		case 2: // pread of up to 70000 bytes at arg
			buf := make([]byte, int(op)*300)
			n, errno := h.Pread(buf, arg)
			if errno != 0 {
				t.Fatal(errno)
			}
			var want []byte
			if arg < int64(len(model)) {
				want = model[arg:min(int64(len(model)), arg+int64(len(buf)))]
			}
			if !bytes.Equal(buf[:n], want) {
				t.Fatalf("pread(%d at %d): %d bytes differ from the model", len(buf), arg, n)
			}
		}
		st, _ := h.Stat()
		if st.Size != int64(len(model)) {
			t.Fatalf("size %d, model %d", st.Size, len(model))
		}
		if charged && f.Used() != int64(len(model)) {
			t.Fatalf("used %d, model %d", f.Used(), len(model))
		}
	}
	h.Close()
	got, _ := io.ReadAll(contentReader(f.root.kids["f"]))
	if !bytes.Equal(got, model) {
		t.Fatal("final contents differ from the model")
	}
	if string(input) != string(append([]byte(nil), input...)) {
		t.Fatal("input changed")
	}
	// After the last close, the file holds no spare capacity.
	n := f.root.kids["f"]
	if !n.shared {
		var held int64
		for _, c := range n.chunks {
			held += int64(cap(c))
		}
		if held > n.size {
			t.Fatalf("holds %d bytes of capacity for %d", held, n.size)
		}
	}
}

// TestFileContentModel drives random operations across chunk boundaries.
func TestFileContentModel(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		input := bytes.Repeat([]byte{'i'}, rng.IntN(3*chunkSize))
		ops := make([]byte, 5*rng.IntN(40))
		for j := range ops {
			ops[j] = byte(rng.Uint32())
		}
		fileOps(t, input, ops)
	}
}

// FuzzFileOps checks chunked file contents against a plain byte slice.
func FuzzFileOps(f *testing.F) {
	f.Add(uint16(0), []byte{0, 0, 0, 1, 0, 2, 0, 0, 1, 0, 1, 5, 0, 0, 0})
	f.Add(uint16(65000), []byte{3, 255, 255, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 2, 0})
	f.Fuzz(func(t *testing.T, inputLen uint16, ops []byte) {
		if len(ops) > 500 {
			return
		}
		fileOps(t, bytes.Repeat([]byte{'i'}, int(inputLen)), ops)
	})
}

// TestAppendsDoNotCopyOrHoldSpare: a file built by many small appends ends
// up holding its size in memory, no more.
func TestAppendsDoNotCopyOrHoldSpare(t *testing.T) {
	t.Parallel()
	f, err := New(Options{MaxBytes: 1 << 20}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, errno := f.Root().OpenFile("log", sysapi.O_CREAT|sysapi.O_WRONLY|sysapi.O_APPEND, 0)
	must(t, errno)
	line := []byte("a line of a log file\n")
	for i := 0; i < 20000; i++ {
		mustWrite(t, h, line)
	}
	h.Close()
	n := f.root.kids["log"]
	var held int64
	for _, c := range n.chunks {
		held += int64(cap(c))
	}
	if held != int64(20000*len(line)) || f.Used() != held {
		t.Fatalf("holds %d, used %d, wrote %d", held, f.Used(), 20000*len(line))
	}
}
