package jobfs

import (
	"bytes"
	"io"
)

// chunkSize is the unit in which a job's own files hold their bytes. Files
// grow by adding chunks, never by copying the whole file into a bigger
// array, so memory stays at the written bytes plus at most one partly used
// chunk per open file (trimmed when its last handle closes).
const chunkSize = 64 << 10

// A regular file's contents are either borrowed (shared: data, from an asset
// tree or an input, never written) or the job's own: chunks covering
// [i*chunkSize, min((i+1)*chunkSize, size)). A nil chunk is a hole of zeros
// (left by truncate or a write past the end); a non-nil chunk has exactly
// the length of the range it covers.

// fileSize is the size of regular file n.
func fileSize(n *node) int64 {
	if n.shared {
		return int64(len(n.data))
	}
	return n.size
}

// readAt copies the bytes of n at off into buf and returns how many.
func readAt(n *node, buf []byte, off int64) int {
	if n.shared {
		if off >= int64(len(n.data)) {
			return 0
		}
		return copy(buf, n.data[off:])
	}
	done := 0
	for done < len(buf) && off < n.size {
		i, o := off/chunkSize, off%chunkSize
		part := min(chunkSize, n.size-i*chunkSize)
		k := min(part-o, int64(len(buf)-done))
		if c := n.chunks[i]; c == nil {
			clear(buf[done : done+int(k)])
		} else {
			copy(buf[done:done+int(k)], c[o:o+k])
		}
		done += int(k)
		off += k
	}
	return done
}

// chunkify turns borrowed data (its first size bytes) into the job's own
// chunks.
func chunkify(n *node, size int64) {
	data := n.data[:min(size, int64(len(n.data)))]
	n.data, n.shared, n.size = nil, false, 0
	n.chunks = nil
	resize(n, size)
	writeAt(n, data, 0)
}

// resize sets the size of n (which owns its chunks), dropping or adding
// zeros at the end.
func resize(n *node, size int64) {
	if size == n.size {
		return
	}
	if size < n.size {
		count := (size + chunkSize - 1) / chunkSize
		clear(n.chunks[count:])
		n.chunks = n.chunks[:count]
		if count > 0 {
			last := count - 1
			if c := n.chunks[last]; c != nil {
				n.chunks[last] = c[:size-last*chunkSize]
			}
		}
		n.size = size
		return
	}
	// Grow: extend the last partial chunk, then add holes.
	if count := int64(len(n.chunks)); count > 0 {
		last := count - 1
		if c := n.chunks[last]; c != nil && int64(len(c)) < chunkSize {
			want := min(chunkSize, size-last*chunkSize)
			n.chunks[last] = extend(c, want)
		}
	}
	for count := (size + chunkSize - 1) / chunkSize; int64(len(n.chunks)) < count; {
		n.chunks = append(n.chunks, nil)
	}
	n.size = size
}

// extend lengthens chunk c to want bytes, zero-filled, doubling its capacity
// (up to chunkSize) when it must move.
func extend(c []byte, want int64) []byte {
	if want <= int64(cap(c)) {
		old := len(c)
		c = c[:want]
		clear(c[old:])
		return c
	}
	nc := make([]byte, want, min(chunkSize, max(want, 2*int64(cap(c)))))
	copy(nc, c)
	return nc
}

// writeAt copies buf into n at off; n owns its chunks and its size already
// covers off+len(buf).
func writeAt(n *node, buf []byte, off int64) {
	for len(buf) > 0 {
		i, o := off/chunkSize, off%chunkSize
		part := min(chunkSize, n.size-i*chunkSize)
		c := n.chunks[i]
		if c == nil {
			c = make([]byte, part)
			n.chunks[i] = c
		}
		k := copy(c[o:], buf)
		buf = buf[k:]
		off += int64(k)
	}
}

// trim gives back the spare capacity of n's last chunk.
func trim(n *node) {
	if len(n.chunks) == 0 {
		return
	}
	last := len(n.chunks) - 1
	if c := n.chunks[last]; c != nil && cap(c) > len(c) {
		nc := make([]byte, len(c)) // not append: it rounds up to a size class
		copy(nc, c)
		n.chunks[last] = nc
	}
}

// contentReader reads a snapshot of n's contents.
func contentReader(n *node) io.Reader {
	if n.shared {
		return bytes.NewReader(n.data)
	}
	parts := make([]io.Reader, 0, len(n.chunks))
	for i, c := range n.chunks {
		if c == nil {
			part := min(chunkSize, n.size-int64(i)*chunkSize)
			parts = append(parts, io.LimitReader(zeros{}, part))
		} else {
			parts = append(parts, bytes.NewReader(c))
		}
	}
	return io.MultiReader(parts...)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
