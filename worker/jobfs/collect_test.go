package jobfs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestPatternMatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pattern string
		path    string
		want    bool
	}{
		{"/out/*.wav", "/out/a.wav", true},
		{"/out/*.wav", "/out/sub/a.wav", false},
		{"/out/*.wav", "/out/a.txt", false},
		{"/out/**", "/out/a", true},
		{"/out/**", "/out/a/b/c.txt", true},
		{"/out/**", "/outside/a", false},
		{"/**/*.log", "/a.log", true},
		{"/**/*.log", "/x/y/a.log", true},
		{"/a/**/b", "/a/b", true},
		{"/a/**/b", "/a/x/y/b", true},
		{"/a/**/b", "/a/x/y/c", false},
		{"/a/?.txt", "/a/1.txt", true},
		{"/a/[0-9].txt", "/a/x.txt", false},
		{"/a/\\*", "/a/*", true},
		{"/a/\\*", "/a/b", false},
		{"/**/**/x", "/x", true},
	}
	for _, c := range cases {
		pt, err := CompilePattern(c.pattern)
		if err != nil {
			t.Fatalf("%q: %v", c.pattern, err)
		}
		if got := pt.Match(c.path); got != c.want {
			t.Errorf("%q matches %q: %v, want %v", c.pattern, c.path, got, c.want)
		}
	}
	for _, bad := range []string{"", "out/*", "/", "/a/../b", "/a//b", "/a/./b", "/a**", "/[a-", "/" + strings.Repeat("a", MaxPatternLen)} {
		if _, err := CompilePattern(bad); !errors.Is(err, ErrBadPattern) {
			t.Errorf("CompilePattern(%q) = %v, want ErrBadPattern", bad, err)
		}
	}
}

func TestCollect(t *testing.T) {
	t.Parallel()
	tree, _ := TreeFromMap(map[string][]byte{"a.wav": []byte("asset")})
	f, err := New(Options{MaxBytes: 1 << 10}, []Mount{{Path: "/out/assets", Tree: tree}}, []Input{{Path: "/in/x.wav", Data: []byte("in")}})
	if err != nil {
		t.Fatal(err)
	}
	root := f.Root()
	write := func(p, s string) {
		w, errno := root.OpenFile(p, creat|wronly, 0)
		must(t, errno)
		mustWrite(t, w, []byte(s))
		w.Close()
	}
	must(t, root.Mkdir("out/sub", 0))
	write("out/b.wav", "bbbb")
	write("out/a.wav", "aa")
	write("out/sub/c.wav", "cccccc")
	write("out/sub/d.txt", "d")
	write("out/e.wav", "e")
	must(t, root.Symlink("b.wav", "out/link.wav"))

	arts, truncated, err := f.Collect([]string{"/out/**/*.wav", "/in/*.wav"}, 1<<20)
	if err != nil || truncated {
		t.Fatalf("collect: %v %v", err, truncated)
	}
	var paths []string
	for _, a := range arts {
		paths = append(paths, a.Path)
		data, err := io.ReadAll(a.Open())
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if a.SHA256 != hex.EncodeToString(sum[:]) || a.Size != int64(len(data)) {
			t.Errorf("%s: bad size or sha256", a.Path)
		}
	}
	// Sorted; asset files and symlinks left out; inputs kept.
	if got := strings.Join(paths, " "); got != "/in/x.wav /out/a.wav /out/b.wav /out/e.wav /out/sub/c.wav" {
		t.Fatalf("collected %s", got)
	}
	// A budget of 5 keeps /in/x.wav (2), /out/a.wav (2), skips b.wav (4),
	// keeps e.wav (1), skips c.wav (6): truncated.
	arts, truncated, err = f.Collect([]string{"/**/*.wav"}, 5)
	if err != nil || !truncated {
		t.Fatalf("collect with budget: %v truncated=%v", err, truncated)
	}
	paths = paths[:0]
	var total int64
	for _, a := range arts {
		paths = append(paths, a.Path)
		total += a.Size
	}
	if got := strings.Join(paths, " "); got != "/in/x.wav /out/a.wav /out/e.wav" || total > 5 {
		t.Fatalf("collected %s (%d bytes)", got, total)
	}
	if _, _, err := f.Collect([]string{"relative"}, 10); !errors.Is(err, ErrBadPattern) {
		t.Fatalf("bad pattern: %v", err)
	}
	if _, _, err := f.Collect(make([]string, MaxPatterns+1), 10); !errors.Is(err, ErrBadPattern) {
		t.Fatalf("too many patterns: %v", err)
	}
}
