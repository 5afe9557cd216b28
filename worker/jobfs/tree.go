package jobfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync/atomic"
)

// Limits on names, shared by every tree and job filesystem. They bound the
// memory a hostile path or tree can make us hold per entry.
const (
	// MaxNameLen is the longest path component (POSIX NAME_MAX).
	MaxNameLen = 255
	// MaxPathLen is the longest path accepted anywhere (POSIX PATH_MAX).
	MaxPathLen = 4096
	// MaxSymlinkLen is the longest symbolic link target.
	MaxSymlinkLen = 4095
	// maxSymlinkFollows bounds symbolic link expansion during a lookup
	// (Linux's limit); one more is ELOOP.
	maxSymlinkFollows = 40
)

// nextIno numbers every node of every tree and job filesystem, so (Dev, Ino)
// pairs never collide, even between a shared asset tree and the job's own files.
var nextIno atomic.Uint64

func newIno() uint64 { return nextIno.Add(1) }

// lockKind says who may change a node.
type lockKind uint8

const (
	writable lockKind = iota // the job's own files and directories
	roInput                  // an input file given with mode "ro": EACCES
	asset                    // part of a shared asset Tree: EROFS
)

// node is a file, directory or symbolic link. Nodes of a Tree are immutable
// after NewTree returns and are shared, without locking, by every job
// filesystem that mounts the tree; job nodes are guarded by their FS's mutex.
type node struct {
	ino  uint64
	mode fs.FileMode // type bits | permission bits
	lock lockKind

	data   []byte   // borrowed contents (an input or tree file) while shared
	shared bool     // data is borrowed; chunked (copied) before the first change
	chunks [][]byte // the job's own contents (see content.go)
	size   int64    // size of the job's own contents
	target string   // symbolic link target

	kids   map[string]*node // directory entries
	sorted []string         // Tree directories only: entry names, sorted

	nlink    int   // directory entries naming this node (job nodes)
	opens    int   // open handles (job nodes)
	counted  int64 // bytes of this node charged to the FS's cap
	released bool  // freed: no entry names it and no handle holds it

	atim, mtim, ctim int64
}

func (n *node) isDir() bool     { return n.mode.IsDir() }
func (n *node) isSymlink() bool { return n.mode&fs.ModeSymlink != 0 }
func (n *node) isRegular() bool { return n.mode.IsRegular() }

// Tree is an immutable, read-only directory tree held in memory: a module's
// asset tree. One Tree is mounted by many job filesystems at once; they
// reference its nodes and never copy them, so its bytes are held once per
// worker whatever the number of jobs using it. The zero Tree is not usable;
// build one with NewTree or TreeFromFS.
type Tree struct {
	root  *node
	bytes int64
	files int
}

// Bytes is the total size of the tree's regular files.
func (t *Tree) Bytes() int64 { return t.bytes }

// Files is the number of regular files in the tree.
func (t *Tree) Files() int { return t.files }

// TreeEntry is one entry given to NewTree.
type TreeEntry struct {
	// Path is slash-separated, relative to the tree's root (a leading "/" is
	// allowed). It must be clean: no ".", ".." or empty components.
	Path string
	// Mode is fs.ModeDir for a directory, fs.ModeSymlink for a symbolic
	// link, zero for a regular file; permission bits are kept (0 gives 0o444
	// for files and links, 0o555 for directories).
	Mode fs.FileMode
	// Data is the file's contents (kept, not copied: the caller must not
	// change it afterwards) or the link's target.
	Data []byte
}

// ErrInvalidTree reports a tree entry that cannot be accepted.
var ErrInvalidTree = errors.New("jobfs: invalid tree")

// treeBuilder builds an immutable tree; parents are created as needed.
type treeBuilder struct {
	root  *node
	bytes int64
	files int
	max   int64
	now   int64
}

func newTreeBuilder(maxBytes, now int64) *treeBuilder {
	return &treeBuilder{root: newDirNode(0o555, asset, now), max: maxBytes, now: now}
}

func newDirNode(perm fs.FileMode, lock lockKind, now int64) *node {
	return &node{ino: newIno(), mode: fs.ModeDir | perm&fs.ModePerm, lock: lock,
		kids: map[string]*node{}, nlink: 1, atim: now, mtim: now, ctim: now}
}

// splitClean validates a slash-separated relative path and returns its
// components. It rejects ".", "..", empty components and over-long names.
func splitClean(p string) ([]string, error) {
	p = strings.TrimPrefix(p, "/")
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return nil, nil
	}
	if len(p) > MaxPathLen {
		return nil, fmt.Errorf("%w: path longer than %d bytes", ErrInvalidTree, MaxPathLen)
	}
	parts := strings.Split(p, "/")
	for _, c := range parts {
		if c == "" || c == "." || c == ".." || len(c) > MaxNameLen || strings.IndexByte(c, 0) >= 0 {
			return nil, fmt.Errorf("%w: bad path %q", ErrInvalidTree, p)
		}
	}
	return parts, nil
}

func (b *treeBuilder) dir(parts []string) (*node, error) {
	d := b.root
	for _, c := range parts {
		k, ok := d.kids[c]
		if !ok {
			k = newDirNode(0o555, asset, b.now)
			d.kids[c] = k
		}
		if !k.isDir() {
			return nil, fmt.Errorf("%w: %q is both a file and a directory", ErrInvalidTree, strings.Join(parts, "/"))
		}
		d = k
	}
	return d, nil
}

func (b *treeBuilder) add(e TreeEntry) error {
	parts, err := splitClean(e.Path)
	if err != nil {
		return err
	}
	if e.Mode.IsDir() {
		d, err := b.dir(parts)
		if err == nil && e.Mode.Perm() != 0 {
			d.mode = fs.ModeDir | e.Mode.Perm()
		}
		return err
	}
	if len(parts) == 0 {
		return fmt.Errorf("%w: a file cannot be the root", ErrInvalidTree)
	}
	d, err := b.dir(parts[:len(parts)-1])
	if err != nil {
		return err
	}
	name := parts[len(parts)-1]
	if _, dup := d.kids[name]; dup {
		return fmt.Errorf("%w: %q given twice", ErrInvalidTree, e.Path)
	}
	perm := e.Mode.Perm()
	if perm == 0 {
		perm = 0o444
	}
	n := &node{ino: newIno(), lock: asset, nlink: 1, atim: b.now, mtim: b.now, ctim: b.now}
	switch {
	case e.Mode&fs.ModeSymlink != 0:
		if len(e.Data) == 0 || len(e.Data) > MaxSymlinkLen {
			return fmt.Errorf("%w: bad link target for %q", ErrInvalidTree, e.Path)
		}
		n.mode = fs.ModeSymlink | 0o777
		n.target = string(e.Data)
	case e.Mode.Type() == 0:
		if int64(len(e.Data)) > b.max-b.bytes {
			return fmt.Errorf("%w: more than %d bytes", ErrInvalidTree, b.max)
		}
		n.mode = perm
		n.data = e.Data
		n.shared = true
		b.bytes += int64(len(e.Data))
		b.files++
	default:
		return fmt.Errorf("%w: %q: unsupported file type %v", ErrInvalidTree, e.Path, e.Mode.Type())
	}
	d.kids[name] = n
	return nil
}

func (b *treeBuilder) finish() *Tree {
	var seal func(*node)
	seal = func(d *node) {
		d.sorted = make([]string, 0, len(d.kids))
		for name, k := range d.kids {
			d.sorted = append(d.sorted, name)
			if k.isDir() {
				seal(k)
			}
		}
		sort.Strings(d.sorted)
	}
	seal(b.root)
	return &Tree{root: b.root, bytes: b.bytes, files: b.files}
}

// NewTree builds an immutable tree from entries, holding at most maxBytes of
// file contents. Parent directories are implied. File contents are kept by
// reference.
func NewTree(entries []TreeEntry, maxBytes int64) (*Tree, error) {
	b := newTreeBuilder(maxBytes, 0)
	for _, e := range entries {
		if err := b.add(e); err != nil {
			return nil, err
		}
	}
	return b.finish(), nil
}

// TreeFromMap builds a tree of regular files from path → contents.
func TreeFromMap(files map[string][]byte) (*Tree, error) {
	entries := make([]TreeEntry, 0, len(files))
	var total int64
	for p, data := range files {
		entries = append(entries, TreeEntry{Path: p, Data: data})
		total += int64(len(data))
	}
	return NewTree(entries, total)
}

// TreeFromFS copies fsys (directories, regular files and, when fsys
// implements fs.ReadLinkFS, symbolic links) into an immutable tree, reading
// at most maxBytes of file contents.
func TreeFromFS(fsys fs.FS, maxBytes int64) (*Tree, error) {
	b := newTreeBuilder(maxBytes, 0)
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := TreeEntry{Path: p, Mode: info.Mode()}
		switch {
		case d.IsDir():
		case d.Type()&fs.ModeSymlink != 0:
			rl, ok := fsys.(fs.ReadLinkFS)
			if !ok {
				return fmt.Errorf("%w: %q: symbolic link in a file system without ReadLink", ErrInvalidTree, p)
			}
			t, err := rl.ReadLink(p)
			if err != nil {
				return err
			}
			e.Data = []byte(t)
		case d.Type() == 0:
			if info.Size() > maxBytes-b.bytes {
				return fmt.Errorf("%w: more than %d bytes", ErrInvalidTree, maxBytes)
			}
			f, err := fsys.Open(p)
			if err != nil {
				return err
			}
			// Read at most the remaining budget plus one byte, whatever
			// the size the file claimed.
			data, err := io.ReadAll(io.LimitReader(f, maxBytes-b.bytes+1))
			_ = f.Close()
			if err != nil {
				return err
			}
			e.Data = data
		default:
			return fmt.Errorf("%w: %q: unsupported file type %v", ErrInvalidTree, p, d.Type())
		}
		return b.add(e)
	})
	if err != nil {
		return nil, err
	}
	return b.finish(), nil
}

// cleanAbs cleans a host-given absolute job path ("/a/b"), returning its
// components; ok is false for paths that are not absolute or contain "..".
func cleanAbs(p string) ([]string, bool) {
	if !strings.HasPrefix(p, "/") || len(p) > MaxPathLen {
		return nil, false
	}
	c := path.Clean(p)
	if c == "/" {
		return nil, true
	}
	parts, err := splitClean(c)
	return parts, err == nil
}
