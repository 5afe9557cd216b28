package store

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestCleanText(t *testing.T) {
	t.Parallel()
	require.Equal(t, "a\uFFFDb", CleanText("a\x00b", 0))
	require.Equal(t, "a\uFFFDb", CleanText("a\xff\xfeb", 0))
	require.Equal(t, "plain", CleanText("plain", 0))
	require.Equal(t, "ab", CleanText("ab€", 4), "cut before a rune that does not fit")
	require.True(t, ValidText("é"))
	require.False(t, ValidText("\x00"))
	require.False(t, ValidText("\xff"))
}

// FuzzCleanText: whatever a guest produces, the cleaned text is storable,
// within its bound, and text that was storable is kept as it was.
func FuzzCleanText(f *testing.F) {
	for _, s := range []string{"", "wasm error: unreachable\n\t.a\x00b()", "\xff\xfe\x00", "€€€", "\xe2\x82"} {
		f.Add(s, 7)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		max %= 1 << 16
		c := CleanText(s, max)
		require.True(t, ValidText(c))
		require.True(t, utf8.ValidString(c))
		if max > 0 {
			require.LessOrEqual(t, len(c), max)
		}
		if ValidText(s) && (max <= 0 || len(s) <= max) {
			require.Equal(t, s, c)
		}
		if ValidText(s) && max > 0 {
			require.True(t, strings.HasPrefix(s, c))
		}
	})
}
