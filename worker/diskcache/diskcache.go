// Package diskcache bounds a directory that others fill, such as wazero's
// compilation cache.
//
// wazero's cache has no bound of its own: Trim removes the least recently
// used files until the directory's files fit a number of bytes.
//
// Trim is safe while other processes read and write the directory, as
// wazero's file cache does: it writes an entry to a temporary file and
// renames it into place, so an entry is whole or absent; a reader that has
// opened an entry keeps reading it after it is removed (POSIX unlink); a
// reader that looks for a removed entry finds none, compiles the module
// again and adds it back.
package diskcache

import (
	"errors"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"
)

// TmpAge is how old a temporary file (*.tmp, an entry being written) must
// be before Trim takes it for one that a crashed writer left.
const TmpAge = time.Hour

// Result says what one Trim found and did.
type Result struct {
	Files, Removed int
	Bytes, Freed   int64
}

// Trim removes the least recently used regular files under dir (LastUse)
// until the rest take at most maxBytes, and temporary files older than
// TmpAge. Files of another kind (directories, links) are left alone.
func Trim(dir string, maxBytes int64, now time.Time) (Result, error) {
	type file struct {
		path string
		size int64
		used time.Time
	}
	var (
		files []file
		res   Result
	)
	// Paths are resolved inside dir only (os.Root): a link placed in the
	// directory cannot make Trim remove a file elsewhere.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return res, err
	}
	defer func() { _ = root.Close() }()
	err = fs.WalkDir(root.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil //nolint:nilerr // removed meanwhile
		}
		if strings.HasSuffix(d.Name(), ".tmp") {
			if now.Sub(info.ModTime()) > TmpAge && root.Remove(path) == nil {
				res.Removed++
				res.Freed += info.Size()
				return nil
			}
		}
		files = append(files, file{path, info.Size(), LastUse(info)})
		res.Files++
		res.Bytes += info.Size()
		return nil
	})
	if err != nil {
		return res, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].used.Before(files[j].used) })
	for _, f := range files {
		if res.Bytes <= maxBytes {
			break
		}
		if strings.HasSuffix(f.path, ".tmp") {
			continue // being written
		}
		if err := root.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		res.Files--
		res.Removed++
		res.Bytes -= f.size
		res.Freed += f.size
	}
	return res, nil
}
