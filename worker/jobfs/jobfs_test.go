package jobfs

import (
	"bytes"
	"io"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/tetratelabs/wazero"
	sysapi "github.com/tetratelabs/wazero/experimental/sys"
)

const (
	rdonly = sysapi.O_RDONLY
	rdwr   = sysapi.O_RDWR
	wronly = sysapi.O_WRONLY
	creat  = sysapi.O_CREAT
	excl   = sysapi.O_EXCL
	trunc  = sysapi.O_TRUNC
	appnd  = sysapi.O_APPEND
	dir    = sysapi.O_DIRECTORY
	nofol  = sysapi.O_NOFOLLOW
)

// testFS is a job filesystem with an asset tree at /share, a read-only and
// a writable input, a directory with an entry, a symlink and a loop.
func testFS(t *testing.T, maxBytes int64) (*FS, sysapi.FS) {
	t.Helper()
	tree, err := TreeFromMap(map[string][]byte{"readme": []byte("asset"), "d/x": []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(Options{MaxBytes: maxBytes}, []Mount{{Path: "/share", Tree: tree}}, []Input{
		{Path: "/in/ro.txt", Data: []byte("read only"), ReadOnly: true},
		{Path: "/in/rw.txt", Data: []byte("writable")},
		{Path: "/full/entry", Data: []byte("e")},
	})
	if err != nil {
		t.Fatal(err)
	}
	root := f.Root()
	must(t, root.Mkdir("empty", 0o755))
	must(t, root.Symlink("in/rw.txt", "link"))
	must(t, root.Symlink("loop-b", "loop-a"))
	must(t, root.Symlink("loop-a", "loop-b"))
	must(t, root.Symlink("../../etc", "full/escape"))
	must(t, root.Symlink("missing", "dangling"))
	return f, root
}

func mustWrite(t *testing.T, f sysapi.File, b []byte) {
	t.Helper()
	if n, errno := f.Write(b); errno != 0 || n != len(b) {
		t.Fatalf("write: %d %v", n, errno)
	}
}

func must(t *testing.T, errno sysapi.Errno) {
	t.Helper()
	if errno != 0 {
		t.Fatalf("unexpected errno %v", errno)
	}
}

func TestErrnos(t *testing.T) {
	t.Parallel()
	open := func(p string, fl sysapi.Oflag) func(sysapi.FS) sysapi.Errno {
		return func(r sysapi.FS) sysapi.Errno {
			f, errno := r.OpenFile(p, fl, 0o644)
			if errno == 0 {
				f.Close()
			}
			return errno
		}
	}
	cases := []struct {
		name string
		op   func(sysapi.FS) sysapi.Errno
		want sysapi.Errno
	}{
		{"open missing", open("nope", rdonly), sysapi.ENOENT},
		{"open missing parent", open("nope/x", creat|rdwr), sysapi.ENOENT},
		{"open create", open("new", creat|rdwr), 0},
		{"open create excl existing", open("in/rw.txt", creat|excl|rdwr), sysapi.EEXIST},
		{"open create excl dangling link", open("dangling", creat|excl|rdwr), sysapi.EEXIST},
		{"open create through dangling link", open("dangling", creat|rdwr), 0},
		{"open create with slash", open("newdir/", creat|rdwr), sysapi.EISDIR},
		{"open O_DIRECTORY on file", open("in/rw.txt", dir), sysapi.ENOTDIR},
		{"open file with slash", open("in/rw.txt/", rdonly), sysapi.ENOTDIR},
		{"open below a file", open("in/rw.txt/x", rdonly), sysapi.ENOTDIR},
		{"open dir for write", open("empty", rdwr), sysapi.EISDIR},
		{"open dir with trunc", open("empty", trunc), sysapi.EISDIR},
		{"open dir", open("empty", dir), 0},
		{"open root", open(".", dir), 0},
		{"open dotdot", open("..", rdonly), sysapi.EPERM},
		{"open dotdot inside", open("full/../in/rw.txt", rdonly), 0},
		{"open symlink escape", open("full/escape/passwd", rdonly), sysapi.EPERM},
		{"open symlink nofollow", open("link", rdonly|nofol), sysapi.ELOOP},
		{"open symlink nofollow dir", open("link", dir|nofol), sysapi.ENOTDIR},
		{"open symlink", open("link", rdonly), 0},
		{"open loop", open("loop-a", rdonly), sysapi.ELOOP},
		{"open name too long", open(strings.Repeat("n", 256), creat|rdwr), sysapi.ENAMETOOLONG},
		{"open asset for write", open("share/readme", rdwr), sysapi.EROFS},
		{"open asset trunc", open("share/readme", trunc|wronly), sysapi.EROFS},
		{"open asset append", open("share/readme", appnd|wronly), sysapi.EROFS},
		{"create in asset", open("share/new", creat|rdwr), sysapi.EROFS},
		{"open asset read", open("share/readme", rdonly), 0},
		{"open ro input for write", open("in/ro.txt", wronly), sysapi.EACCES},
		{"open ro input read", open("in/ro.txt", rdonly), 0},
		{"mkdir exists", func(r sysapi.FS) sysapi.Errno { return r.Mkdir("empty", 0) }, sysapi.EEXIST},
		{"mkdir over file", func(r sysapi.FS) sysapi.Errno { return r.Mkdir("in/rw.txt", 0) }, sysapi.EEXIST},
		{"mkdir root", func(r sysapi.FS) sysapi.Errno { return r.Mkdir(".", 0) }, sysapi.EEXIST},
		{"mkdir missing parent", func(r sysapi.FS) sysapi.Errno { return r.Mkdir("a/b", 0) }, sysapi.ENOENT},
		{"mkdir in asset", func(r sysapi.FS) sysapi.Errno { return r.Mkdir("share/d2", 0) }, sysapi.EROFS},
		{"mkdir with slash", func(r sysapi.FS) sysapi.Errno { return r.Mkdir("newdir/", 0) }, 0},
		{"rmdir not empty", func(r sysapi.FS) sysapi.Errno { return r.Rmdir("full") }, sysapi.ENOTEMPTY},
		{"rmdir file", func(r sysapi.FS) sysapi.Errno { return r.Rmdir("in/rw.txt") }, sysapi.ENOTDIR},
		{"rmdir symlink", func(r sysapi.FS) sysapi.Errno { return r.Rmdir("link") }, sysapi.ENOTDIR},
		{"rmdir missing", func(r sysapi.FS) sysapi.Errno { return r.Rmdir("nope") }, sysapi.ENOENT},
		{"rmdir root", func(r sysapi.FS) sysapi.Errno { return r.Rmdir(".") }, sysapi.EINVAL},
		{"rmdir asset mount", func(r sysapi.FS) sysapi.Errno { return r.Rmdir("share") }, sysapi.EROFS},
		{"rmdir in asset", func(r sysapi.FS) sysapi.Errno { return r.Rmdir("share/d") }, sysapi.EROFS},
		{"rmdir empty", func(r sysapi.FS) sysapi.Errno { return r.Rmdir("empty/") }, 0},
		{"unlink dir", func(r sysapi.FS) sysapi.Errno { return r.Unlink("empty") }, sysapi.EISDIR},
		{"unlink missing", func(r sysapi.FS) sysapi.Errno { return r.Unlink("nope") }, sysapi.ENOENT},
		{"unlink file slash", func(r sysapi.FS) sysapi.Errno { return r.Unlink("in/rw.txt/") }, sysapi.ENOTDIR},
		{"unlink asset", func(r sysapi.FS) sysapi.Errno { return r.Unlink("share/readme") }, sysapi.EROFS},
		{"unlink ro input", func(r sysapi.FS) sysapi.Errno { return r.Unlink("in/ro.txt") }, sysapi.EACCES},
		{"unlink symlink not target", func(r sysapi.FS) sysapi.Errno { return r.Unlink("link") }, 0},
		{"rename missing", func(r sysapi.FS) sysapi.Errno { return r.Rename("nope", "x") }, sysapi.ENOENT},
		{"rename to missing dir", func(r sysapi.FS) sysapi.Errno { return r.Rename("in/rw.txt", "nope/x") }, sysapi.ENOENT},
		{"rename file over dir", func(r sysapi.FS) sysapi.Errno { return r.Rename("in/rw.txt", "empty") }, sysapi.EISDIR},
		{"rename dir over file", func(r sysapi.FS) sysapi.Errno { return r.Rename("empty", "in/rw.txt") }, sysapi.ENOTDIR},
		{"rename dir over non-empty", func(r sysapi.FS) sysapi.Errno { return r.Rename("empty", "full") }, sysapi.ENOTEMPTY},
		{"rename dir into itself", func(r sysapi.FS) sysapi.Errno { return r.Rename("full", "full/sub") }, sysapi.EINVAL},
		{"rename dir over empty dir", func(r sysapi.FS) sysapi.Errno { return r.Rename("full", "empty") }, 0},
		{"rename file slash", func(r sysapi.FS) sysapi.Errno { return r.Rename("in/rw.txt/", "x") }, sysapi.ENOTDIR},
		{"rename root", func(r sysapi.FS) sysapi.Errno { return r.Rename(".", "x") }, sysapi.EINVAL},
		{"rename out of asset", func(r sysapi.FS) sysapi.Errno { return r.Rename("share/readme", "x") }, sysapi.EROFS},
		{"rename into asset", func(r sysapi.FS) sysapi.Errno { return r.Rename("in/rw.txt", "share/x") }, sysapi.EROFS},
		{"rename asset mount", func(r sysapi.FS) sysapi.Errno { return r.Rename("share", "elsewhere") }, sysapi.EROFS},
		{"rename ro input", func(r sysapi.FS) sysapi.Errno { return r.Rename("in/ro.txt", "x") }, sysapi.EACCES},
		{"rename over ro input", func(r sysapi.FS) sysapi.Errno { return r.Rename("in/rw.txt", "in/ro.txt") }, sysapi.EACCES},
		{"rename same file", func(r sysapi.FS) sysapi.Errno { return r.Rename("in/rw.txt", "in/rw.txt") }, 0},
		{"symlink exists", func(r sysapi.FS) sysapi.Errno { return r.Symlink("x", "in/rw.txt") }, sysapi.EEXIST},
		{"symlink absolute", func(r sysapi.FS) sysapi.Errno { return r.Symlink("/etc", "abs") }, sysapi.EPERM},
		{"symlink empty", func(r sysapi.FS) sysapi.Errno { return r.Symlink("", "e") }, sysapi.EINVAL},
		{"symlink in asset", func(r sysapi.FS) sysapi.Errno { return r.Symlink("x", "share/l") }, sysapi.EROFS},
		{"readlink file", func(r sysapi.FS) sysapi.Errno { _, e := r.Readlink("in/rw.txt"); return e }, sysapi.EINVAL},
		{"readlink missing", func(r sysapi.FS) sysapi.Errno { _, e := r.Readlink("nope"); return e }, sysapi.ENOENT},
		{"link dir", func(r sysapi.FS) sysapi.Errno { return r.Link("empty", "l2") }, sysapi.EPERM},
		{"link exists", func(r sysapi.FS) sysapi.Errno { return r.Link("in/rw.txt", "link") }, sysapi.EEXIST},
		{"link new slash", func(r sysapi.FS) sysapi.Errno { return r.Link("in/rw.txt", "l2/") }, sysapi.ENOENT},
		{"link asset", func(r sysapi.FS) sysapi.Errno { return r.Link("share/readme", "l2") }, sysapi.EROFS},
		{"stat missing", func(r sysapi.FS) sysapi.Errno { _, e := r.Stat("nope"); return e }, sysapi.ENOENT},
		{"stat dangling", func(r sysapi.FS) sysapi.Errno { _, e := r.Stat("dangling"); return e }, sysapi.ENOENT},
		{"lstat dangling", func(r sysapi.FS) sysapi.Errno { _, e := r.Lstat("dangling"); return e }, 0},
		{"stat escape", func(r sysapi.FS) sysapi.Errno { _, e := r.Stat("full/escape"); return e }, sysapi.EPERM},
		{"chmod asset", func(r sysapi.FS) sysapi.Errno { return r.Chmod("share/readme", 0o600) }, sysapi.EROFS},
		{"chmod ro input", func(r sysapi.FS) sysapi.Errno { return r.Chmod("in/ro.txt", 0o600) }, sysapi.EACCES},
		{"utimens asset", func(r sysapi.FS) sysapi.Errno { return r.Utimens("share/readme", 1, 2) }, sysapi.EROFS},
		{"utimens missing", func(r sysapi.FS) sysapi.Errno { return r.Utimens("nope", 1, 2) }, sysapi.ENOENT},
		{"path with NUL", open("a\x00b", rdonly), sysapi.EINVAL},
		{"path too long", open(strings.Repeat("a/", 2049), rdonly), sysapi.ENAMETOOLONG},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, root := testFS(t, 1<<20)
			if got := c.op(root); got != c.want {
				t.Fatalf("errno %v, want %v", got, c.want)
			}
		})
	}
}

func TestFileErrnos(t *testing.T) {
	t.Parallel()
	_, root := testFS(t, 1<<20)
	ro, errno := root.OpenFile("in/rw.txt", rdonly, 0)
	must(t, errno)
	defer ro.Close()
	if _, e := ro.Write([]byte("x")); e != sysapi.EBADF {
		t.Errorf("write on read-only fd: %v, want EBADF", e)
	}
	if e := ro.Truncate(0); e != sysapi.EBADF {
		t.Errorf("truncate on read-only fd: %v, want EBADF", e)
	}
	wo, errno := root.OpenFile("in/rw.txt", wronly, 0)
	must(t, errno)
	defer wo.Close()
	if _, e := wo.Read(make([]byte, 1)); e != sysapi.EBADF {
		t.Errorf("read on write-only fd: %v, want EBADF", e)
	}
	if e := wo.Truncate(-1); e != sysapi.EINVAL {
		t.Errorf("negative truncate: %v, want EINVAL", e)
	}
	if _, e := wo.Pwrite([]byte("x"), -1); e != sysapi.EINVAL {
		t.Errorf("negative pwrite: %v, want EINVAL", e)
	}
	if _, e := wo.Seek(-1, io.SeekStart); e != sysapi.EINVAL {
		t.Errorf("negative seek: %v, want EINVAL", e)
	}
	d, errno := root.OpenFile("empty", dir, 0)
	must(t, errno)
	defer d.Close()
	if _, e := d.Read(make([]byte, 1)); e != sysapi.EISDIR {
		t.Errorf("read dir: %v, want EISDIR", e)
	}
	if _, e := d.Write([]byte("x")); e != sysapi.EISDIR {
		t.Errorf("write dir: %v, want EISDIR", e)
	}
	if e := d.Truncate(0); e != sysapi.EISDIR {
		t.Errorf("truncate dir: %v, want EISDIR", e)
	}
	if _, e := d.Seek(1, io.SeekStart); e != sysapi.EINVAL {
		t.Errorf("seek dir to 1: %v, want EINVAL", e)
	}
	if _, e := ro.Readdir(1); e != sysapi.EBADF {
		t.Errorf("readdir on file: %v, want EBADF", e)
	}
	a, errno := root.OpenFile("share/readme", rdonly, 0)
	must(t, errno)
	defer a.Close()
	if e := a.SetAppend(true); e != 0 {
		t.Errorf("set append on a read-only handle: %v", e)
	}
	if _, e := a.Write([]byte("x")); e != sysapi.EBADF {
		t.Errorf("write after set append on a read-only handle: %v, want EBADF", e)
	}
	if e := ro.SetAppend(true); e != 0 {
		t.Errorf("set append on a read-only handle: %v", e)
	}
	if _, e := ro.Write([]byte("x")); e != sysapi.EBADF {
		t.Errorf("set append made a read-only handle writable: %v", e)
	}
	if e := a.Utimens(1, 2); e != sysapi.EROFS {
		t.Errorf("futimens on asset: %v, want EROFS", e)
	}
	c, errno := root.OpenFile("in/rw.txt", rdonly, 0)
	must(t, errno)
	c.Close()
	if _, e := c.Read(make([]byte, 1)); e != sysapi.EBADF {
		t.Errorf("read after close: %v, want EBADF", e)
	}
}

func readAll(t *testing.T, r sysapi.FS, p string) string {
	t.Helper()
	f, errno := r.OpenFile(p, rdonly, 0)
	must(t, errno)
	defer f.Close()
	var out []byte
	buf := make([]byte, 3)
	for {
		n, errno := f.Read(buf)
		must(t, errno)
		if n == 0 {
			return string(out)
		}
		out = append(out, buf[:n]...)
	}
}

func TestReadWriteSeek(t *testing.T) {
	t.Parallel()
	_, root := testFS(t, 1<<20)
	f, errno := root.OpenFile("w", creat|rdwr, 0o600)
	must(t, errno)
	defer f.Close()
	if n, e := f.Write([]byte("0123456789")); n != 10 || e != 0 {
		t.Fatalf("write: %d %v", n, e)
	}
	if n, e := f.Pwrite([]byte("ab"), 2); n != 2 || e != 0 {
		t.Fatalf("pwrite: %d %v", n, e)
	}
	if off, _ := f.Seek(0, io.SeekCurrent); off != 10 {
		t.Fatalf("pwrite moved the offset to %d", off)
	}
	buf := make([]byte, 4)
	if n, _ := f.Pread(buf, 1); string(buf[:n]) != "1ab4" {
		t.Fatalf("pread: %q", buf[:n])
	}
	if n, e := f.Pread(buf, 100); n != 0 || e != 0 {
		t.Fatalf("pread past EOF: %d %v", n, e)
	}
	// A write past EOF zero-fills the gap.
	if _, e := f.Pwrite([]byte("z"), 12); e != 0 {
		t.Fatal(e)
	}
	if got := readAll(t, root, "w"); got != "01ab456789\x00\x00z" {
		t.Fatalf("content %q", got)
	}
	// Append mode writes at the end whatever the offset; pwrite still
	// writes where it is told (POSIX).
	must(t, f.SetAppend(true))
	if _, e := f.Seek(0, io.SeekStart); e != 0 {
		t.Fatal(e)
	}
	mustWrite(t, f, []byte("END"))
	if _, e := f.Pwrite([]byte("P"), 0); e != 0 {
		t.Fatal(e)
	}
	if got := readAll(t, root, "w"); got != "P1ab456789\x00\x00zEND" {
		t.Fatalf("content %q", got)
	}
	if off, _ := f.Seek(-3, io.SeekEnd); off != 13 {
		t.Fatalf("seek end: %d", off)
	}
	must(t, f.Truncate(2))
	st, _ := f.Stat()
	if st.Size != 2 {
		t.Fatalf("size after truncate %d", st.Size)
	}
	// O_TRUNC empties, O_APPEND through open appends.
	g, errno := root.OpenFile("w", trunc|wronly|appnd, 0)
	must(t, errno)
	mustWrite(t, g, []byte("x"))
	mustWrite(t, g, []byte("y"))
	g.Close()
	if got := readAll(t, root, "w"); got != "xy" {
		t.Fatalf("content %q", got)
	}
	must(t, root.Utimens("w", 5, sysapi.UTIME_OMIT))
	st2, _ := root.Stat("w")
	if st2.Atim != 5 || st2.Mtim == 5 {
		t.Fatalf("utimens: atim %d mtim %d", st2.Atim, st2.Mtim)
	}
	must(t, root.Chmod("w", 0o640))
	if st3, _ := root.Stat("w"); st3.Mode != 0o640 {
		t.Fatalf("mode %v", st3.Mode)
	}
}

func TestSymlinkReadlinkRenameDir(t *testing.T) {
	t.Parallel()
	_, root := testFS(t, 1<<20)
	if got, errno := root.Readlink("link"); errno != 0 || got != "in/rw.txt" {
		t.Fatalf("readlink %q %v", got, errno)
	}
	if got := readAll(t, root, "link"); got != "writable" {
		t.Fatalf("through link: %q", got)
	}
	st, _ := root.Lstat("link")
	if st.Mode&fs.ModeSymlink == 0 || st.Size != int64(len("in/rw.txt")) {
		t.Fatalf("lstat link: %v %d", st.Mode, st.Size)
	}
	// Renaming a directory moves its subtree; an open handle follows it.
	must(t, root.Mkdir("a", 0o755))
	must(t, root.Mkdir("a/b", 0o755))
	f, errno := root.OpenFile("a/b/f", creat|rdwr, 0)
	must(t, errno)
	must(t, root.Rename("a", "c"))
	mustWrite(t, f, []byte("moved"))
	f.Close()
	if got := readAll(t, root, "c/b/f"); got != "moved" {
		t.Fatalf("after dir rename: %q", got)
	}
	if _, errno := root.Stat("a"); errno != sysapi.ENOENT {
		t.Fatalf("old name: %v", errno)
	}
	// Hard links share contents.
	must(t, root.Link("c/b/f", "hard"))
	if got := readAll(t, root, "hard"); got != "moved" {
		t.Fatalf("hard link: %q", got)
	}
	if st, _ := root.Stat("hard"); st.Nlink != 2 {
		t.Fatalf("nlink %d", st.Nlink)
	}
}

// TestReaddirCookies reads a directory in small batches with a rewind in the
// middle, as wazero's DirentCache does for fd_readdir cookies.
func TestReaddirCookies(t *testing.T) {
	t.Parallel()
	_, root := testFS(t, 1<<20)
	must(t, root.Mkdir("d", 0o755))
	want := map[string]bool{}
	for i := 0; i < 50; i++ {
		name := strings.Repeat("n", i%7+1) + string(rune('a'+i%26)) + string(rune('0'+i/26))
		f, errno := root.OpenFile("d/"+name, creat|rdwr, 0)
		must(t, errno)
		f.Close()
		want[name] = true
	}
	d, errno := root.OpenFile("d", dir, 0)
	must(t, errno)
	defer d.Close()
	read := func() []string {
		var names []string
		for {
			ents, errno := d.Readdir(3)
			must(t, errno)
			for _, e := range ents {
				names = append(names, e.Name)
			}
			if len(ents) < 3 {
				return names
			}
		}
	}
	first := read()
	if len(first) != len(want) {
		t.Fatalf("read %d names, want %d", len(first), len(want))
	}
	for _, n := range first {
		if !want[n] {
			t.Fatalf("unexpected %q", n)
		}
	}
	// Removed entries are skipped; after a rewind new ones appear.
	must(t, root.Unlink("d/"+first[len(first)-1]))
	f, _ := root.OpenFile("d/zz-new", creat|rdwr, 0)
	f.Close()
	if _, errno := d.Seek(0, io.SeekStart); errno != 0 {
		t.Fatal(errno)
	}
	second := read()
	if len(second) != len(want) || second[len(second)-1] != "zz-new" {
		t.Fatalf("after rewind: %d names, last %q", len(second), second[len(second)-1])
	}
	// Entries carry inode and type.
	ents, _ := d.Readdir(0)
	if len(ents) != 0 {
		t.Fatalf("at end: %v", ents)
	}
}

func TestByteCapExact(t *testing.T) {
	t.Parallel()
	const capBytes = 1000
	f, root := testFS(t, capBytes)
	w, errno := root.OpenFile("big", creat|rdwr, 0)
	must(t, errno)
	if n, e := w.Write(make([]byte, 600)); n != 600 || e != 0 {
		t.Fatalf("first write: %d %v", n, e)
	}
	// A write that does not fit writes what fits (short write, POSIX)...
	if n, e := w.Write(make([]byte, 600)); n != 400 || e != 0 {
		t.Fatalf("second write: %d %v, want a short write of 400", n, e)
	}
	if f.Used() != capBytes {
		t.Fatalf("used %d", f.Used())
	}
	// ...and the next gets ENOSPC, writing nothing.
	if n, e := w.Write([]byte{1}); n != 0 || e != ENOSPC {
		t.Fatalf("third write: %d %v, want ENOSPC", n, e)
	}
	if !f.CapReached() {
		t.Fatal("CapReached false")
	}
	// Overwriting inside the file costs nothing.
	if n, e := w.Pwrite([]byte("abc"), 10); n != 3 || e != 0 {
		t.Fatalf("overwrite: %d %v", n, e)
	}
	if e := w.Truncate(1001); e != ENOSPC {
		t.Fatalf("grow past cap: %v", e)
	}
	if _, e := w.Pwrite([]byte{1}, 5000); e != ENOSPC {
		t.Fatalf("sparse write past cap: %v", e)
	}
	// Unlinking an open file keeps its bytes charged until the last close.
	must(t, root.Unlink("big"))
	if f.Used() != capBytes {
		t.Fatalf("used after unlink with open handle: %d", f.Used())
	}
	w.Close()
	if f.Used() != 0 {
		t.Fatalf("used after close: %d", f.Used())
	}
	// A writable input is charged in full when first changed: 8 bytes.
	a, errno := root.OpenFile("in/rw.txt", wronly|appnd, 0)
	must(t, errno)
	mustWrite(t, a, []byte("!!"))
	a.Close()
	if f.Used() != 10 {
		t.Fatalf("used after appending to an input: %d", f.Used())
	}
	// Truncating frees, O_TRUNC frees, and the cap is usable to the byte.
	t2, errno := root.OpenFile("in/rw.txt", trunc|wronly, 0)
	must(t, errno)
	t2.Close()
	g, errno := root.OpenFile("g", creat|wronly, 0)
	must(t, errno)
	if n, e := g.Write(make([]byte, capBytes)); n != capBytes || e != 0 {
		t.Fatalf("fill: %d %v", n, e)
	}
	must(t, g.Truncate(10))
	if f.Used() != 10 {
		t.Fatalf("used after truncate: %d", f.Used())
	}
	g.Close()
	// Renaming over a file frees the replaced file.
	h, _ := root.OpenFile("h", creat|wronly, 0)
	mustWrite(t, h, make([]byte, 5))
	h.Close()
	must(t, root.Rename("h", "g"))
	if f.Used() != 5 {
		t.Fatalf("used after rename over: %d", f.Used())
	}
}

func TestNodeCap(t *testing.T) {
	t.Parallel()
	f, err := New(Options{MaxBytes: 10, MaxNodes: 3}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	root := f.Root()
	must(t, root.Mkdir("a", 0))
	must(t, root.Mkdir("b", 0))
	must(t, root.Symlink("a", "c"))
	if e := root.Mkdir("d", 0); e != ENOSPC {
		t.Fatalf("fourth node: %v", e)
	}
	if _, e := root.OpenFile("e", creat|rdwr, 0); e != ENOSPC {
		t.Fatalf("fourth file: %v", e)
	}
}

// TestAssetTreeShared checks that asset trees and inputs are referenced, not
// copied, and cost nothing against the cap.
func TestAssetTreeShared(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("A"), 1<<20)
	tree, err := NewTree([]TreeEntry{{Path: "big.bin", Data: data}, {Path: "lib", Mode: fs.ModeDir}}, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	if tree.Bytes() != 1<<20 || tree.Files() != 1 {
		t.Fatalf("tree bytes %d files %d", tree.Bytes(), tree.Files())
	}
	input := []byte("input")
	var fss []*FS
	for i := 0; i < 3; i++ {
		f, err := New(Options{MaxBytes: 0}, []Mount{{Path: "/usr/share/assets", Tree: tree}}, []Input{{Path: "/in", Data: input}})
		if err != nil {
			t.Fatal(err)
		}
		fss = append(fss, f)
	}
	for _, f := range fss {
		n := f.root.kids["usr"].kids["share"].kids["assets"].kids["big.bin"]
		if &n.data[0] != &data[0] {
			t.Fatal("asset bytes were copied")
		}
		if &f.root.kids["in"].data[0] != &input[0] {
			t.Fatal("input bytes were copied")
		}
		if f.Used() != 0 {
			t.Fatalf("used %d", f.Used())
		}
		// Reading is free even with a zero cap; writing an input is not.
		if got := readAll(t, f.Root(), "usr/share/assets/big.bin"); len(got) != 1<<20 {
			t.Fatalf("read %d bytes", len(got))
		}
		w, errno := f.Root().OpenFile("in", wronly, 0)
		must(t, errno)
		if _, e := w.Write([]byte("x")); e != ENOSPC {
			t.Fatalf("write input with zero cap: %v", e)
		}
		w.Close()
		if string(input) != "input" {
			t.Fatal("input bytes changed")
		}
	}
	// The asset tree is the same nodes in every job.
	if fss[0].root.kids["usr"].kids["share"].kids["assets"] != fss[1].root.kids["usr"].kids["share"].kids["assets"] {
		t.Fatal("asset tree not shared")
	}
}

func TestWritableInputCopyOnWrite(t *testing.T) {
	t.Parallel()
	input := []byte("original")
	f, err := New(Options{MaxBytes: 100}, nil, []Input{{Path: "/a", Data: input}})
	if err != nil {
		t.Fatal(err)
	}
	w, errno := f.Root().OpenFile("a", wronly, 0)
	must(t, errno)
	mustWrite(t, w, []byte("O"))
	w.Close()
	if string(input) != "original" {
		t.Fatalf("caller's input changed to %q", input)
	}
	if got := readAll(t, f.Root(), "a"); got != "Original" {
		t.Fatalf("job sees %q", got)
	}
	if f.Used() != 8 {
		t.Fatalf("used %d", f.Used())
	}
}

func TestPreopenViews(t *testing.T) {
	t.Parallel()
	f, _ := testFS(t, 1<<20)
	for _, name := range []string{"/", ".", "fs-tests.dir", "/data/", "./x/y"} {
		if _, err := f.Preopen(name); err != nil {
			t.Errorf("preopen %q: %v", name, err)
		}
	}
	for _, name := range []string{"", "../x", "a/../../b", "in/rw.txt", "share/new", "a\x00b"} {
		if _, err := f.Preopen(name); err == nil {
			t.Errorf("preopen %q accepted", name)
		}
	}
	v, err := f.Preopen("fs-tests.dir")
	if err != nil {
		t.Fatal(err)
	}
	w, errno := v.OpenFile("x", creat|rdwr, 0)
	must(t, errno)
	w.Close()
	if _, errno := f.Root().Stat("fs-tests.dir/x"); errno != 0 {
		t.Fatalf("preopen not backed by /fs-tests.dir: %v", errno)
	}
	if _, errno := v.Stat("../in/rw.txt"); errno != sysapi.EPERM {
		t.Fatalf("dotdot out of the preopen: %v", errno)
	}
	must(t, v.Symlink("../in", "up"))
	if _, errno := v.Stat("up/rw.txt"); errno != sysapi.EPERM {
		t.Fatalf("symlink out of the preopen: %v", errno)
	}
	if _, errno := f.Root().Stat("fs-tests.dir/up/rw.txt"); errno != 0 {
		t.Fatalf("the same link from the root view: %v", errno)
	}
	if _, err := f.FSConfig(wazero.NewFSConfig(), []string{"/data", "data/"}); err == nil {
		t.Error("two preopens wazero keys alike were accepted")
	}
	if _, err := f.FSConfig(wazero.NewFSConfig(), []string{"/", "fs-tests.dir", "share"}); err != nil {
		t.Errorf("FSConfig: %v", err)
	}
	sub, _ := f.Preopen("share")
	if errno := sub.Mkdir("x", 0); errno != sysapi.EROFS {
		t.Fatalf("mkdir in an asset preopen: %v", errno)
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	tree, _ := TreeFromMap(map[string][]byte{"a": nil})
	bad := []struct {
		name   string
		mounts []Mount
		inputs []Input
	}{
		{"mount at root", []Mount{{Path: "/", Tree: tree}}, nil},
		{"relative mount", []Mount{{Path: "share", Tree: tree}}, nil},
		{"nil tree", []Mount{{Path: "/s"}}, nil},
		{"two mounts", []Mount{{Path: "/s", Tree: tree}, {Path: "/s", Tree: tree}}, nil},
		{"mount inside mount", []Mount{{Path: "/s", Tree: tree}, {Path: "/s/t", Tree: tree}}, nil},
		{"input in mount", []Mount{{Path: "/s", Tree: tree}}, []Input{{Path: "/s/x"}}},
		{"input twice", nil, []Input{{Path: "/x"}, {Path: "/x"}}},
		{"input below file", nil, []Input{{Path: "/x"}, {Path: "/x/y"}}},
		{"relative input", nil, []Input{{Path: "x"}}},
		{"root input", nil, []Input{{Path: "/"}}},
		{"long name", nil, []Input{{Path: "/" + strings.Repeat("n", 256)}}},
	}
	for _, c := range bad {
		if _, err := New(Options{MaxBytes: 1}, c.mounts, c.inputs); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

func TestTreeBuilders(t *testing.T) {
	t.Parallel()
	m := fstest.MapFS{
		"a/b.txt": {Data: []byte("bee")},
		"c.txt":   {Data: []byte("see")},
		"empty":   {Mode: fs.ModeDir | 0o755},
		"ln":      {Data: []byte("c.txt"), Mode: fs.ModeSymlink},
	}
	tree, err := TreeFromFS(m, 100)
	if err != nil {
		t.Fatal(err)
	}
	if tree.Files() != 2 || tree.Bytes() != 6 {
		t.Fatalf("files %d bytes %d", tree.Files(), tree.Bytes())
	}
	f, err := New(Options{}, []Mount{{Path: "/t", Tree: tree}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f.Root(), "t/ln"); got != "see" {
		t.Fatalf("through tree link: %q", got)
	}
	if _, err := TreeFromFS(m, 5); err == nil {
		t.Fatal("byte limit not enforced")
	}
	for _, bad := range [][]TreeEntry{
		{{Path: "../x"}},
		{{Path: "a//b"}},
		{{Path: ""}},
		{{Path: "a"}, {Path: "a"}},
		{{Path: "a"}, {Path: "a/b"}},
		{{Path: "l", Mode: fs.ModeSymlink}},
		{{Path: "p", Mode: fs.ModeNamedPipe}},
	} {
		if _, err := NewTree(bad, 100); err == nil {
			t.Errorf("NewTree(%v) accepted", bad)
		}
	}
}

// TestCreateInRemovedDirectory: a preopen view (or a handle) can outlive its
// directory; creating in it then answers ENOENT, as on Linux.
func TestCreateInRemovedDirectory(t *testing.T) {
	t.Parallel()
	f, root := testFS(t, 1<<20)
	v, err := f.Preopen("gone")
	if err != nil {
		t.Fatal(err)
	}
	must(t, root.Rmdir("gone"))
	if _, errno := v.OpenFile("x", creat|rdwr, 0); errno != sysapi.ENOENT {
		t.Errorf("create in removed dir: %v", errno)
	}
	if errno := v.Mkdir("d", 0); errno != sysapi.ENOENT {
		t.Errorf("mkdir in removed dir: %v", errno)
	}
	if errno := v.Symlink("a", "l"); errno != sysapi.ENOENT {
		t.Errorf("symlink in removed dir: %v", errno)
	}
	if errno := root.Rename("in/rw.txt", "empty/x"); errno != 0 {
		t.Fatal(errno)
	}
	d, errno := root.OpenFile("empty", dir, 0)
	must(t, errno)
	defer d.Close()
	must(t, root.Unlink("empty/x"))
	must(t, root.Rmdir("empty"))
	if ents, errno := d.Readdir(0); errno != 0 || len(ents) != 0 {
		t.Errorf("readdir of removed dir: %v %v", ents, errno)
	}
}

// TestConcurrentJobsShareTree runs jobs in parallel on one asset tree (run
// it with -race): they only read its nodes.
func TestConcurrentJobsShareTree(t *testing.T) {
	t.Parallel()
	tree, err := TreeFromMap(map[string][]byte{"a": []byte("shared"), "d/b": []byte("bee")})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	for i := 0; i < 4; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			f, err := New(Options{MaxBytes: 1 << 10}, []Mount{{Path: "/t", Tree: tree}}, nil)
			if err != nil {
				t.Error(err)
				return
			}
			r := f.Root()
			for j := 0; j < 50; j++ {
				h, errno := r.OpenFile("t/a", rdonly, 0)
				if errno != 0 {
					t.Error(errno)
					return
				}
				buf := make([]byte, 8)
				if n, _ := h.Read(buf); string(buf[:n]) != "shared" {
					t.Errorf("read %q", buf[:n])
				}
				h.Close()
				d, _ := r.OpenFile("t/d", dir, 0)
				if ents, _ := d.Readdir(0); len(ents) != 1 {
					t.Errorf("readdir %v", ents)
				}
				d.Close()
				if _, errno := r.Stat("t/d/b"); errno != 0 {
					t.Error(errno)
				}
			}
		}()
	}
	for i := 0; i < 4; i++ {
		<-done
	}
}

// TestTrailingSlashOnSymlink: a name with a trailing slash that is a
// symbolic link is not followed by rmdir, unlink, rename or mkdir (Linux),
// so they neither remove nor create the link's target.
func TestTrailingSlashOnSymlink(t *testing.T) {
	t.Parallel()
	_, root := testFS(t, 1<<20)
	must(t, root.Symlink("empty", "dirlink"))
	if e := root.Rmdir("dirlink/"); e != sysapi.ENOTDIR {
		t.Errorf("rmdir dirlink/: %v, want ENOTDIR", e)
	}
	if _, e := root.Stat("empty"); e != 0 {
		t.Errorf("rmdir through a link removed its target: %v", e)
	}
	if e := root.Unlink("link/"); e != sysapi.ENOTDIR {
		t.Errorf("unlink link/: %v, want ENOTDIR", e)
	}
	if _, e := root.Stat("in/rw.txt"); e != 0 {
		t.Errorf("unlink through a link removed its target: %v", e)
	}
	if e := root.Mkdir("dangling/", 0o755); e != sysapi.EEXIST {
		t.Errorf("mkdir dangling/: %v, want EEXIST", e)
	}
	if _, e := root.Stat("missing"); e != sysapi.ENOENT {
		t.Errorf("mkdir through a dangling link created its target: %v", e)
	}
	if e := root.Rename("dirlink/", "moved"); e != sysapi.ENOTDIR {
		t.Errorf("rename dirlink/: %v, want ENOTDIR", e)
	}
	if _, e := root.Stat("empty"); e != 0 {
		t.Errorf("rename through a link moved its target: %v", e)
	}
}

// TestNodeCapCountsLiveNodes: the node cap bounds what a job holds at once,
// so a program that creates and removes many temporary files is not stopped.
func TestNodeCapCountsLiveNodes(t *testing.T) {
	t.Parallel()
	f, err := New(Options{MaxBytes: 10, MaxNodes: 3}, nil, []Input{{Path: "/in"}})
	if err != nil {
		t.Fatal(err)
	}
	root := f.Root()
	for i := 0; i < 100; i++ {
		h, errno := root.OpenFile("tmp", creat|rdwr, 0)
		must(t, errno)
		must(t, root.Mkdir("d", 0))
		must(t, root.Unlink("tmp"))
		h.Close()
		must(t, root.Rmdir("d"))
	}
	// in, a, b: full.
	must(t, root.Mkdir("a", 0))
	must(t, root.Mkdir("b", 0))
	if e := root.Mkdir("c", 0); e != ENOSPC {
		t.Fatalf("node past the cap: %v", e)
	}
}
