package jobfs

import (
	"path"
	"strings"
	"testing"
)

// naiveMatch is a slow, obviously correct reference for Pattern.Match.
func naiveMatch(segs, names []string) bool {
	if len(segs) == 0 {
		return len(names) == 0
	}
	if segs[0] == "**" {
		for i := 0; i <= len(names); i++ {
			if naiveMatch(segs[1:], names[i:]) {
				return true
			}
		}
		return false
	}
	if len(names) == 0 {
		return false
	}
	ok, _ := path.Match(segs[0], names[0])
	return ok && naiveMatch(segs[1:], names[1:])
}

// FuzzPattern checks that untrusted collect patterns compile or fail
// cleanly, and that matching agrees with a naive reference.
func FuzzPattern(f *testing.F) {
	for _, s := range [][2]string{
		{"/out/*.wav", "/out/a.wav"}, {"/out/**", "/out/a/b/c"}, {"/**/x", "/x"},
		{"/a/**/b/**/c", "/a/b/c"}, {"/[a-", "/a"}, {"/a/\\*", "/a/*"}, {"/**", "/"},
		{"/a**b", "/ab"}, {"/../x", "/x"}, {"/out/?.txt", "/out/1.txt"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, p string) {
		pt, err := CompilePattern(pattern)
		if err != nil {
			return
		}
		if len(p) > MaxPathLen {
			return
		}
		names := strings.Split(strings.Trim(p, "/"), "/")
		got := pt.Match(p)
		if len(pt.segs) <= 8 && len(names) <= 8 {
			if want := naiveMatch(pt.segs, names); got != want {
				t.Fatalf("Match(%q, %q) = %v, reference %v", pattern, p, got, want)
			}
		}
	})
}

// FuzzLookup resolves untrusted paths and symlink targets in a preopen view
// and checks that nothing outside the view is ever reached.
func FuzzLookup(f *testing.F) {
	for _, s := range [][2]string{
		{"..", "l"}, {"../outside/secret", "l/x"}, {"a/../../outside", "l"},
		{"x/y", "a/../l/../l"}, {"l", "l"}, {".", "l/.."}, {"a/", "l/"},
		{"../sub/../outside/secret", "l"}, {"a", "./a/./b/../../l/"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, target, p string) {
		jfs, err := New(Options{MaxBytes: 1 << 10, MaxNodes: 64}, nil, []Input{
			{Path: "/outside/secret", Data: []byte("s")},
			{Path: "/sub/a/b", Data: []byte("b")},
		})
		if err != nil {
			t.Fatal(err)
		}
		outside := map[uint64]bool{jfs.root.ino: true, jfs.root.kids["outside"].ino: true,
			jfs.root.kids["outside"].kids["secret"].ino: true}
		v, err := jfs.Preopen("sub")
		if err != nil {
			t.Fatal(err)
		}
		_ = v.Symlink(target, "l")
		_ = v.Symlink(p, "l2")
		for _, q := range []string{p, target, "l", "l2", "l/" + p} {
			if st, errno := v.Stat(q); errno == 0 && outside[st.Ino] {
				t.Fatalf("Stat(%q) with l -> %q reached outside the view", q, target)
			}
			if fl, errno := v.OpenFile(q, 0, 0); errno == 0 {
				ino, _ := fl.Ino()
				fl.Close()
				if outside[ino] {
					t.Fatalf("OpenFile(%q) with l -> %q reached outside the view", q, target)
				}
			}
			_ = v.Mkdir(q, 0o755)
			_ = v.Rename(q, "renamed")
			_ = v.Unlink(q)
			_ = v.Rmdir(q)
		}
		// Nothing outside the view changed.
		if jfs.root.kids["outside"].kids["secret"] == nil || len(jfs.root.kids) != 2 {
			t.Fatal("the view changed something outside it")
		}
	})
}
