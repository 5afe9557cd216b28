package httpapi

import (
	"bytes"
	"mime/multipart"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
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

// The /api/execute form reader never panics, fails only with application
// errors, and keeps to its limits.
func FuzzReadExecuteForm(f *testing.F) {
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"wasm\"; filename=\"m.wasm\"\r\n\r\n\x00asm\x01\x00\x00\x00\r\n--b\r\nContent-Disposition: form-data; name=\"input\"\r\n\r\nhi\r\n--b--\r\n"))
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"input\"\r\n\r\nx\r\n--b--\r\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, body []byte) {
		content, input, err := readExecuteForm(multipart.NewReader(bytes.NewReader(body), "b"), 1024)
		if err != nil {
			if apperr.As(err) == nil {
				t.Fatalf("non-application error: %v", err)
			}
			return
		}
		if len(content) == 0 || len(content) > 1024 || len(input) > maxStdinBytes {
			t.Fatalf("read %d module bytes and %d input bytes", len(content), len(input))
		}
	})
}
