package wasmmeta

import (
	"os"
	"strings"
	"testing"
)

// TestPrecheckStats prints the counts Precheck sees in the files named by
// WASMMETA_STATS (space-separated), to check the limits' margins.
func TestPrecheckStats(t *testing.T) {
	files := os.Getenv("WASMMETA_STATS")
	if files == "" {
		t.Skip("WASMMETA_STATS not set")
	}
	for _, f := range strings.Fields(files) {
		bin, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p, err := precheck(bin)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		t.Logf("%s: %d bytes, depth %d, locals/function %d, locals %d, br_table %d",
			f, len(bin), p.maxDepth, p.maxLocals, p.totalLocals, p.maxBrTable)
	}
}
