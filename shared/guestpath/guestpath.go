// Package guestpath validates the guest paths that job requests and asset
// uploads name.
//
// They are input file paths, preopen names, asset mounts and collect
// patterns. The API checks requests with it before they are stored; its
// rules are those of the worker's job filesystem (worker/jobfs), so what the
// API accepts the worker can mount.
package guestpath

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// Limits on names (the job filesystem's: POSIX NAME_MAX and PATH_MAX).
const (
	MaxNameLen = 255
	MaxPathLen = 4096
	// MaxPatterns and MaxPatternLen bound a request's collect patterns.
	MaxPatterns   = 64
	MaxPatternLen = 1024
)

// File checks an absolute guest path of a file or mount: "/" followed by
// clean components (no "", "." or ".."), each at most MaxNameLen bytes, at
// most MaxPathLen bytes in all, UTF-8 without NUL. The root itself is not a
// file.
func File(p string) error {
	if p == "" {
		return errors.New("is empty")
	}
	if err := chars(p, MaxPathLen); err != nil {
		return err
	}
	switch {
	case !strings.HasPrefix(p, "/"):
		return errors.New("must be absolute (start with /)")
	case p == "/":
		return errors.New("names the root directory, not a file")
	}
	for _, c := range strings.Split(p[1:], "/") {
		switch {
		case c == "..":
			return errors.New("must not contain \"..\"")
		case c == "" || c == ".":
			return fmt.Errorf("must be clean (as %q)", path.Clean(p))
		case len(c) > MaxNameLen:
			return fmt.Errorf("has a component longer than %d bytes", MaxNameLen)
		}
	}
	return nil
}

// chars checks the bytes of a guest path or pattern: at most max of them,
// UTF-8 without NUL.
func chars(p string, max int) error {
	switch {
	case len(p) > max:
		return fmt.Errorf("is longer than %d bytes", max)
	case !utf8.ValidString(p) || strings.IndexByte(p, 0) >= 0:
		return errors.New("must be UTF-8 without NUL")
	}
	return nil
}

// PreopenDir returns the directory of the job filesystem that backs a
// preopen: a preopen is shown to the guest exactly as named and backed by
// "/"+name, cleaned ("fs-tests.dir" → "/fs-tests.dir", "/" and "." → "/").
// A name with a ".." component, NUL, invalid UTF-8 or over-long
// components is refused.
func PreopenDir(name string) (string, error) {
	if name == "" {
		return "", errors.New("is empty")
	}
	if err := chars(name, MaxPathLen); err != nil {
		return "", err
	}
	for _, c := range strings.Split(name, "/") {
		switch {
		case c == "..":
			return "", errors.New("must not contain \"..\"")
		case len(c) > MaxNameLen:
			return "", fmt.Errorf("has a component longer than %d bytes", MaxNameLen)
		}
	}
	return path.Clean("/" + name), nil
}

// Under reports whether the clean absolute path p is dir or inside it.
func Under(p, dir string) bool {
	return dir == "/" || p == dir || strings.HasPrefix(p, dir+"/")
}

// Pattern checks a collect pattern: an absolute slash-separated path whose
// segments are path.Match patterns ("*" within a segment, "?", "[…]") or
// "**" (any number of segments), at most MaxPatternLen bytes, without
// empty, "." or ".." segments.
func Pattern(p string) error {
	if err := chars(p, MaxPatternLen); err != nil {
		return err
	}
	if !strings.HasPrefix(p, "/") {
		return errors.New("must be absolute (start with /)")
	}
	segs := strings.Split(strings.Trim(p, "/"), "/")
	if len(segs) == 1 && segs[0] == "" {
		return errors.New("matches no file")
	}
	for _, s := range segs {
		switch {
		case s == "" || s == "." || s == "..":
			return errors.New("has an empty, \".\" or \"..\" segment")
		case s == "**":
		case strings.Contains(s, "**"):
			return errors.New("uses \"**\" inside a segment; it must be a whole segment")
		default:
			if _, err := path.Match(s, ""); err != nil {
				return fmt.Errorf("segment %q is not a valid pattern", s)
			}
		}
	}
	return nil
}
