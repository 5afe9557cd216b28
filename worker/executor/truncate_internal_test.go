package executor

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncateCutsOnARuneBoundary(t *testing.T) {
	t.Parallel()
	for pad := range 4 {
		msg := strings.Repeat("a", pad) + strings.Repeat("€", maxErrorMessage)
		got := truncate(msg)
		if len(got) > maxErrorMessage || !utf8.ValidString(got) || !strings.HasPrefix(msg, got) {
			t.Fatalf("pad %d: %d bytes, valid %v", pad, len(got), utf8.ValidString(got))
		}
	}
	if truncate("short") != "short" {
		t.Fatal("a short message is kept")
	}
}
