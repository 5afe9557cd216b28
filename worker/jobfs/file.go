package jobfs

import (
	"io"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// file is an open handle. Like a POSIX descriptor it keeps its node alive
// after the node is unlinked or renamed.
type file struct {
	seeker[int64]
	fs     *FS
	n      *node
	read   bool
	write  bool
	append bool
	dir    bool // cached: IsDir is called without the lock
	off    int64
	closed bool

	// Directory reading: a snapshot of the entry names taken at the first
	// Readdir after open or rewind, and the position in it. wazero's
	// DirentCache turns the guest's cookies into these sequential reads and
	// rewinds with Seek(0).
	names   []string
	namePos int
	listed  bool
}

var _ experimentalsys.File = (*file)(nil)

func (h *file) lock() Errno {
	h.fs.mu.Lock()
	if h.closed {
		h.fs.mu.Unlock()
		return experimentalsys.EBADF
	}
	return 0
}

func (h *file) unlock() { h.fs.mu.Unlock() }

// Dev implements experimentalsys.File.
func (h *file) Dev() (uint64, Errno) { return 1, 0 }

// Ino implements experimentalsys.File.
func (h *file) Ino() (sys.Inode, Errno) { return h.n.ino, 0 }

// IsDir implements experimentalsys.File.
func (h *file) IsDir() (bool, Errno) { return h.dir, 0 }

// IsAppend implements experimentalsys.File.
func (h *file) IsAppend() bool {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	return h.append
}

// SetAppend implements experimentalsys.File.
func (h *file) SetAppend(enable bool) Errno {
	if e := h.lock(); e != 0 {
		return e
	}
	defer h.unlock()
	if h.n.isDir() {
		return experimentalsys.EISDIR
	}
	h.append = enable // as fcntl(F_SETFL): it grants no write access
	return 0
}

// Stat implements experimentalsys.File.
func (h *file) Stat() (sys.Stat_t, Errno) {
	if e := h.lock(); e != 0 {
		return sys.Stat_t{}, e
	}
	defer h.unlock()
	return stat(h.n), 0
}

// Read implements experimentalsys.File.
func (h *file) Read(buf []byte) (int, Errno) {
	if e := h.lock(); e != 0 {
		return 0, e
	}
	defer h.unlock()
	n, errno := h.pread(buf, h.off)
	h.off += int64(n)
	return n, errno
}

// Pread implements experimentalsys.File.
func (h *file) Pread(buf []byte, off int64) (int, Errno) {
	return h.at(buf, off, h.pread)
}

// at runs a positioned read or write (pread, pwrite) of buf at off, which
// must not be negative, under the handle's lock; the offset stays.
func (h *file) at(buf []byte, off int64, rw func([]byte, int64) (int, Errno)) (int, Errno) {
	if e := h.lock(); e != 0 {
		return 0, e
	}
	defer h.unlock()
	if off < 0 {
		return 0, experimentalsys.EINVAL
	}
	return rw(buf, off)
}

func (h *file) pread(buf []byte, off int64) (int, Errno) {
	switch {
	case h.n.isDir():
		return 0, experimentalsys.EISDIR
	case !h.read:
		return 0, experimentalsys.EBADF
	}
	return readAt(h.n, buf, off), 0
}

// seeker gives file its Seek method. wazero's File interface wants
// Seek(int64, int) (int64, Errno); go vet's stdmethods check insists that a
// method of that name return error like io.Seeker. Declaring it on a generic
// type instantiated at int64 satisfies the interface without the vet report.
type seeker[T ~int64] struct{ h *file }

// Seek implements experimentalsys.File. On a directory only a rewind to
// zero is allowed; it makes the next Readdir start over.
func (s seeker[T]) Seek(off T, whence int) (T, Errno) {
	n, errno := s.h.seek(int64(off), whence)
	return T(n), errno
}

func (h *file) seek(offset int64, whence int) (int64, Errno) {
	if e := h.lock(); e != 0 {
		return 0, e
	}
	defer h.unlock()
	if h.n.isDir() {
		if offset != 0 || whence != io.SeekStart {
			return 0, experimentalsys.EINVAL
		}
		h.names, h.namePos, h.listed = nil, 0, false
		return 0, 0
	}
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = h.off
	case io.SeekEnd:
		base = fileSize(h.n)
	default:
		return 0, experimentalsys.EINVAL
	}
	if offset > 0 && base > (1<<63-1)-offset {
		return 0, experimentalsys.EINVAL
	}
	if base+offset < 0 {
		return 0, experimentalsys.EINVAL
	}
	h.off = base + offset
	return h.off, 0
}

// Readdir implements experimentalsys.File. Entries created after the
// snapshot was taken are not listed until a rewind; entries removed since are
// skipped.
func (h *file) Readdir(n int) ([]experimentalsys.Dirent, Errno) {
	if e := h.lock(); e != 0 {
		return nil, e
	}
	defer h.unlock()
	d := h.n
	if !d.isDir() {
		return nil, experimentalsys.EBADF
	}
	if !h.listed {
		h.names, h.namePos, h.listed = sortedNames(d), 0, true
	}
	var out []experimentalsys.Dirent
	for h.namePos < len(h.names) && (n <= 0 || len(out) < n) {
		name := h.names[h.namePos]
		h.namePos++
		k := d.kids[name]
		if k == nil {
			continue
		}
		out = append(out, experimentalsys.Dirent{Ino: k.ino, Name: name, Type: k.mode.Type()})
	}
	return out, 0
}

// Write implements experimentalsys.File. Past the cap it writes the bytes
// that fit and reports that short count without error (POSIX: "only as many
// bytes as there is room for shall be written"); a write of which no byte
// fits fails with ENOSPC and writes nothing.
func (h *file) Write(buf []byte) (int, Errno) {
	if e := h.lock(); e != 0 {
		return 0, e
	}
	defer h.unlock()
	if h.append {
		h.off = fileSize(h.n)
	}
	n, errno := h.pwrite(buf, h.off)
	h.off += int64(n)
	return n, errno
}

// Pwrite implements experimentalsys.File. It writes at off even on an
// append-mode handle (POSIX; Linux appends instead) and leaves the offset.
func (h *file) Pwrite(buf []byte, off int64) (int, Errno) {
	return h.at(buf, off, h.pwrite)
}

func (h *file) pwrite(buf []byte, off int64) (int, Errno) {
	n := h.n
	switch {
	case n.isDir():
		return 0, experimentalsys.EISDIR
	case !h.write:
		return 0, experimentalsys.EBADF
	}
	if len(buf) == 0 {
		return 0, 0
	}
	if e := roErr(n); e != 0 {
		return 0, e
	}
	f := h.fs
	if e := f.own(n); e != 0 {
		return 0, e
	}
	size := n.size
	end := off + int64(len(buf))
	if end < off { // overflow
		return 0, experimentalsys.EINVAL
	}
	if end > size {
		// The file may grow to its charged size plus what is left of the cap.
		limit := n.counted + (f.maxBytes - f.used)
		if end > limit {
			f.capHit = true
			if off >= limit {
				return 0, ENOSPC
			}
			buf = buf[:limit-off]
			end = limit
		}
		if errno := f.charge(n, end); errno != 0 {
			return 0, errno
		}
		resize(n, end)
	}
	writeAt(n, buf, off)
	t := f.now()
	n.mtim, n.ctim = t, t
	return len(buf), 0
}

// Truncate implements experimentalsys.File.
func (h *file) Truncate(size int64) Errno {
	if e := h.lock(); e != 0 {
		return e
	}
	defer h.unlock()
	n := h.n
	switch {
	case n.isDir():
		return experimentalsys.EISDIR
	case size < 0:
		return experimentalsys.EINVAL
	case !h.write:
		return experimentalsys.EBADF
	}
	if e := roErr(n); e != 0 {
		return e
	}
	f := h.fs
	if size == fileSize(n) {
		return 0
	}
	if e := f.charge(n, size); e != 0 {
		return e
	}
	if n.shared {
		chunkify(n, size) // keeps a prefix of the borrowed bytes
	} else {
		resize(n, size)
	}
	t := f.now()
	n.mtim, n.ctim = t, t
	return 0
}

// Sync implements experimentalsys.File (nothing to flush).
func (h *file) Sync() Errno { return 0 }

// Datasync implements experimentalsys.File (nothing to flush).
func (h *file) Datasync() Errno { return 0 }

// Utimens implements experimentalsys.File.
func (h *file) Utimens(atim, mtim int64) Errno {
	if e := h.lock(); e != 0 {
		return e
	}
	defer h.unlock()
	return h.fs.utimens(h.n, atim, mtim)
}

// Close implements experimentalsys.File.
func (h *file) Close() Errno {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return 0
	}
	h.closed = true
	h.names = nil
	if h.n.lock != asset {
		h.n.opens--
		if h.n.opens == 0 && !h.n.shared {
			trim(h.n)
		}
		h.fs.release(h.n)
	}
	return 0
}
