package httpapi

import (
	"io"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

// limitedBody fails a read past its limit with request_too_large, so a
// handler that streams the body learns of it as an ordinary error.
type limitedBody struct {
	rc    io.ReadCloser
	left  int64
	limit int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// Probe one byte: exactly limit bytes is fine.
		var one [1]byte
		n, err := l.rc.Read(one[:])
		if n > 0 {
			return 0, apperr.New(apperr.RequestTooLarge, "the request body is larger than %d bytes", l.limit)
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }
