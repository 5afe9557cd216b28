package executor

import (
	"archive/tar"
	"bytes"
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"

	"github.com/wasmwizard/wasmwizard/worker/jobfs"
)

// Files is what a job brings into its filesystem and takes out of it. A
// request without Files gives the guest no filesystem at all.
type Files struct {
	Inputs []Input
	Assets []Asset
	// Preopens are the directories the guest gets, named as given; none
	// means ["/"].
	Preopens []string
	// Collect are the patterns of the files kept after the run
	// (jobfs.CompilePattern), at most MaxArtifactBytes of them in total.
	Collect          []string
	MaxFSBytes       int64
	MaxArtifactBytes int64
}

// Input is one input file of a job.
type Input struct {
	Path string
	// Mode is "ro" (the guest gets EACCES on changes) or "rw".
	Mode    string
	Content []byte
}

// Asset is one of the module's asset trees: the tar whose SHA-256 is
// SHA256 (hex), in the local file TarPath, mounted read-only at Mount.
type Asset struct {
	Mount   string
	SHA256  string
	TarPath string
}

// Artifact is a file of the job kept after its run.
type Artifact struct {
	Path    string
	Content []byte
}

// buildFS makes the job's filesystem: its asset trees from the cache (shared,
// never copied), its inputs (borrowed) and a writable layer of MaxFSBytes.
func buildFS(trees *TreeCache, f *Files, now func() int64) (*jobfs.FS, error) {
	mounts := make([]jobfs.Mount, 0, len(f.Assets))
	for _, a := range f.Assets {
		t, err := trees.Get(a.SHA256, a.TarPath)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, jobfs.Mount{Path: a.Mount, Tree: t})
	}
	inputs := make([]jobfs.Input, 0, len(f.Inputs))
	for _, in := range f.Inputs {
		inputs = append(inputs, jobfs.Input{Path: in.Path, Data: in.Content, ReadOnly: in.Mode == "ro"})
	}
	return jobfs.New(jobfs.Options{MaxBytes: f.MaxFSBytes, Now: now}, mounts, inputs)
}

// fsConfig mounts the job's preopens exactly as named.
func fsConfig(jfs *jobfs.FS, f *Files) (wazero.FSConfig, error) {
	preopens := f.Preopens
	if len(preopens) == 0 {
		preopens = []string{"/"}
	}
	return jfs.FSConfig(wazero.NewFSConfig(), preopens)
}

// collect copies the files matching the job's patterns out of its
// filesystem, at most MaxArtifactBytes in total (exact to the byte).
func collect(jfs *jobfs.FS, f *Files) ([]Artifact, bool, error) {
	if len(f.Collect) == 0 {
		return nil, false, nil
	}
	arts, truncated, err := jfs.Collect(f.Collect, f.MaxArtifactBytes)
	if err != nil {
		return nil, false, err
	}
	out := make([]Artifact, 0, len(arts))
	for _, a := range arts {
		b := make([]byte, 0, a.Size) // within MaxArtifactBytes
		buf := bytes.NewBuffer(b)
		if _, err := io.Copy(buf, a.Open()); err != nil {
			return nil, false, err
		}
		out = append(out, Artifact{Path: a.Path, Content: buf.Bytes()})
	}
	return out, truncated, nil
}

// MaxTreeEntries bounds the entries of one asset tree's tar.
const MaxTreeEntries = 100_000

// TreeCache keeps parsed asset trees in memory by the SHA-256 of their tar,
// up to a number of bytes of file contents (least recently used trees are
// dropped first; a job still using a dropped tree keeps it until it ends).
// Every job of the process that mounts a tree shares the one parsed copy.
// It is safe for concurrent use.
type TreeCache struct {
	mu       sync.Mutex
	maxBytes int64
	total    int64
	lru      *list.List // of *treeEntry, most recent first
	byKey    map[string]*list.Element
	parses   int
}

type treeEntry struct {
	key  string
	tree *jobfs.Tree
}

// NewTreeCache returns a cache bounded by maxBytes of file contents.
func NewTreeCache(maxBytes int64) *TreeCache {
	return &TreeCache{maxBytes: maxBytes, lru: list.New(), byKey: map[string]*list.Element{}}
}

// Parses is how many trees the cache has parsed (its misses).
func (c *TreeCache) Parses() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.parses
}

// Get returns the tree of the tar with this SHA-256, parsing the file at
// path on a miss (and checking its hash). A tree larger than the whole cache
// is refused.
func (c *TreeCache) Get(sum, path string) (*jobfs.Tree, error) {
	c.mu.Lock()
	if el, ok := c.byKey[sum]; ok {
		c.lru.MoveToFront(el)
		t := el.Value.(*treeEntry).tree
		c.mu.Unlock()
		return t, nil
	}
	c.mu.Unlock()
	t, err := parseTarFile(path, sum, c.maxBytes)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.parses++
	if el, ok := c.byKey[sum]; ok { // parsed meanwhile by another job
		return el.Value.(*treeEntry).tree, nil
	}
	c.byKey[sum] = c.lru.PushFront(&treeEntry{key: sum, tree: t})
	c.total += t.Bytes()
	for el := c.lru.Back(); el != nil && c.total > c.maxBytes; {
		prev := el.Prev()
		if e := el.Value.(*treeEntry); e.key != sum {
			c.lru.Remove(el)
			delete(c.byKey, e.key)
			c.total -= e.tree.Bytes()
		}
		el = prev
	}
	return t, nil
}

// parseTarFile reads a tar (the platform's normalised asset tar) into a
// tree of at most maxBytes of file contents, checking the file's SHA-256.
func parseTarFile(path, sum string, maxBytes int64) (*jobfs.Tree, error) {
	f, err := os.Open(path) //nolint:gosec // the worker's own content-addressed store
	if err != nil {
		return nil, fmt.Errorf("asset tree %s: %w", sum, err)
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	t, err := ParseTar(io.TeeReader(f, h), maxBytes)
	if err != nil {
		return nil, fmt.Errorf("asset tree %s: %w", sum, err)
	}
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("asset tree %s: %w", sum, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return nil, fmt.Errorf("asset tree %s: the file's hash is %s", sum, got)
	}
	return t, nil
}

// ParseTar reads a tar of directories, regular files, symbolic links and
// hard links (to an earlier file: they share its bytes) into a tree holding at most maxBytes of file contents and MaxTreeEntries
// entries. Other entry types are refused (the API refuses them at upload).
func ParseTar(r io.Reader, maxBytes int64) (*jobfs.Tree, error) {
	tr := tar.NewReader(r)
	var entries []jobfs.TreeEntry
	var total int64
	regular := map[string][]byte{} // for hard links, which share a file's bytes
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(entries) >= MaxTreeEntries {
			return nil, fmt.Errorf("more than %d entries", MaxTreeEntries)
		}
		perm := fs.FileMode(hdr.Mode) & fs.ModePerm
		hdr.Name = strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "./"), "/")
		if hdr.Name == "" || hdr.Name == "." {
			continue // the root
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			entries = append(entries, jobfs.TreeEntry{Path: hdr.Name, Mode: fs.ModeDir | perm})
		case tar.TypeReg:
			if hdr.Size < 0 || hdr.Size > maxBytes-total {
				return nil, fmt.Errorf("more than %d bytes of files", maxBytes)
			}
			data := make([]byte, hdr.Size)
			if _, err := io.ReadFull(tr, data); err != nil {
				return nil, err
			}
			total += hdr.Size
			regular[hdr.Name] = data
			entries = append(entries, jobfs.TreeEntry{Path: hdr.Name, Mode: perm, Data: data})
		case tar.TypeLink:
			data, ok := regular[strings.TrimPrefix(hdr.Linkname, "./")]
			if !ok {
				return nil, fmt.Errorf("hard link %q to %q, which is not an earlier file", hdr.Name, hdr.Linkname)
			}
			entries = append(entries, jobfs.TreeEntry{Path: hdr.Name, Mode: perm, Data: data})
		case tar.TypeSymlink:
			entries = append(entries, jobfs.TreeEntry{Path: hdr.Name, Mode: fs.ModeSymlink | perm, Data: []byte(hdr.Linkname)})
		default:
			return nil, fmt.Errorf("entry %q of type %q is not a directory, file or symbolic link", hdr.Name, hdr.Typeflag)
		}
	}
	return jobfs.NewTree(entries, maxBytes)
}
