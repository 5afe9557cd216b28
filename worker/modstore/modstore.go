// Package modstore is the worker's local content-addressed store of module
// bytes: each module is fetched from Postgres once, verified against its
// SHA-256 and kept as a file that sandbox children read directly.
package modstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sync/singleflight"
)

// Fetch returns the bytes stored under a SHA-256.
type Fetch func(ctx context.Context, sum []byte) ([]byte, error)

// Store keeps modules under dir/<first two hex digits>/<sha256>.wasm.
type Store struct {
	dir   string
	fetch Fetch
	group singleflight.Group
}

// New creates dir if needed (private to the worker's user).
func New(dir string, fetch Fetch) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("module store: %w", err)
	}
	return &Store{dir: dir, fetch: fetch}, nil
}

// Path returns the file holding the module with this SHA-256, fetching it
// first if this worker has not seen it. Concurrent calls for one module
// fetch it once.
func (s *Store) Path(ctx context.Context, sum []byte) (string, error) {
	if len(sum) != sha256.Size {
		return "", fmt.Errorf("module store: bad hash length %d", len(sum))
	}
	name := hex.EncodeToString(sum)
	path := filepath.Join(s.dir, name[:2], name+".wasm")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	_, err, _ := s.group.Do(name, func() (any, error) {
		if _, err := os.Stat(path); err == nil {
			return nil, nil
		}
		content, err := s.fetch(ctx, sum)
		if err != nil {
			return nil, err
		}
		got := sha256.Sum256(content)
		if !bytes.Equal(got[:], sum) {
			return nil, fmt.Errorf("module store: content of %s has hash %x", name, got)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("module store: %w", err)
		}
		tmp, err := os.CreateTemp(filepath.Dir(path), name+".*.tmp")
		if err != nil {
			return nil, fmt.Errorf("module store: %w", err)
		}
		defer func() { _ = os.Remove(tmp.Name()) }()
		if _, err := tmp.Write(content); err != nil {
			_ = tmp.Close()
			return nil, fmt.Errorf("module store: write: %w", err)
		}
		if err := tmp.Close(); err != nil {
			return nil, fmt.Errorf("module store: write: %w", err)
		}
		// Rename is atomic: a reader sees the whole module or none.
		if err := os.Rename(tmp.Name(), path); err != nil {
			return nil, fmt.Errorf("module store: %w", err)
		}
		return nil, nil
	})
	if err != nil {
		return "", err
	}
	return path, nil
}
