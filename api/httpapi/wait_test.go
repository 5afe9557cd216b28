package httpapi

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseWait(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]time.Duration{
		"": 0, "0": 0, "0s": 0, "5s": 5 * time.Second, "250ms": 250 * time.Millisecond,
		"5": 5 * time.Second, "2.5": 2500 * time.Millisecond, "60": time.Minute, "1m": time.Minute,
	} {
		got, err := parseWait(raw)
		require.NoError(t, err, raw)
		require.Equal(t, want, got, raw)
	}
	for _, raw := range []string{"61", "60.001", "61s", "-1", "-1s", "soon", "NaN", "Inf", "1e400", "5 s", "0x10"} {
		_, err := parseWait(raw)
		require.Error(t, err, raw)
	}
}

func FuzzParseWait(f *testing.F) {
	for _, s := range []string{"", "5s", "2.5", "-1", "1e400", "NaN", "60.0000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		d, err := parseWait(raw)
		if err == nil && (d < 0 || d > maxWait) {
			t.Fatalf("parseWait(%q) = %s, outside 0..%s", raw, d, maxWait)
		}
	})
}
