// Package jobfs is the per-job filesystem, held in memory.
//
// A job's files live here, never in a host directory.
//
// An FS is made of three layers in one namespace:
//
//   - asset trees (Tree): immutable, shared by every job that mounts them and
//     never copied; anything under a mount answers EROFS to changes;
//   - the job's input files: borrowed from the request (not copied, never
//     written: they may be a read-only mapping), either read-only (EACCES to
//     changes) or writable (copied on first change);
//   - the writable layer: whatever the guest creates, capped at exactly
//     Options.MaxBytes bytes of file contents (ENOSPC past it).
//
// The FS implements wazero's experimental/sys.FS; Preopen gives the view of a
// directory that wazero mounts as one WASI preopen. Lookups never leave a
// view: ".." at its root and symbolic links that would leave it answer EPERM,
// as wazero itself answers for paths that escape.
//
// The worker builds one per job (worker/executor, Request.Files).
package jobfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"
)

// Errno values, re-exported so callers and tests read naturally.
type Errno = experimentalsys.Errno

// ENOSPC is what a write past the cap returns. wazero v1.12's Errno set has
// no ENOSPC and its preview1 layer maps every value outside that set to EIO,
// so EIO is what a guest can be given today; FS.CapReached tells the host
// that the cap, not a fault, was the cause. When wazero gains ENOSPC this
// constant becomes it and nothing else changes.
const ENOSPC = experimentalsys.EIO

// DefaultMaxNodes bounds the files, directories and links a job may hold when
// Options.MaxNodes is zero. Empty files cost no bytes of MaxBytes, so without
// such a bound a guest could hold unbounded memory in metadata alone.
const DefaultMaxNodes = 65536

// Options configures a job filesystem.
type Options struct {
	// MaxBytes caps the bytes of file contents held by the writable layer
	// (files the guest created or changed, including writable inputs once
	// changed). Zero means nothing may be written.
	MaxBytes int64
	// MaxNodes caps the files, directories and links the job holds at once,
	// its inputs and their directories included (DefaultMaxNodes if zero).
	MaxNodes int
	// Now returns the time used for timestamps, in nanoseconds since the
	// epoch (time.Now if nil). Deterministic jobs pass a fixed clock.
	Now func() int64
}

// Mount attaches an asset tree read-only at Path (absolute, not "/").
type Mount struct {
	Path string
	Tree *Tree
}

// Input is one input file of the job.
type Input struct {
	// Path is absolute ("/in/a.txt"); parents are created.
	Path string
	// Data is borrowed, not copied, and never written (it may be a
	// read-only mapping, as a sandbox child's large inputs are): the caller
	// must not change it while the FS is in use.
	Data []byte
	// ReadOnly inputs cannot be written, truncated, renamed or removed
	// (EACCES).
	ReadOnly bool
}

// FS is one job's filesystem. It is safe for concurrent use.
type FS struct {
	mu       sync.Mutex
	root     *node
	used     int64 // bytes charged against maxBytes
	maxBytes int64
	nodes    int // the job's live nodes (inputs and directories included)
	maxNodes int
	now      func() int64
	capHit   bool // a change was refused for lack of space
}

// New builds a job filesystem from asset mounts and input files.
func New(opts Options, mounts []Mount, inputs []Input) (*FS, error) {
	if opts.MaxBytes < 0 {
		return nil, errors.New("jobfs: negative MaxBytes")
	}
	f := &FS{maxBytes: opts.MaxBytes, maxNodes: opts.MaxNodes, now: opts.Now}
	if f.maxNodes <= 0 {
		f.maxNodes = DefaultMaxNodes
	}
	if f.now == nil {
		f.now = func() int64 { return time.Now().UnixNano() }
	}
	t := f.now()
	f.root = newDirNode(0o755, writable, t)
	for _, m := range mounts {
		parts, ok := cleanAbs(m.Path)
		if !ok || len(parts) == 0 || m.Tree == nil {
			return nil, fmt.Errorf("jobfs: bad mount %q", m.Path)
		}
		parent, err := f.mkdirAll(parts[:len(parts)-1])
		if err != nil {
			return nil, fmt.Errorf("jobfs: mount %q: %w", m.Path, err)
		}
		name := parts[len(parts)-1]
		if _, dup := parent.kids[name]; dup {
			return nil, fmt.Errorf("jobfs: mount %q overlaps another mount", m.Path)
		}
		parent.kids[name] = m.Tree.root
	}
	for _, in := range inputs {
		parts, ok := cleanAbs(in.Path)
		if !ok || len(parts) == 0 {
			return nil, fmt.Errorf("jobfs: bad input path %q", in.Path)
		}
		parent, err := f.mkdirAll(parts[:len(parts)-1])
		if err != nil {
			return nil, fmt.Errorf("jobfs: input %q: %w", in.Path, err)
		}
		name := parts[len(parts)-1]
		if _, dup := parent.kids[name]; dup {
			return nil, fmt.Errorf("jobfs: input %q given twice or overlaps a directory", in.Path)
		}
		n := &node{ino: newIno(), mode: 0o644, nlink: 1, data: in.Data, shared: true, atim: t, mtim: t, ctim: t}
		if in.ReadOnly {
			n.mode, n.lock = 0o444, roInput
		}
		parent.kids[name] = n
		f.nodes++
	}
	if f.nodes > f.maxNodes {
		return nil, errors.New("jobfs: more inputs than MaxNodes")
	}
	return f, nil
}

// mkdirAll creates writable directories along parts (host setup only).
func (f *FS) mkdirAll(parts []string) (*node, error) {
	d := f.root
	for _, c := range parts {
		k, ok := d.kids[c]
		if !ok {
			k = newDirNode(0o755, writable, f.root.mtim)
			d.kids[c] = k
			f.nodes++
		}
		if !k.isDir() {
			return nil, fmt.Errorf("%q is not a directory", c)
		}
		if k.lock != writable {
			return nil, fmt.Errorf("%q is inside an asset mount", c)
		}
		d = k
	}
	return d, nil
}

// CapReached reports whether a write, truncate or create was refused (or
// shortened) because of MaxBytes or MaxNodes.
func (f *FS) CapReached() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.capHit
}

// Used is the number of bytes charged against MaxBytes.
func (f *FS) Used() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.used
}

// Root is the whole filesystem as an experimental/sys.FS.
func (f *FS) Root() experimentalsys.FS { return &view{fs: f, root: f.root} }

// Preopen returns the view wazero mounts for a preopen named name: the
// directory "/"+name (created if missing), with lookups confined to it.
func (f *FS) Preopen(name string) (experimentalsys.FS, error) {
	parts, ok := PreopenDir(name)
	if !ok {
		return nil, fmt.Errorf("jobfs: bad preopen %q", name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.root
	for i, c := range parts {
		k, ok := d.kids[c]
		if !ok {
			if d.lock != writable {
				return nil, fmt.Errorf("jobfs: preopen %q: missing inside an asset mount", name)
			}
			k = newDirNode(0o755, writable, f.now())
			d.kids[c] = k
			f.nodes++
		}
		if !k.isDir() {
			return nil, fmt.Errorf("jobfs: preopen %q: %q is not a directory", name, strings.Join(parts[:i+1], "/"))
		}
		d = k
	}
	return &view{fs: f, root: d}, nil
}

// PreopenDir returns the components of the directory backing a preopen: a
// preopen is shown to the guest exactly as named and backed by "/"+name
// ("fs-tests.dir" → /fs-tests.dir, "/" and "." → /).
func PreopenDir(name string) ([]string, bool) {
	if name == "" || len(name) > MaxPathLen || strings.IndexByte(name, 0) >= 0 {
		return nil, false
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return nil, false
		}
	}
	return cleanAbs(path.Clean("/" + name))
}

// FSConfig adds one wazero mount per preopen, each named exactly as given.
// wazero keys mounts by the name without leading "./" or "/" and trailing
// "/", so names equal after that stripping are rejected.
func (f *FS) FSConfig(cfg wazero.FSConfig, preopens []string) (wazero.FSConfig, error) {
	sc, ok := cfg.(sysfs.FSConfig)
	if !ok {
		return nil, errors.New("jobfs: wazero FSConfig lacks WithSysFSMount")
	}
	seen := map[string]bool{}
	for _, p := range preopens {
		key := strings.Trim(path.Clean("/"+p), "/")
		if seen[key] {
			return nil, fmt.Errorf("jobfs: preopen %q given twice", p)
		}
		seen[key] = true
		v, err := f.Preopen(p)
		if err != nil {
			return nil, err
		}
		cfg = sc.WithSysFSMount(v, p)
		if sc, ok = cfg.(sysfs.FSConfig); !ok {
			return nil, errors.New("jobfs: wazero FSConfig lacks WithSysFSMount")
		}
	}
	return cfg, nil
}

// view is an experimental/sys.FS confined to one directory of an FS.
type view struct {
	experimentalsys.UnimplementedFS
	fs   *FS
	root *node
}

var _ experimentalsys.FS = (*view)(nil)

// found is the result of a lookup.
type found struct {
	parent *node  // directory holding name; nil when the path names the view root
	name   string // last component ("" for the view root)
	node   *node  // nil when the last component does not exist
	slash  bool   // the path ended in "/" (the result must be a directory)
}

// lookup resolves p, relative to the view root, following symbolic links in
// every component but the last (and the last too when follow is set or the
// path ends in "/"). Callers hold fs.mu.
func (v *view) lookup(p string, follow bool) (found, Errno) {
	if len(p) > MaxPathLen {
		return found{}, experimentalsys.ENAMETOOLONG
	}
	if strings.IndexByte(p, 0) >= 0 {
		return found{}, experimentalsys.EINVAL
	}
	var r found
	r.slash = strings.HasSuffix(p, "/") && strings.Trim(p, "/") != ""
	if r.slash {
		follow = true
	}
	todo := splitRel(p)
	stack := []*node{v.root}
	follows := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		last := len(todo) == 0
		if c == ".." {
			if len(stack) == 1 {
				return found{}, experimentalsys.EPERM // would leave the preopen
			}
			stack = stack[:len(stack)-1]
			continue
		}
		cur := stack[len(stack)-1]
		if !cur.isDir() {
			return found{}, experimentalsys.ENOTDIR
		}
		if len(c) > MaxNameLen {
			return found{}, experimentalsys.ENAMETOOLONG
		}
		k := cur.kids[c]
		if k == nil {
			if last {
				return found{parent: cur, name: c, slash: r.slash}, 0
			}
			return found{}, experimentalsys.ENOENT
		}
		if k.isSymlink() && (!last || follow) {
			if follows++; follows > maxSymlinkFollows {
				return found{}, experimentalsys.ELOOP
			}
			if strings.HasPrefix(k.target, "/") {
				return found{}, experimentalsys.EPERM // absolute links would leave the preopen
			}
			todo = append(splitRel(k.target), todo...)
			continue
		}
		if last {
			return found{parent: cur, name: c, node: k, slash: r.slash}, 0
		}
		stack = append(stack, k)
	}
	// The path named a directory on the stack ("." or ending in "..").
	r.node = stack[len(stack)-1]
	if len(stack) > 1 {
		r.parent = stack[len(stack)-2]
		for name, k := range r.parent.kids {
			if k == r.node {
				r.name = name
				break
			}
		}
	}
	return r, 0
}

// lookupEntry resolves p for an operation on the directory entry itself
// (mkdir, rmdir, unlink, rename, link, symlink): the last component is not
// followed even when p ends in "/" (Linux), which then only sets slash.
func (v *view) lookupEntry(p string) (found, Errno) {
	slash := strings.HasSuffix(p, "/") && strings.Trim(p, "/") != ""
	r, errno := v.lookup(strings.TrimRight(p, "/"), false)
	r.slash = slash
	return r, errno
}

// lookupNode is lookup for an operation on an existing node: ENOENT when p
// names none.
func (v *view) lookupNode(p string, follow bool) (found, Errno) {
	r, errno := v.lookup(p, follow)
	if errno == 0 && r.node == nil {
		errno = experimentalsys.ENOENT
	}
	return r, errno
}

// splitRel splits a relative path into components, dropping "" and ".".
func splitRel(p string) []string {
	parts := strings.Split(p, "/")
	out := parts[:0]
	for _, c := range parts {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// roErr is the errno for changing n: EROFS in an asset tree, EACCES for a
// read-only input, 0 when the job may change it.
func roErr(n *node) Errno {
	switch n.lock {
	case asset:
		return experimentalsys.EROFS
	case roInput:
		return experimentalsys.EACCES
	}
	return 0
}

// createIn is the errno for adding an entry to directory d: EROFS in an
// asset tree, ENOENT once d was removed (a view or handle may still name it).
func createIn(d *node) Errno {
	if e := roErr(d); e != 0 {
		return e
	}
	if d.nlink <= 0 {
		return experimentalsys.ENOENT
	}
	return 0
}

func (f *FS) newNode(mode fs.FileMode) (*node, Errno) {
	if f.nodes >= f.maxNodes {
		f.capHit = true
		return nil, ENOSPC
	}
	f.nodes++
	t := f.now()
	n := &node{ino: newIno(), mode: mode, nlink: 1, atim: t, mtim: t, ctim: t}
	if mode.IsDir() {
		n.kids = map[string]*node{}
	}
	return n, 0
}

// create adds a new node of mode under r's name to r's parent, if the parent
// takes new entries (createIn), and gives the parent the node's times.
func (f *FS) create(r found, mode fs.FileMode) (*node, Errno) {
	if e := createIn(r.parent); e != 0 {
		return nil, e
	}
	n, errno := f.newNode(mode)
	if errno != 0 {
		return nil, errno
	}
	r.parent.kids[r.name] = n
	r.parent.mtim, r.parent.ctim = n.mtim, n.mtim
	return n, 0
}

// removable is the errno for taking entry n out of directory parent: neither
// may be read-only.
func removable(parent, n *node) Errno {
	if e := roErr(parent); e != 0 {
		return e
	}
	return roErr(n)
}

// charge sets n's charged size to size, failing with ENOSPC past the cap.
func (f *FS) charge(n *node, size int64) Errno {
	if size-n.counted > f.maxBytes-f.used {
		f.capHit = true
		return ENOSPC
	}
	f.used += size - n.counted
	n.counted = size
	return 0
}

// own makes n's data private to the job (charging all of it) before a change.
func (f *FS) own(n *node) Errno {
	if !n.shared {
		return 0
	}
	if errno := f.charge(n, int64(len(n.data))); errno != 0 {
		return errno
	}
	chunkify(n, int64(len(n.data)))
	return 0
}

// release frees n once no entry names it and no handle holds it.
func (f *FS) release(n *node) {
	if n.nlink <= 0 && n.opens <= 0 && n.lock != asset && !n.released {
		n.released = true
		f.used -= n.counted
		n.counted = 0
		n.data, n.chunks, n.size = nil, nil, 0
		f.nodes--
	}
}

// unlinkNode removes an entry naming n.
func (f *FS) unlinkNode(parent *node, name string, n *node) {
	delete(parent.kids, name)
	n.nlink--
	t := f.now()
	parent.mtim, parent.ctim, n.ctim = t, t, t
	f.release(n)
}

func stat(n *node) sys.Stat_t {
	st := sys.Stat_t{Dev: 1, Ino: n.ino, Mode: n.mode, Nlink: uint64(max(n.nlink, 0)),
		Atim: n.atim, Mtim: n.mtim, Ctim: n.ctim}
	switch {
	case n.isRegular():
		st.Size = fileSize(n)
	case n.isSymlink():
		st.Size = int64(len(n.target))
	case n.isDir():
		st.Nlink = 2
		for _, k := range n.kids {
			if k.isDir() {
				st.Nlink++
			}
		}
	}
	return st
}

// OpenFile implements experimentalsys.FS.
func (v *view) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, Errno) {
	f := v.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	acc := flag & (experimentalsys.O_RDONLY | experimentalsys.O_RDWR | experimentalsys.O_WRONLY)
	creat := flag&experimentalsys.O_CREAT != 0
	excl := creat && flag&experimentalsys.O_EXCL != 0
	follow := flag&experimentalsys.O_NOFOLLOW == 0 && !excl
	r, errno := v.lookup(p, follow)
	if errno != 0 {
		return nil, errno
	}
	n := r.node
	if n == nil {
		if !creat {
			return nil, experimentalsys.ENOENT
		}
		if r.slash || flag&experimentalsys.O_DIRECTORY != 0 {
			return nil, experimentalsys.EISDIR
		}
		if perm = perm.Perm(); perm == 0 {
			perm = 0o644
		}
		if n, errno = f.create(r, perm); errno != 0 {
			return nil, errno
		}
	} else {
		if excl {
			return nil, experimentalsys.EEXIST
		}
		if n.isSymlink() {
			// Only reached with O_NOFOLLOW (POSIX: ELOOP).
			if flag&experimentalsys.O_DIRECTORY != 0 {
				return nil, experimentalsys.ENOTDIR
			}
			return nil, experimentalsys.ELOOP
		}
		if n.isDir() {
			if acc != experimentalsys.O_RDONLY || flag&experimentalsys.O_TRUNC != 0 {
				return nil, experimentalsys.EISDIR
			}
		} else if flag&experimentalsys.O_DIRECTORY != 0 || r.slash {
			return nil, experimentalsys.ENOTDIR
		}
		if acc != experimentalsys.O_RDONLY || flag&(experimentalsys.O_TRUNC|experimentalsys.O_APPEND) != 0 {
			if e := roErr(n); e != 0 {
				return nil, e
			}
		}
		if flag&experimentalsys.O_TRUNC != 0 && fileSize(n) > 0 {
			f.used -= n.counted
			n.counted = 0
			n.data, n.shared, n.chunks, n.size = nil, false, nil, 0
			t := f.now()
			n.mtim, n.ctim = t, t
		}
	}
	h := &file{fs: f, n: n,
		read:   acc != experimentalsys.O_WRONLY,
		write:  acc != experimentalsys.O_RDONLY || flag&(experimentalsys.O_APPEND|experimentalsys.O_TRUNC) != 0 && !n.isDir(),
		append: flag&experimentalsys.O_APPEND != 0 && !n.isDir()}
	h.seeker = seeker[int64]{h: h}
	h.dir = n.isDir()
	if n.lock != asset {
		n.opens++ // asset nodes are shared by other jobs and never change
	}
	return h, 0
}

// Lstat implements experimentalsys.FS.
func (v *view) Lstat(p string) (sys.Stat_t, Errno) { return v.stat(p, false) }

// Stat implements experimentalsys.FS.
func (v *view) Stat(p string) (sys.Stat_t, Errno) { return v.stat(p, true) }

func (v *view) stat(p string, follow bool) (sys.Stat_t, Errno) {
	v.fs.mu.Lock()
	defer v.fs.mu.Unlock()
	r, errno := v.lookupNode(p, follow)
	if errno != 0 {
		return sys.Stat_t{}, errno
	}
	if r.slash && !r.node.isDir() {
		return sys.Stat_t{}, experimentalsys.ENOTDIR
	}
	return stat(r.node), 0
}

// Mkdir implements experimentalsys.FS.
func (v *view) Mkdir(p string, perm fs.FileMode) Errno {
	f := v.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	r, errno := v.lookupEntry(p)
	if errno != 0 {
		return errno
	}
	if r.node != nil {
		return experimentalsys.EEXIST
	}
	if perm = perm.Perm(); perm == 0 {
		perm = 0o755
	}
	_, errno = f.create(r, fs.ModeDir|perm)
	return errno
}

// Chmod implements experimentalsys.FS. Permission bits are kept and reported
// but not enforced (the guest is the only user).
func (v *view) Chmod(p string, perm fs.FileMode) Errno {
	f := v.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	r, errno := v.lookupNode(p, true)
	if errno != 0 {
		return errno
	}
	if e := roErr(r.node); e != 0 {
		return e
	}
	r.node.mode = r.node.mode.Type() | perm.Perm()
	r.node.ctim = f.now()
	return 0
}

// Rename implements experimentalsys.FS.
func (v *view) Rename(from, to string) Errno {
	f := v.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	src, errno := v.lookupEntry(from)
	if errno != 0 {
		return errno
	}
	dst, errno := v.lookupEntry(to)
	if errno != 0 {
		return errno
	}
	if src.node == nil {
		return experimentalsys.ENOENT
	}
	if src.parent == nil || dst.parent == nil {
		return experimentalsys.EINVAL // renaming the preopen itself (Linux: EBUSY, which WASI lacks)
	}
	n := src.node
	if !n.isDir() && (src.slash || dst.slash) {
		return experimentalsys.ENOTDIR
	}
	if e := removable(src.parent, n); e != 0 {
		return e
	}
	if e := createIn(dst.parent); e != 0 {
		return e
	}
	if old := dst.node; old != nil {
		if old == n {
			return 0
		}
		switch {
		case n.isDir() && !old.isDir():
			return experimentalsys.ENOTDIR
		case !n.isDir() && old.isDir():
			return experimentalsys.EISDIR
		case old.isDir() && len(old.kids) > 0:
			return experimentalsys.ENOTEMPTY
		}
		if e := roErr(old); e != 0 {
			return e
		}
	}
	if n.isDir() {
		// A directory cannot move below itself.
		if below(v.root, dst.parent, n) {
			return experimentalsys.EINVAL
		}
	}
	if old := dst.node; old != nil {
		f.unlinkNode(dst.parent, dst.name, old)
	}
	delete(src.parent.kids, src.name)
	dst.parent.kids[dst.name] = n
	t := f.now()
	src.parent.mtim, src.parent.ctim, dst.parent.mtim, dst.parent.ctim, n.ctim = t, t, t, t, t
	return 0
}

// below reports whether d is n or lies below n (searching from root).
func below(root, d, n *node) bool {
	if d == n {
		return true
	}
	var walk func(cur *node) bool
	walk = func(cur *node) bool {
		for _, k := range cur.kids {
			if k == d {
				return true
			}
			if k.isDir() && k.lock == writable && walk(k) {
				return true
			}
		}
		return false
	}
	return walk(n)
}

// Rmdir implements experimentalsys.FS.
func (v *view) Rmdir(p string) Errno {
	return v.remove(p, true)
}

// Unlink implements experimentalsys.FS.
func (v *view) Unlink(p string) Errno {
	return v.remove(p, false)
}

// remove takes the entry p names out of its directory: an empty directory
// when dir (rmdir), anything but a directory otherwise (unlink).
func (v *view) remove(p string, dir bool) Errno {
	f := v.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	r, errno := v.lookupEntry(p)
	if errno != 0 {
		return errno
	}
	n := r.node
	switch {
	case n == nil:
		return experimentalsys.ENOENT
	case dir && r.parent == nil:
		return experimentalsys.EINVAL
	case dir && !n.isDir():
		return experimentalsys.ENOTDIR
	case !dir && n.isDir():
		return experimentalsys.EISDIR
	case !dir && r.slash:
		return experimentalsys.ENOTDIR
	}
	if e := removable(r.parent, n); e != 0 {
		return e
	}
	if dir && len(n.kids) > 0 {
		return experimentalsys.ENOTEMPTY
	}
	f.unlinkNode(r.parent, r.name, n)
	return 0
}

// Link implements experimentalsys.FS (hard links of files).
func (v *view) Link(oldPath, newPath string) Errno {
	f := v.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	src, errno := v.lookupEntry(oldPath)
	if errno != 0 {
		return errno
	}
	if src.node == nil {
		return experimentalsys.ENOENT
	}
	if src.node.isDir() {
		return experimentalsys.EPERM
	}
	dst, errno := v.lookupEntry(newPath)
	if errno != 0 {
		return errno
	}
	switch {
	case dst.node != nil:
		return experimentalsys.EEXIST
	case src.slash:
		return experimentalsys.ENOTDIR
	case dst.slash:
		return experimentalsys.ENOENT // Linux: a new name with "/" names a missing directory
	}
	if e := createIn(dst.parent); e != 0 {
		return e
	}
	if e := roErr(src.node); e != 0 {
		return e
	}
	dst.parent.kids[dst.name] = src.node
	src.node.nlink++
	t := f.now()
	src.node.ctim, dst.parent.mtim, dst.parent.ctim = t, t, t
	return 0
}

// Symlink implements experimentalsys.FS. The target is stored as given and
// resolved, within the view, only when followed; absolute targets are refused
// (EPERM), as they could only point out of the preopen.
func (v *view) Symlink(target, linkName string) Errno {
	f := v.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	if target == "" || len(target) > MaxSymlinkLen || strings.IndexByte(target, 0) >= 0 {
		return experimentalsys.EINVAL
	}
	if strings.HasPrefix(target, "/") {
		return experimentalsys.EPERM
	}
	r, errno := v.lookupEntry(linkName)
	if errno != 0 {
		return errno
	}
	if r.node != nil {
		return experimentalsys.EEXIST
	}
	if r.slash {
		return experimentalsys.ENOENT
	}
	n, errno := f.create(r, fs.ModeSymlink|0o777)
	if errno != 0 {
		return errno
	}
	n.target = target
	return 0
}

// Readlink implements experimentalsys.FS.
func (v *view) Readlink(p string) (string, Errno) {
	v.fs.mu.Lock()
	defer v.fs.mu.Unlock()
	r, errno := v.lookupNode(p, false)
	if errno != 0 {
		return "", errno
	}
	if !r.node.isSymlink() {
		return "", experimentalsys.EINVAL
	}
	return r.node.target, 0
}

// Utimens implements experimentalsys.FS.
func (v *view) Utimens(p string, atim, mtim int64) Errno {
	f := v.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	r, errno := v.lookupNode(p, true)
	if errno != 0 {
		return errno
	}
	return f.utimens(r.node, atim, mtim)
}

func (f *FS) utimens(n *node, atim, mtim int64) Errno {
	if e := roErr(n); e != 0 {
		return e
	}
	if atim != experimentalsys.UTIME_OMIT {
		n.atim = atim
	}
	if mtim != experimentalsys.UTIME_OMIT {
		n.mtim = mtim
	}
	n.ctim = f.now()
	return 0
}

// sortedNames lists a directory's entries in name order.
func sortedNames(d *node) []string {
	if d.sorted != nil {
		return d.sorted // immutable tree directory
	}
	names := make([]string, 0, len(d.kids))
	for name := range d.kids {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
