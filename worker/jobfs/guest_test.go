package jobfs

import (
	"path/filepath"
	"strings"
	"testing"
)

// probeCap is the byte cap of the probe's job; the probe fills it.
const probeCap = 100_000

func probeFS(t *testing.T) *FS {
	t.Helper()
	tree, err := TreeFromMap(map[string][]byte{"readme": []byte("asset bytes"), "sub/x": []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	jfs, err := New(Options{MaxBytes: probeCap}, []Mount{{Path: "/share", Tree: tree}}, []Input{
		{Path: "/in/ro.txt", Data: []byte("read only"), ReadOnly: true},
		{Path: "/in/rw.txt", Data: []byte("writable")},
		{Path: "/scratch/.keep"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return jfs
}

// TestGuestProbe runs a Go wasip1 program (testdata/fsprobe) that uses the
// preview1 file surface like a POSIX program, against a job filesystem, and
// checks every line it prints.
func TestGuestProbe(t *testing.T) {
	jfs := probeFS(t)
	exit, stdout, stderr := runGuest(t, gunzipFile(t, filepath.Join("testdata", "fsprobe.wasm.gz")), jfs, []string{"/", "data"})
	if exit != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", exit, stdout, stderr)
	}
	want := strings.Split(strings.TrimSpace(probeWant), "\n")
	got := strings.Split(strings.TrimSpace(stdout), "\n")
	for i := 0; i < max(len(want), len(got)); i++ {
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			t.Errorf("line %d: got %q, want %q", i+1, g, w)
		}
	}
	// The guest filled the cap exactly, removed the filler and went on.
	if !jfs.CapReached() {
		t.Error("CapReached is false after the guest hit the cap")
	}
	var sum int64
	for _, p := range []string{"/scratch/p.bin", "/scratch/r/f2", "/scratch/small", "/data/in-data", "/in/rw.txt"} {
		st, errno := jfs.Root().Stat(p)
		if errno != 0 {
			t.Fatalf("stat %s: %v", p, errno)
		}
		sum += st.Size
	}
	if got := jfs.Used(); got != sum {
		t.Errorf("Used() = %d, want the %d bytes of the files the guest wrote", got, sum)
	}
}

// probeWant is what testdata/fsprobe prints. "fill: EIO" is ENOSPC as
// wazero v1.12 delivers it (see ENOSPC); "filled" is the cap less the 23
// bytes the probe holds at that point: the byte cap is exact.
const probeWant = `
create-excl: ok
write: ok
create-excl-again: EEXIST
read-back: "hello world" ok
open-trunc: ok
size-after-trunc: 0
open-missing: ENOENT
open-file-slash: ENOTDIR
open-dir-write: EISDIR
pwrite: ok
pread: "2AB5" 4 ok
tell: 10
seek-end: 7
seek-negative: EINVAL
filestat_set_size: 4
append: "012Azz"
set-times: ok
mtime: 2000
readdir: 300 names in 44 calls
mkdir-exists: EEXIST
rmdir-notempty: ENOTEMPTY
unlink-dir: EISDIR
rmdir-file: ENOTDIR
mkdir-under-file: ENOTDIR
rename-file-over-file: ok
renamed-content: "one"
rename-dir: ok
rename-dir-over-nonempty: ENOTEMPTY
rename-dir-into-itself: EINVAL
rename-file-over-dir: EISDIR
rename-dir-over-file: ENOTDIR
rename-dir-over-empty-dir: ok
symlink: ok
readlink: "r/f2" ok
read-via-link: "one" ok
symlink-absolute: EPERM
symlink-loop: ELOOP
data-write: ok
data-symlink-up: ok
data-symlink-inside: ok
data-open-dotdot: EPERM
data-open-escape-link: EPERM
data-open-link-nofollow: ELOOP
data-open-inside-link: ok
data-open-sub-dotdot: ok
fd_renumber: ok
read-renumbered: ok
renumbered-content: "one"
asset-read: "asset bytes" ok
asset-open-write: EROFS
asset-create: EROFS
asset-unlink: EROFS
asset-mkdir: EROFS
asset-rename-out: EROFS
ro-input-write: EACCES
ro-input-unlink: EACCES
rw-input-append: ok
rw-input: "writable+more"
fill: EIO
filled: 99977
after-fill-remove: ok
after-fill-write: ok
root: data,in,scratch,share
`
