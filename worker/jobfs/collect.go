package jobfs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// Limits on collect patterns, which come from the job request.
const (
	MaxPatterns   = 64
	MaxPatternLen = 1024
)

// ErrBadPattern reports a collect pattern that cannot be used.
var ErrBadPattern = errors.New("jobfs: bad collect pattern")

// Pattern is a compiled collect pattern: an absolute slash-separated path
// whose segments are path.Match patterns ("*" matches within a segment) or
// "**", which matches any number of segments (zero included).
type Pattern struct {
	segs []string
}

// CompilePattern validates and compiles a collect pattern.
func CompilePattern(p string) (Pattern, error) {
	if len(p) > MaxPatternLen || !strings.HasPrefix(p, "/") || strings.IndexByte(p, 0) >= 0 {
		return Pattern{}, fmt.Errorf("%w: %q must be an absolute path of at most %d bytes", ErrBadPattern, p, MaxPatternLen)
	}
	segs := strings.Split(strings.Trim(p, "/"), "/")
	if len(segs) == 1 && segs[0] == "" {
		return Pattern{}, fmt.Errorf("%w: %q matches no file", ErrBadPattern, p)
	}
	out := make([]string, 0, len(segs))
	for _, s := range segs {
		switch {
		case s == "" || s == "." || s == "..":
			return Pattern{}, fmt.Errorf("%w: %q: empty, \".\" or \"..\" segment", ErrBadPattern, p)
		case s == "**":
			if len(out) > 0 && out[len(out)-1] == "**" {
				continue // "**/**" is "**"
			}
		case strings.Contains(s, "**"):
			return Pattern{}, fmt.Errorf("%w: %q: \"**\" must be a whole segment", ErrBadPattern, p)
		default:
			if _, err := path.Match(s, ""); err != nil {
				return Pattern{}, fmt.Errorf("%w: %q: %w", ErrBadPattern, p, err)
			}
		}
		out = append(out, s)
	}
	return Pattern{segs: out}, nil
}

// Match reports whether the absolute, clean path p matches. It runs in
// O(segments of pattern × segments of path) time whatever the pattern.
func (pt Pattern) Match(p string) bool {
	names := strings.Split(strings.Trim(p, "/"), "/")
	return matchSegs(pt.segs, names)
}

func matchSegs(segs, names []string) bool {
	// ok[j] reports whether segs[i:] matches names[j:], computed for i from
	// the end towards 0.
	ok := make([]bool, len(names)+1)
	ok[len(names)] = true
	next := make([]bool, len(names)+1)
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		if s == "**" {
			// next[j] = ok[j] || next[j+1]
			next[len(names)] = ok[len(names)]
			for j := len(names) - 1; j >= 0; j-- {
				next[j] = ok[j] || next[j+1]
			}
		} else {
			next[len(names)] = false
			for j := len(names) - 1; j >= 0; j-- {
				m, _ := path.Match(s, names[j])
				next[j] = m && ok[j+1]
			}
		}
		ok, next = next, ok
	}
	return ok[0]
}

// Artifact is a file kept after the run.
type Artifact struct {
	Path   string
	Size   int64
	SHA256 string // hex
	n      *node
}

// Open reads the artifact's contents (shared with the FS, not copied: read
// it before the FS is changed again).
func (a Artifact) Open() io.Reader { return contentReader(a.n) }

// Collect returns the regular files matching any pattern, in path order,
// keeping at most maxBytes in total: a file that does not fit in what is left
// is left out and truncated is set (smaller files after it may still be
// kept). Files in asset trees are never collected (they belong to the
// module); symbolic links are not followed. Call it after the run.
func (f *FS) Collect(patterns []string, maxBytes int64) (arts []Artifact, truncated bool, err error) {
	if len(patterns) > MaxPatterns {
		return nil, false, fmt.Errorf("%w: more than %d patterns", ErrBadPattern, MaxPatterns)
	}
	pts := make([]Pattern, 0, len(patterns))
	for _, p := range patterns {
		pt, err := CompilePattern(p)
		if err != nil {
			return nil, false, err
		}
		pts = append(pts, pt)
	}
	if len(pts) == 0 {
		return nil, false, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	type match struct {
		path string
		n    *node
	}
	var found []match
	var walk func(d *node, dir string, names []string)
	walk = func(d *node, dir string, names []string) {
		for _, name := range sortedNames(d) {
			k := d.kids[name]
			if k == nil || k.lock == asset {
				continue
			}
			p := dir + "/" + name
			segs := append(names[:len(names):len(names)], name)
			switch {
			case k.isDir():
				walk(k, p, segs)
			case k.isRegular():
				for _, pt := range pts {
					if matchSegs(pt.segs, segs) {
						found = append(found, match{p, k})
						break
					}
				}
			}
		}
	}
	walk(f.root, "", nil)
	sort.Slice(found, func(i, j int) bool { return found[i].path < found[j].path })
	left := maxBytes
	for _, m := range found {
		size := fileSize(m.n)
		if size > left {
			truncated = true
			continue
		}
		left -= size
		h := sha256.New()
		if _, err := io.Copy(h, contentReader(m.n)); err != nil {
			return nil, false, err
		}
		arts = append(arts, Artifact{Path: m.path, Size: size, SHA256: hex.EncodeToString(h.Sum(nil)), n: m.n})
	}
	return arts, truncated, nil
}
