//go:build !linux

package diskcache

import (
	"io/fs"
	"time"
)

// LastUse is when a file was last written (access times are not read on
// this system).
func LastUse(info fs.FileInfo) time.Time { return info.ModTime() }
