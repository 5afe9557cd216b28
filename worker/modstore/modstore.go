// Package modstore is the worker's local content-addressed store of module
// bytes.
//
// Each module is fetched from Postgres when first needed, verified against
// its SHA-256 and kept as a file that sandbox children read directly.
//
// The store is a cache bounded by bytes: past its bound it removes the
// least recently used files that no run is using (a later run fetches the
// module again), and Sweep removes the files of modules that no account
// holds any more.
package modstore

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/wasmwizard/wasmwizard/worker/diskcache"
)

// DefaultMaxBytes bounds a store made by New.
const DefaultMaxBytes = 1 << 30

// FetchTo streams the bytes stored under a SHA-256 (hex) to w.
type FetchTo func(ctx context.Context, sum string, w io.Writer) (int64, error)

// NewStreamed is a store of other content-addressed files than modules
// (module asset trees: ext ".tar"), fetched by streaming them to disk, so a
// large file is never held in memory.
func NewStreamed(dir, ext string, fetchTo FetchTo, maxBytes int64) (*Store, error) {
	s, err := NewBounded(dir, nil, maxBytes)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.ext, s.fetchTo = ext, fetchTo
	s.entries, s.total = map[string]*entry{}, 0
	s.lru.Init()
	s.mu.Unlock()
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// Fetch returns the bytes stored under a SHA-256.
type Fetch func(ctx context.Context, sum []byte) ([]byte, error)

// Gone returns those of sums that no live module has any more.
type Gone func(ctx context.Context, sums [][]byte) ([][]byte, error)

// Store keeps modules under dir/<first two hex digits>/<sha256>.wasm.
type Store struct {
	// ext is the files' extension (".wasm"; ".tar" for asset trees), and
	// fetchTo, when set, streams a file's bytes instead of fetch.
	ext      string
	fetchTo  FetchTo
	dir      string
	fetch    Fetch
	maxBytes int64
	group    singleflight.Group

	mu      sync.Mutex
	entries map[string]*entry // by hex SHA-256
	lru     *list.List        // of *entry, most recently used first
	total   int64             // bytes of the files in entries
}

type entry struct {
	name string
	size int64
	pins int  // runs using the file now
	gone bool // its module was deleted: remove the file once unpinned
	elem *list.Element
}

// New is NewBounded with DefaultMaxBytes.
func New(dir string, fetch Fetch) (*Store, error) { return NewBounded(dir, fetch, DefaultMaxBytes) }

// NewBounded creates dir if needed (private to the worker's user) and takes
// stock of the modules already there, evicting the least recently used
// past maxBytes.
func NewBounded(dir string, fetch Fetch, maxBytes int64) (*Store, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("module store: bound of %d bytes", maxBytes)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("module store: %w", err)
	}
	s := &Store{dir: dir, fetch: fetch, ext: ".wasm", maxBytes: maxBytes, entries: map[string]*entry{}, lru: list.New()}
	if err := s.load(); err != nil {
		return nil, fmt.Errorf("module store: %w", err)
	}
	return s, nil
}

// load indexes the files left by an earlier run, the most recently used
// (by the file system's access and modification times) first, and removes
// temporary files that a crash left behind.
func (s *Store) load() error {
	type found struct {
		name string
		size int64
		used time.Time
	}
	var all []found
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return err
	}
	defer func() { _ = root.Close() }()
	err = fs.WalkDir(root.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		base := d.Name()
		if strings.HasSuffix(base, ".tmp") {
			_ = root.Remove(path)
			return nil
		}
		name, ok := strings.CutSuffix(base, s.ext)
		if !ok || len(name) != 2*sha256.Size || path != filepath.Join(name[:2], base) {
			return nil // not ours
		}
		info, err := d.Info()
		if err != nil {
			return nil //nolint:nilerr // gone meanwhile
		}
		all = append(all, found{name, info.Size(), diskcache.LastUse(info)})
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(all, func(i, j int) bool { return all[i].used.After(all[j].used) })
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range all {
		e := &entry{name: f.name, size: f.size}
		e.elem = s.lru.PushBack(e)
		s.entries[f.name] = e
		s.total += f.size
	}
	s.evictLocked()
	return nil
}

func (s *Store) path(name string) string { return filepath.Join(s.dir, name[:2], name+s.ext) }

// Acquire returns the file holding the module with this SHA-256, fetching
// it first if it is not here. The file stays until release is called (call
// it once the run no longer reads the file). Concurrent calls for one
// module fetch it once.
func (s *Store) Acquire(ctx context.Context, sum []byte) (path string, release func(), err error) {
	if len(sum) != sha256.Size {
		return "", nil, fmt.Errorf("module store: bad hash length %d", len(sum))
	}
	name := hex.EncodeToString(sum)
	path = s.path(name)
	for range 3 {
		if e := s.pin(name); e != nil {
			if _, err := os.Stat(path); err == nil {
				return path, s.releaser(e), nil
			}
			// Removed behind our back: forget it and fetch it again.
			s.mu.Lock()
			e.pins--
			s.dropLocked(e)
			s.mu.Unlock()
		}
		size, err, _ := s.group.Do(name, func() (any, error) { return s.download(ctx, name, sum) })
		if err != nil {
			return "", nil, err
		}
		s.mu.Lock()
		e, ok := s.entries[name]
		if !ok {
			e = &entry{name: name, size: size.(int64)}
			e.elem = s.lru.PushFront(e)
			s.entries[name] = e
			s.total += e.size
		}
		e.pins++
		e.gone = false
		s.lru.MoveToFront(e.elem)
		s.evictLocked()
		s.mu.Unlock()
		if _, err := os.Stat(path); err == nil {
			return path, s.releaser(e), nil
		}
		s.releaser(e)()
	}
	return "", nil, fmt.Errorf("module store: %s keeps disappearing", name)
}

// Path is Acquire for callers that do not release: the file may be evicted
// at any time after it returns.
func (s *Store) Path(ctx context.Context, sum []byte) (string, error) {
	path, release, err := s.Acquire(ctx, sum)
	if err != nil {
		return "", err
	}
	release()
	return path, nil
}

// pin marks a stored module in use, or returns nil if it is not stored.
func (s *Store) pin(name string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[name]
	if !ok {
		return nil
	}
	e.pins++
	s.lru.MoveToFront(e.elem)
	return e
}

func (s *Store) releaser(e *entry) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			e.pins--
			if e.pins == 0 && e.gone {
				s.dropLocked(e)
			}
			s.evictLocked()
		})
	}
}

// download fetches a module, checks it and writes it under its name
// atomically; it returns its size.
func (s *Store) download(ctx context.Context, name string, sum []byte) (int64, error) {
	path := s.path(name)
	if info, err := os.Stat(path); err == nil {
		return info.Size(), nil
	}
	if s.fetchTo != nil {
		return s.downloadStreamed(ctx, name, sum)
	}
	content, err := s.fetch(ctx, sum)
	if err != nil {
		return 0, err
	}
	got := sha256.Sum256(content)
	if !bytes.Equal(got[:], sum) {
		return 0, fmt.Errorf("module store: content of %s has hash %x", name, got)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return 0, fmt.Errorf("module store: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), name+".*.tmp")
	if err != nil {
		return 0, fmt.Errorf("module store: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(content); err != nil {
		_ = tmp.Close()
		return 0, fmt.Errorf("module store: write: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("module store: write: %w", err)
	}
	// Rename is atomic: a reader sees the whole module or none.
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, fmt.Errorf("module store: %w", err)
	}
	return int64(len(content)), nil
}

// downloadStreamed is download for a store with fetchTo: the bytes go to a
// temporary file as they come, hashed on the way.
func (s *Store) downloadStreamed(ctx context.Context, name string, sum []byte) (int64, error) {
	path := s.path(name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return 0, fmt.Errorf("file store: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), name+".*.tmp")
	if err != nil {
		return 0, fmt.Errorf("file store: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	h := sha256.New()
	n, err := s.fetchTo(ctx, name, io.MultiWriter(tmp, h))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("file store: fetch %s: %w", name, err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, sum) {
		return 0, fmt.Errorf("file store: content of %s has hash %x", name, got)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, fmt.Errorf("file store: %w", err)
	}
	return n, nil
}

// evictLocked removes the least recently used unpinned files until the
// store is within its bound. Pinned files stay: the store passes its bound
// by at most the modules in use at once.
func (s *Store) evictLocked() {
	for el := s.lru.Back(); el != nil && s.total > s.maxBytes; {
		e := el.Value.(*entry)
		el = el.Prev()
		if e.pins == 0 {
			s.dropLocked(e)
		}
	}
}

// dropLocked removes e's file and forgets it.
func (s *Store) dropLocked(e *entry) {
	if cur, ok := s.entries[e.name]; !ok || cur != e {
		return
	}
	if err := os.Remove(s.path(e.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// Keep counting it: it still takes room.
		return
	}
	s.lru.Remove(e.elem)
	delete(s.entries, e.name)
	s.total -= e.size
}

// sweepBatch is how many hashes one call of Gone is asked about.
const sweepBatch = 1000

// Sweep removes the files of modules that gone says no account holds any
// more (a file still in use goes when its run releases it); it returns
// how many it found.
func (s *Store) Sweep(ctx context.Context, gone Gone) (int, error) {
	s.mu.Lock()
	sums := make([][]byte, 0, len(s.entries))
	for name := range s.entries {
		sum, err := hex.DecodeString(name)
		if err == nil {
			sums = append(sums, sum)
		}
	}
	s.mu.Unlock()
	if len(sums) == 0 {
		return 0, nil
	}
	var dead [][]byte
	for len(sums) > 0 {
		n := min(len(sums), sweepBatch)
		d, err := gone(ctx, sums[:n])
		if err != nil {
			return 0, fmt.Errorf("module store: sweep: %w", err)
		}
		dead = append(dead, d...)
		sums = sums[n:]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sum := range dead {
		e, ok := s.entries[hex.EncodeToString(sum)]
		if !ok {
			continue
		}
		e.gone = true
		if e.pins == 0 {
			s.dropLocked(e)
		}
	}
	return len(dead), nil
}

// Bytes is the size of the stored modules.
func (s *Store) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}
