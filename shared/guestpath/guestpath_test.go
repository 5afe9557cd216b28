package guestpath_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/guestpath"
)

func TestFile(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"/a", "/in/a.txt", "/" + strings.Repeat("n", 255), "/a b/ü"} {
		require.NoError(t, guestpath.File(ok), ok)
	}
	for p, why := range map[string]string{
		"":                             "is empty",
		"a":                            "absolute",
		"/":                            "root",
		"/a/../b":                      "..",
		"/..":                          "..",
		"/a//b":                        "clean",
		"/a/./b":                       "clean",
		"/a/":                          "clean",
		"/a\x00":                       "NUL",
		"/\xff":                        "UTF-8",
		"/" + strings.Repeat("n", 256): "component",
		strings.Repeat("/"+strings.Repeat("n", 200), 21): "longer",
	} {
		err := guestpath.File(p)
		require.Error(t, err, p)
		require.Contains(t, err.Error(), why, p)
	}
}

func TestPreopenDir(t *testing.T) {
	t.Parallel()
	for name, dir := range map[string]string{"/": "/", ".": "/", "./": "/", "data": "/data", "/data/": "/data",
		"fs-tests.dir": "/fs-tests.dir", "a/b": "/a/b"} {
		got, err := guestpath.PreopenDir(name)
		require.NoError(t, err, name)
		require.Equal(t, dir, got, name)
	}
	for _, bad := range []string{"", "..", "a/../b", "a\x00", "\xff"} {
		_, err := guestpath.PreopenDir(bad)
		require.Error(t, err, bad)
	}
	require.True(t, guestpath.Under("/a/b", "/"))
	require.True(t, guestpath.Under("/a/b", "/a"))
	require.True(t, guestpath.Under("/a", "/a"))
	require.False(t, guestpath.Under("/ab", "/a"))
}

func TestPattern(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"/out/*.wav", "/out/**", "/**", "/a/**/b", "/[ab]?c"} {
		require.NoError(t, guestpath.Pattern(ok), ok)
	}
	for _, bad := range []string{"", "out/*", "/", "/a/../b", "/a/**b", "/[", "/a\x00", "/" + strings.Repeat("x", 1024)} {
		require.Error(t, guestpath.Pattern(bad), bad)
	}
}
