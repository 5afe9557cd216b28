// Command fsprobe exercises the WASI preview1 file surface the way a POSIX program does.
//
// It prints one line per check; jobfs's TestGuestProbe runs it against a job
// filesystem and compares the lines.
//
// With the arguments "cat FILE" it only reads FILE sequentially in 64 KiB
// reads and prints the byte count (BenchmarkGuestSequentialRead).
//
// Expected preopens: "/" (writable, with /in/ro.txt read-only, /in/rw.txt
// writable and an asset tree at /share), and "data" (backed by /data).
//
// Build (from the repository root):
//
//	GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 go build -trimpath -buildvcs=false \
//	  -ldflags='-s -w -buildid=' -o fsprobe.wasm ./worker/jobfs/testdata/fsprobe
//	wasm-strip fsprobe.wasm && gzip -9 -n -c fsprobe.wasm > worker/jobfs/testdata/fsprobe.wasm.gz
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

//go:wasmimport wasi_snapshot_preview1 fd_renumber
//go:noescape
func fdRenumber(from, to int32) int32

//go:wasmimport wasi_snapshot_preview1 path_open
//go:noescape
func pathOpen(dirfd int32, dirflags uint32, path unsafe.Pointer, pathLen uint32, oflags uint32, rightsBase, rightsInheriting uint64, fdflags uint32, fd unsafe.Pointer) int32

//go:wasmimport wasi_snapshot_preview1 fd_read
//go:noescape
func fdRead(fd int32, iovs unsafe.Pointer, iovsLen uint32, nread unsafe.Pointer) int32

func errName(err error) string {
	if err == nil {
		return "ok"
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		for _, c := range []struct {
			e syscall.Errno
			n string
		}{{syscall.ENOENT, "ENOENT"}, {syscall.EEXIST, "EEXIST"}, {syscall.ENOTDIR, "ENOTDIR"},
			{syscall.EISDIR, "EISDIR"}, {syscall.ENOTEMPTY, "ENOTEMPTY"}, {syscall.EROFS, "EROFS"},
			{syscall.EACCES, "EACCES"}, {syscall.ENOSPC, "ENOSPC"}, {syscall.EIO, "EIO"},
			{syscall.EPERM, "EPERM"}, {syscall.ELOOP, "ELOOP"}, {syscall.EBADF, "EBADF"},
			{syscall.EINVAL, "EINVAL"}, {syscall.ENOTCAPABLE, "ENOTCAPABLE"}} {
			if e == c.e {
				return c.n
			}
		}
		return fmt.Sprintf("errno %d", int(e))
	}
	return "error " + err.Error()
}

func check(name string, err error) { fmt.Printf("%s: %s\n", name, errName(err)) }

func main() {
	if len(os.Args) == 3 && os.Args[1] == "cat" {
		// Benchmark mode: read a file sequentially in 64 KiB reads.
		fmt.Println(cat(os.Args[2]))
		return
	}
	// open with create/excl/trunc
	f, err := os.OpenFile("/scratch/a.txt", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	check("create-excl", err)
	if err == nil {
		_, err = f.WriteString("hello world")
		check("write", err)
		f.Close()
	}
	_, err = os.OpenFile("/scratch/a.txt", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	check("create-excl-again", err)
	b, err := os.ReadFile("/scratch/a.txt")
	fmt.Printf("read-back: %q %s\n", b, errName(err))
	f, err = os.OpenFile("/scratch/a.txt", os.O_TRUNC|os.O_RDWR, 0)
	check("open-trunc", err)
	if err == nil {
		st, _ := f.Stat()
		fmt.Printf("size-after-trunc: %d\n", st.Size())
		f.Close()
	}
	_, err = os.Open("/scratch/missing")
	check("open-missing", err)
	_, err = os.Open("/scratch/a.txt/")
	check("open-file-slash", err)
	_, err = os.OpenFile("/scratch", os.O_RDWR, 0)
	check("open-dir-write", err)

	// pread / pwrite / append / seek
	f, _ = os.OpenFile("/scratch/p.bin", os.O_CREATE|os.O_RDWR, 0o644)
	f.WriteString("0123456789")
	_, err = f.WriteAt([]byte("AB"), 3)
	check("pwrite", err)
	buf := make([]byte, 4)
	n, err := f.ReadAt(buf, 2)
	fmt.Printf("pread: %q %d %s\n", buf[:n], n, errName(err))
	pos, _ := f.Seek(0, io.SeekCurrent)
	fmt.Printf("tell: %d\n", pos)
	pos, _ = f.Seek(-3, io.SeekEnd)
	fmt.Printf("seek-end: %d\n", pos)
	_, err = f.Seek(-100, io.SeekCurrent)
	check("seek-negative", err)
	f.Truncate(4)
	st, _ := f.Stat()
	fmt.Printf("filestat_set_size: %d\n", st.Size())
	f.Close()
	f, _ = os.OpenFile("/scratch/p.bin", os.O_APPEND|os.O_WRONLY, 0)
	f.Seek(0, io.SeekStart)
	f.WriteString("zz")
	f.Close()
	b, _ = os.ReadFile("/scratch/p.bin")
	fmt.Printf("append: %q\n", b)

	// set_times
	err = os.Chtimes("/scratch/p.bin", unixTime(1000), unixTime(2000))
	check("set-times", err)
	st, _ = os.Stat("/scratch/p.bin")
	fmt.Printf("mtime: %d\n", st.ModTime().Unix())

	// readdir with cookies across calls: 300 entries, read 7 at a time.
	os.Mkdir("/scratch/many", 0o755)
	for i := 0; i < 300; i++ {
		os.WriteFile(fmt.Sprintf("/scratch/many/file-with-a-longish-name-%03d", i), nil, 0o644)
	}
	d, _ := os.Open("/scratch/many")
	seen := map[string]bool{}
	calls := 0
	for {
		ents, err := d.ReadDir(7)
		calls++
		for _, e := range ents {
			seen[e.Name()] = true
		}
		if err != nil {
			break
		}
	}
	d.Close()
	fmt.Printf("readdir: %d names in %d calls\n", len(seen), calls)

	// mkdir / rmdir / unlink
	check("mkdir-exists", os.Mkdir("/scratch/many", 0o755))
	check("rmdir-notempty", syscall.Rmdir("/scratch/many"))
	check("unlink-dir", syscall.Unlink("/scratch/many"))
	check("rmdir-file", syscall.Rmdir("/scratch/p.bin"))
	check("mkdir-under-file", os.Mkdir("/scratch/p.bin/x", 0o755))

	// rename files and directories
	os.MkdirAll("/scratch/r/d1/sub", 0o755)
	os.WriteFile("/scratch/r/f1", []byte("one"), 0o644)
	os.WriteFile("/scratch/r/f2", []byte("two"), 0o644)
	check("rename-file-over-file", os.Rename("/scratch/r/f1", "/scratch/r/f2"))
	b, _ = os.ReadFile("/scratch/r/f2")
	fmt.Printf("renamed-content: %q\n", b)
	check("rename-dir", os.Rename("/scratch/r/d1", "/scratch/r/d2"))
	os.Mkdir("/scratch/r/full", 0o755)
	os.WriteFile("/scratch/r/full/x", nil, 0o644)
	// syscall.Rename: os.Rename answers EEXIST itself when the target is a
	// directory, before asking the filesystem.
	check("rename-dir-over-nonempty", syscall.Rename("/scratch/r/d2", "/scratch/r/full"))
	check("rename-dir-into-itself", syscall.Rename("/scratch/r/d2", "/scratch/r/d2/sub/x"))
	check("rename-file-over-dir", syscall.Rename("/scratch/r/f2", "/scratch/r/full"))
	check("rename-dir-over-file", syscall.Rename("/scratch/r/d2", "/scratch/r/f2"))
	os.Mkdir("/scratch/r/empty", 0o755)
	check("rename-dir-over-empty-dir", syscall.Rename("/scratch/r/d2", "/scratch/r/empty"))

	// symlink / readlink within the tree
	check("symlink", os.Symlink("r/f2", "/scratch/link"))
	t, err := os.Readlink("/scratch/link")
	fmt.Printf("readlink: %q %s\n", t, errName(err))
	b, err = os.ReadFile("/scratch/link")
	fmt.Printf("read-via-link: %q %s\n", b, errName(err))
	check("symlink-absolute", os.Symlink("/etc/passwd", "/scratch/abs"))
	os.Symlink("loop2", "/scratch/loop1")
	os.Symlink("loop1", "/scratch/loop2")
	_, err = os.ReadFile("/scratch/loop1")
	check("symlink-loop", err)

	// ".." never leaves a preopen: "data" is backed by /data.
	// Go's os package resolves absolute paths against the preopen "/", so
	// the "data" preopen is used through its descriptor directly.
	check("data-write", os.WriteFile("/data/in-data", []byte("x"), 0o644))
	check("data-symlink-up", os.Symlink("../scratch/a.txt", "/data/up"))
	check("data-symlink-inside", os.Symlink("sub/../in-data", "/data/inside"))
	const follow = 1
	check("data-open-dotdot", errnoErr(openAt(dataFD(), follow, "../scratch/a.txt")))
	check("data-open-escape-link", errnoErr(openAt(dataFD(), follow, "up")))
	check("data-open-link-nofollow", errnoErr(openAt(dataFD(), 0, "up")))
	os.Mkdir("/data/sub", 0o755)
	check("data-open-inside-link", errnoErr(openAt(dataFD(), follow, "inside")))
	check("data-open-sub-dotdot", errnoErr(openAt(dataFD(), follow, "sub/../in-data")))

	// fd_renumber
	a, _ := os.Open("/scratch/r/f2")
	c, _ := os.Open("/scratch/a.txt")
	check("fd_renumber", errnoErr(fdRenumber(int32(a.Fd()), int32(c.Fd()))))
	rb := make([]byte, 8)
	iov := [2]uint32{uint32(uintptr(unsafe.Pointer(&rb[0]))), uint32(len(rb))}
	var nread uint32
	check("read-renumbered", errnoErr(fdRead(int32(c.Fd()), unsafe.Pointer(&iov), 1, unsafe.Pointer(&nread))))
	fmt.Printf("renumbered-content: %q\n", rb[:nread])

	// read-only layers
	b, err = os.ReadFile("/share/readme")
	fmt.Printf("asset-read: %q %s\n", b, errName(err))
	_, err = os.OpenFile("/share/readme", os.O_RDWR, 0)
	check("asset-open-write", err)
	check("asset-create", os.WriteFile("/share/new", nil, 0o644))
	check("asset-unlink", os.Remove("/share/readme"))
	check("asset-mkdir", os.Mkdir("/share/d", 0o755))
	check("asset-rename-out", os.Rename("/share/readme", "/scratch/stolen"))
	_, err = os.OpenFile("/in/ro.txt", os.O_WRONLY|os.O_APPEND, 0)
	check("ro-input-write", err)
	check("ro-input-unlink", os.Remove("/in/ro.txt"))
	check("rw-input-append", appendTo("/in/rw.txt", "+more"))
	b, _ = os.ReadFile("/in/rw.txt")
	fmt.Printf("rw-input: %q\n", b)

	// ENOSPC past the cap (the job goes on): write 1 KiB chunks until refused.
	f, _ = os.Create("/scratch/fill")
	total := 0
	chunk := make([]byte, 1024)
	for {
		n, err := f.Write(chunk)
		total += n
		if err != nil {
			check("fill", err)
			break
		}
	}
	f.Close()
	fmt.Printf("filled: %d\n", total)
	check("after-fill-remove", os.Remove("/scratch/fill"))
	check("after-fill-write", os.WriteFile("/scratch/small", []byte("still works"), 0o644))

	names, _ := os.ReadDir("/")
	var top []string
	for _, e := range names {
		top = append(top, e.Name())
	}
	sort.Strings(top)
	fmt.Printf("root: %s\n", strings.Join(top, ","))
}

func cat(name string) int {
	f, err := os.Open(name)
	if err != nil {
		fmt.Println(errName(err))
		os.Exit(1)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	total := 0
	for {
		n, err := f.Read(buf)
		total += n
		if err != nil {
			return total
		}
	}
}

func appendTo(name, s string) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	f.Close()
	return err
}

// openAt opens name relative to the preopen dirfd with path_open and closes it.
func openAt(dirfd int32, lookup uint32, name string) int32 {
	p := []byte(name)
	var fd int32
	const rightRead = 2
	if e := pathOpen(dirfd, lookup, unsafe.Pointer(&p[0]), uint32(len(p)), 0, rightRead, 0, 0, unsafe.Pointer(&fd)); e != 0 {
		return e
	}
	syscall.Close(int(fd))
	return 0
}

func errnoErr(e int32) error {
	if e == 0 {
		return nil
	}
	return syscall.Errno(e)
}

// dataFD is the descriptor of the "data" preopen: the probe is run with the
// preopens "/" (fd 3) and "data" (fd 4).
func dataFD() int32 { return 4 }

func unixTime(s int64) time.Time { return time.Unix(s, 0) }
