package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

// limitedBody fails a read past its limit with request_too_large (or the
// error tooLarge returns, when set), so a handler that streams the body
// learns of it as an ordinary error.
type limitedBody struct {
	rc       io.ReadCloser
	left     int64
	limit    int64
	tooLarge func() error
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// Probe one byte: exactly limit bytes is fine.
		var one [1]byte
		n, err := l.rc.Read(one[:])
		if n > 0 {
			if l.tooLarge != nil {
				return 0, l.tooLarge()
			}
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

// Bounds on reading a request. The server's ReadTimeout (RequestReadTimeout)
// stays the backstop for the whole request; the body guard below makes a
// body that stalls fail long before it.
const (
	// RequestReadTimeout bounds reading one whole request, headers and
	// body (large module uploads); the http.Server is given it too.
	RequestReadTimeout = 5 * time.Minute
	// DefaultBodyStallTimeout is how long a request body may send nothing
	// before the read fails (WIZARD_BODY_STALL_TIMEOUT).
	DefaultBodyStallTimeout = 10 * time.Second
	// earlyAnswerDrain is how long the server keeps reading what is left of
	// a body it did not want (it answered before reading it all) before it
	// closes the connection. A client that already sent its body gets a
	// clean close; one that sends nothing is dropped after this.
	earlyAnswerDrain = time.Second
)

// guardedBody is every request body's outermost reader. Before each read it
// moves the connection's read deadline to the stall limit (never past the
// whole request's), so a client that stops sending is cut off with
// request_timeout instead of holding its connection until ReadTimeout. It
// also notes whether the body was read to its end.
type guardedBody struct {
	rc    io.ReadCloser
	ctl   *http.ResponseController
	stall time.Duration
	end   time.Time // the whole request's read deadline
	left  int64     // bytes still announced by Content-Length (-1: unknown)
	ended bool      // all of the body was read, or a read failed
}

func (b *guardedBody) Read(p []byte) (int, error) {
	// Once the body has ended, net/http reads the connection in the
	// background (to notice a client that goes away) with no deadline; one
	// set now would fail that read later and cancel the request's context,
	// cutting a long ?wait= short.
	if b.ctl != nil && !b.ended {
		d := time.Now().Add(b.stall)
		if d.After(b.end) {
			d = b.end
		}
		if err := b.ctl.SetReadDeadline(d); err != nil {
			// Not a connection (a recorder in tests): the server's
			// own timeouts are the only bound.
			b.ctl = nil
		}
	}
	n, err := b.rc.Read(p)
	if b.left > 0 {
		// A reader that stops at its own end (a multipart form's last
		// boundary) may never ask for the io.EOF after the last byte.
		if b.left -= int64(n); b.left <= 0 {
			b.ended = true
		}
	}
	if err != nil {
		b.ended = true
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if !time.Now().Before(b.end) {
				return n, apperr.Wrap(err, apperr.RequestTimeout,
					fmt.Sprintf("the request took longer than %s to send", RequestReadTimeout))
			}
			return n, apperr.Wrap(err, apperr.RequestTimeout,
				fmt.Sprintf("the request body stalled: nothing arrived for %s", b.stall))
		}
	}
	return n, err
}

func (b *guardedBody) Close() error { return b.rc.Close() }

// withBodyGuard wraps the request body in a guardedBody, and makes an answer
// given before the body was read to its end (a 401, 404, 413, 429, … before
// the handler reads) close the connection: with "Connection: close" on the
// answer, and a read deadline of earlyAnswerDrain afterwards. Without this,
// net/http would keep reading up to 256 KiB of an unread body after the
// handler returned, to reuse the connection, and a client that announced a
// body and never sent it held the connection for the whole ReadTimeout.
func (s *Server) withBodyGuard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			return next(c)
		}
		b := &guardedBody{rc: r.Body, ctl: http.NewResponseController(c.Response()), stall: s.bodyStall,
			end: time.Now().Add(RequestReadTimeout), left: r.ContentLength}
		r.Body = b
		res := c.Response()
		res.Before(func() {
			if !b.ended {
				res.Header().Set(echo.HeaderConnection, "close")
			}
		})
		err := next(c)
		// net/http looks at the request's own body type after the
		// handler: to half-close rather than reset a connection whose
		// large body it did not read (which a client still writing would
		// see as "connection reset" instead of the answer).
		r.Body = b.rc
		if !b.ended {
			if err != nil {
				// The answer is not written yet (withAccessLog writes
				// errors): make sure it closes the connection too.
				res.Header().Set(echo.HeaderConnection, "close")
			}
			// Whatever net/http reads of the rest after this returns
			// ends at this deadline; then it closes the connection.
			_ = http.NewResponseController(res).SetReadDeadline(time.Now().Add(earlyAnswerDrain))
		}
		return err
	}
}
