package jobfs

import (
	"bytes"
	"io"
	"testing"

	sysapi "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

// readOnlyMapping returns content in a read-only shared mapping of a sealed
// memfd, as a sandbox child receives large inputs: a write to it faults.
func readOnlyMapping(t *testing.T, content []byte) []byte {
	t.Helper()
	fd, err := unix.MemfdCreate("jobfs-test-input", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Close(fd) }()
	if _, err := unix.Write(fd, content); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(fd, 0, len(content), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Munmap(m) })
	return m
}

// Inputs borrowed from a read-only mapping are never written: every change
// a guest can make to a writable input (write, pwrite, append, truncate
// shorter and longer, open with O_TRUNC; rename and link keep it borrowed) goes to the job's
// own copy, charged against MaxBytes, and the mapping keeps its bytes. A
// write into the mapping would fault and end this test.
func TestInputsFromAReadOnlyMapping(t *testing.T) {
	t.Parallel()
	orig := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB
	m := readOnlyMapping(t, orig)
	f, err := New(Options{MaxBytes: 4 << 20}, nil, []Input{
		{Path: "/in/ro", Data: m, ReadOnly: true},
		{Path: "/in/write", Data: m},
		{Path: "/in/append", Data: m},
		{Path: "/in/shorter", Data: m},
		{Path: "/in/longer", Data: m},
		{Path: "/in/trunc", Data: m},
		{Path: "/in/renamed", Data: m},
	})
	if err != nil {
		t.Fatal(err)
	}
	if f.Used() != 0 {
		t.Fatalf("borrowed inputs charged %d bytes", f.Used())
	}
	root := f.Root()
	open := func(p string, fl sysapi.Oflag) sysapi.File {
		t.Helper()
		h, errno := root.OpenFile(p, fl, 0)
		must(t, errno)
		return h
	}
	read := func(p string) []byte {
		t.Helper()
		h := open(p, rdonly)
		defer h.Close()
		st, errno := h.Stat()
		must(t, errno)
		buf := make([]byte, st.Size+1)
		n, errno := h.Pread(buf, 0)
		must(t, errno)
		return buf[:n]
	}

	if _, errno := root.OpenFile("in/ro", rdwr, 0); errno != sysapi.EACCES {
		t.Fatalf("ro input opened for writing: %v", errno)
	}
	h := open("in/write", rdwr)
	mustWrite(t, h, []byte("XY"))
	if _, errno := h.Pwrite([]byte("Z"), 100); errno != 0 {
		t.Fatal(errno)
	}
	h.Close()
	h = open("in/append", wronly|appnd)
	mustWrite(t, h, []byte("tail"))
	h.Close()
	h = open("in/shorter", rdwr)
	must(t, h.Truncate(10))
	h.Close()
	h = open("in/longer", rdwr)
	must(t, h.Truncate(int64(len(orig))+5))
	h.Close()
	open("in/trunc", wronly|trunc).Close()
	must(t, root.Rename("in/renamed", "out"))
	must(t, root.Link("out", "out-link"))

	want := append([]byte("XY"), orig[2:]...)
	want[100] = 'Z'
	for p, w := range map[string][]byte{
		"in/ro": orig, "out-link": orig, "out": orig, "in/write": want,
		"in/append": append(append([]byte{}, orig...), "tail"...), "in/shorter": orig[:10],
		"in/longer": append(append([]byte{}, orig...), 0, 0, 0, 0, 0), "in/trunc": {},
	} {
		if got := read(p); !bytes.Equal(got, w) {
			t.Fatalf("%s: %d bytes, not the %d expected", p, len(got), len(w))
		}
	}
	// Charged: the changed copies, not the borrowed files.
	wantUsed := int64(len(want)) + int64(len(orig)+4) + 10 + int64(len(orig)+5)
	if f.Used() != wantUsed {
		t.Fatalf("used %d, want %d", f.Used(), wantUsed)
	}

	arts, cut, err := f.Collect([]string{"/**"}, 8<<20)
	if err != nil || cut {
		t.Fatal(err, cut)
	}
	for _, a := range arts {
		b, err := io.ReadAll(a.Open())
		if err != nil {
			t.Fatal(err)
		}
		if a.Path == "/in/ro" && !bytes.Equal(b, orig) {
			t.Fatalf("artifact %s differs", a.Path)
		}
	}
	if !bytes.Equal(m, orig) {
		t.Fatal("the mapping changed")
	}
}
