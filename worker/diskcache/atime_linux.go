package diskcache

import (
	"io/fs"
	"syscall"
	"time"
)

// LastUse is when a file was last read or written, as far as the file
// system tells: the later of its access and modification times. With
// relatime (Linux's default) a read updates the access time only when it
// is older than the modification time or a day old, so reads are seen at a
// day's resolution at worst.
func LastUse(info fs.FileInfo) time.Time {
	t := info.ModTime()
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		if a := time.Unix(st.Atim.Unix()); a.After(t) {
			t = a
		}
	}
	return t
}
