// Package assettar checks an uploaded asset tree while it streams, and
// writes it normalised.
//
// The upload is a tar or a gzipped tar. The API stores the normalised tar,
// and a worker builds the read-only tree a job mounts from it without
// checking anything again.
//
// The normalised tar holds, in the upload's order, only directories
// (names ending in "/"), regular files, symbolic links whose targets stay
// inside the tree, and hard links to regular files earlier in the same tar;
// every name is relative (no leading "/" or "./"), clean and unique;
// permission bits only (no owners, no set-id bits). A hard link's bytes are
// counted like a copy's.
package assettar

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/guestpath"
)

// Limits bound what Normalize accepts.
type Limits struct {
	// MaxFileBytes bounds the bytes of the tree's regular files (hard links
	// counted like copies): past it, assets_too_large.
	MaxFileBytes int64
	// MaxEntries bounds the entries of the tree, implied directories
	// included (default DefaultMaxEntries).
	MaxEntries int
	// Overhead is how many bytes the tar stream (decompressed) may hold
	// beyond MaxFileBytes, for headers and padding (default
	// DefaultOverhead). A stream longer than that is refused while it is
	// read: a gzip bomb stops there.
	Overhead int64
}

// Defaults of Limits.
const (
	DefaultMaxEntries = 10_000
	DefaultOverhead   = 16 << 20
	// maxNameBytes bounds the names the check remembers (for duplicates).
	maxNameBytes = 8 << 20
)

// Stats describes a normalised tree.
type Stats struct {
	// Files is the number of regular files (hard links included), Bytes
	// their bytes, Entries every entry (directories and links included).
	Files   int
	Bytes   int64
	Entries int
}

type kind uint8

const (
	implied kind = iota // a directory named only as a parent
	dir
	file
	symlink
)

type entry struct {
	kind kind
	size int64
}

// errStreamTooLong is returned by the bounded readers.
var errStreamTooLong = errors.New("stream too long")

type boundedReader struct {
	r    io.Reader
	left int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a stream that ends exactly at the bound
		// from a longer one.
		var one [1]byte
		if n, _ := b.r.Read(one[:]); n > 0 {
			return 0, errStreamTooLong
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

func invalid(format string, args ...any) error {
	return apperr.New(apperr.InvalidArchive, format, args...)
}

// Normalize reads a tar (or a gzipped tar: recognised by its magic bytes)
// from r, checks every entry, and writes the normalised tar to w. Errors
// are apperr errors: invalid_archive (400) for what is refused, with the
// entry at fault, and assets_too_large (413) past lim.MaxFileBytes;
// others come from w.
func Normalize(r io.Reader, w io.Writer, lim Limits) (Stats, error) {
	if lim.MaxEntries <= 0 {
		lim.MaxEntries = DefaultMaxEntries
	}
	if lim.Overhead <= 0 {
		lim.Overhead = DefaultOverhead
	}
	streamMax := lim.MaxFileBytes + lim.Overhead
	raw := bufio.NewReader(&boundedReader{r: r, left: streamMax})
	var src io.Reader = raw
	if magic, _ := raw.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(raw)
		if err != nil {
			return Stats{}, readErr(err, streamMax)
		}
		defer func() { _ = zr.Close() }()
		src = &boundedReader{r: zr, left: streamMax}
	}
	tr := tar.NewReader(src)
	tw := tar.NewWriter(w)
	var st Stats
	seen := map[string]entry{}
	names := 0
	remember := func(name string, e entry) error {
		if len(seen) >= lim.MaxEntries {
			return invalid("the archive has more than %d entries (directories included)", lim.MaxEntries)
		}
		names += len(name)
		if names > maxNameBytes {
			return invalid("the archive's names take more than %d bytes", maxNameBytes)
		}
		seen[name] = e
		return nil
	}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, readErr(err, streamMax)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := cleanName(h.Name)
		if err != nil {
			return st, err
		}
		if name == "" {
			if h.Typeflag == tar.TypeDir {
				continue // the tree's root ("./")
			}
			return st, invalid("entry %q: only a directory may name the tree's root", printable(h.Name))
		}
		// Parents: directories, not files or links (a path through a
		// symbolic link could leave the tree).
		for i := 0; i < len(name); i++ {
			if name[i] != '/' {
				continue
			}
			parent := name[:i]
			e, ok := seen[parent]
			switch {
			case !ok:
				if err := remember(parent, entry{kind: implied}); err != nil {
					return st, err
				}
			case e.kind == symlink:
				return st, invalid("entry %q: its parent %q is a symbolic link", printable(h.Name), parent)
			case e.kind == file:
				return st, invalid("entry %q: its parent %q is a file", printable(h.Name), parent)
			}
		}
		prev, dup := seen[name]
		if dup && (prev.kind != implied || h.Typeflag != tar.TypeDir) {
			if prev.kind == implied {
				return st, invalid("entry %q: a directory of that name holds earlier entries", printable(h.Name))
			}
			return st, invalid("entry %q: the path is given twice", printable(h.Name))
		}
		out := &tar.Header{Name: name, Mode: h.Mode & 0o777, ModTime: modTime(h.ModTime)}
		var e entry
		switch h.Typeflag {
		case tar.TypeDir:
			out.Typeflag, out.Name = tar.TypeDir, name+"/"
			e.kind = dir
		case tar.TypeReg, tar.TypeGNUSparse:
			if h.Size < 0 || h.Size > lim.MaxFileBytes-st.Bytes {
				return st, tooLarge(lim.MaxFileBytes)
			}
			out.Typeflag, out.Size = tar.TypeReg, h.Size
			e = entry{kind: file, size: h.Size}
		case tar.TypeSymlink:
			if err := checkSymlink(name, h.Linkname); err != nil {
				return st, invalid("entry %q: %v", printable(h.Name), err)
			}
			out.Typeflag, out.Linkname = tar.TypeSymlink, h.Linkname
			e.kind = symlink
		case tar.TypeLink:
			target, err := cleanName(h.Linkname)
			t, ok := seen[target]
			if err != nil || target == "" || !ok || t.kind != file {
				return st, invalid("entry %q: a hard link must name a regular file earlier in the archive, not %q",
					printable(h.Name), printable(h.Linkname))
			}
			if t.size > lim.MaxFileBytes-st.Bytes {
				return st, tooLarge(lim.MaxFileBytes)
			}
			out.Typeflag, out.Linkname = tar.TypeLink, target
			e = entry{kind: file, size: t.size}
		case tar.TypeChar, tar.TypeBlock:
			return st, invalid("entry %q: device files are refused", printable(h.Name))
		case tar.TypeFifo:
			return st, invalid("entry %q: FIFOs are refused", printable(h.Name))
		default:
			return st, invalid("entry %q: entries of type %q are refused (only directories, files and links)",
				printable(h.Name), printable(string(h.Typeflag)))
		}
		if dup {
			seen[name] = e
		} else if err := remember(name, e); err != nil {
			return st, err
		}
		st.Entries++
		if e.kind == file {
			st.Files++
			st.Bytes += e.size
		}
		if err := tw.WriteHeader(out); err != nil {
			return st, fmt.Errorf("write tar: %w", err)
		}
		if out.Typeflag == tar.TypeReg {
			// The size was checked against the room left above.
			if _, err := io.CopyN(tw, tr, out.Size); err != nil {
				var ae *apperr.Error
				switch {
				case errors.Is(err, io.EOF):
					return st, invalid("entry %q: the archive ends inside it", printable(h.Name))
				case errors.As(err, &ae) || isReadErr(err):
					return st, readErr(err, streamMax)
				}
				return st, fmt.Errorf("write tar: %w", err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return st, fmt.Errorf("write tar: %w", err)
	}
	return st, nil
}

// isReadErr tells an error of the upload from one of w: tar.Writer passes
// w's errors through unchanged, and reading errors come from our readers
// or the decoders.
func isReadErr(err error) bool {
	return errors.Is(err, errStreamTooLong) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.Is(err, tar.ErrHeader)
}

// readErr describes a failure to read the upload.
func readErr(err error, streamMax int64) error {
	switch {
	case errors.Is(err, errStreamTooLong):
		return invalid("the archive (decompressed) is longer than %d bytes: the tree's limit plus room for headers", streamMax)
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum):
		return invalid("the gzip stream is corrupt: %v", err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("the archive ends early")
	case errors.Is(err, tar.ErrHeader):
		return invalid("not a tar archive (or a gzipped one): %v", err)
	}
	if ae := apperr.As(err); ae != nil {
		return ae // the request body's own limits (a stalled or oversized upload)
	}
	return invalid("the archive could not be read: %v", err)
}

func tooLarge(limit int64) error {
	return apperr.New(apperr.AssetsTooLarge, "the asset tree's files take more than %d bytes (the tier's max_asset_bytes, less the module's other asset trees)", limit)
}

// cleanName turns an entry's name into the tree's relative form ("" for
// the root): leading "./" and a directory's trailing "/" are dropped;
// absolute names, "..", empty or "." components inside, NUL, invalid
// UTF-8 and over-long names are refused.
func cleanName(raw string) (string, error) {
	if strings.HasPrefix(raw, "/") {
		return "", invalid("entry %q: absolute paths are refused", printable(raw))
	}
	name := raw
	for strings.HasPrefix(name, "./") {
		name = strings.TrimLeft(name[2:], "/")
	}
	name = strings.TrimSuffix(name, "/")
	if name == "" || name == "." {
		return "", nil
	}
	if err := guestpath.File("/" + name); err != nil {
		return "", invalid("entry %q: the path %v", printable(raw), err)
	}
	return name, nil
}

// checkSymlink refuses a link target that is empty, absolute, too long, or
// that leaves the tree from the link's directory.
func checkSymlink(name, target string) error {
	switch {
	case target == "":
		return errors.New("a symbolic link with an empty target")
	case len(target) > guestpath.MaxPathLen-1:
		return fmt.Errorf("a symbolic link target longer than %d bytes", guestpath.MaxPathLen-1)
	case !utf8.ValidString(target) || strings.IndexByte(target, 0) >= 0:
		return errors.New("a symbolic link target must be UTF-8 without NUL")
	case strings.HasPrefix(target, "/"):
		return fmt.Errorf("the symbolic link's target %q is absolute", target)
	}
	if t := path.Join(path.Dir(name), target); t == ".." || strings.HasPrefix(t, "../") {
		return fmt.Errorf("the symbolic link's target %q leaves the tree", target)
	}
	return nil
}

// modTime keeps a modification time that every tar format can hold, to the
// second; others become the epoch.
func modTime(t time.Time) time.Time {
	if t.Before(time.Unix(0, 0)) || t.After(time.Unix(1<<33-1, 0)) {
		return time.Unix(0, 0)
	}
	return t.Truncate(time.Second)
}

// printable makes a name from the archive fit to show in a problem.
func printable(s string) string {
	if len(s) > 256 {
		s = s[:256] + "…"
	}
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
}
