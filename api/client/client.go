// Package client is the Go SDK of the Wasm Wizard HTTP API (docs/API.md).
//
// A Client holds an API key and calls the API's routes, one typed method per
// route, each taking a context.Context:
//
//	c, err := client.New("http://127.0.0.1:8080", os.Getenv("WIZARD_API_KEY"))
//	mod, _, err := c.EnsureModule(ctx, wasm, "hello")       // uploads only if the platform lacks it
//	job, err := c.Submit(ctx, client.JobRequest{ModuleID: mod.ID}, nil)
//	job, err = c.Wait(ctx, job.ID)                          // long-polls with ?wait=
//
// Errors the API answers are *Error values (RFC 9457 problems), matched with
// errors.As and compared by Code.
//
// Retries. A call is tried again, with exponential backoff and full jitter,
// when the API answers 429 (nothing was done, so every call is retried;
// Retry-After is honoured) and, for calls that are safe to repeat, when the
// connection fails or the API answers 502, 503 or 504. Safe to repeat are
// reads, PUTs and DELETEs, module uploads (the same bytes give the same
// module) and job submits: Submit always sends an Idempotency-Key (one it
// generates unless the caller gives one), so a repeated submit returns the
// job the first one created. A batch and a cancel are retried only on 429.
// A Retry-After longer than the client's MaxRetryWait is not waited for:
// the call returns its *Error at once.
//
// Live output: Stream iterates over a job's Server-Sent Events and resumes
// with Last-Event-ID after a broken connection. Webhook receivers verify
// deliveries with the webhook subpackage, which has no other dependency.
//
// The package imports nothing of the server but shared/apiobject, the
// API's objects, and that imports only the standard library.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Version is sent in the User-Agent.
const Version = "1"

// Client calls the API with one API key. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	token     string
	http      *http.Client
	userAgent string
	retry     RetryPolicy
}

// RetryPolicy says how calls are retried. Its zero value is no retry.
type RetryPolicy struct {
	// MaxRetries is how many times a call is tried again (default 4).
	MaxRetries int
	// BaseDelay is the first backoff (default 200 ms); each retry doubles
	// it up to MaxDelay (default 5 s), and a random part of it is waited
	// (full jitter, at least half).
	BaseDelay, MaxDelay time.Duration
	// MaxRetryWait is the longest Retry-After waited for (default 30 s).
	MaxRetryWait time.Duration
}

// DefaultRetryPolicy is the policy of a new Client.
var DefaultRetryPolicy = RetryPolicy{MaxRetries: 4, BaseDelay: 200 * time.Millisecond,
	MaxDelay: 5 * time.Second, MaxRetryWait: 30 * time.Second}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: a client without an overall
// timeout, since waits and streams are long; contexts bound each call).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithRetryPolicy replaces DefaultRetryPolicy.
func WithRetryPolicy(p RetryPolicy) Option { return func(c *Client) { c.retry = p } }

// WithUserAgent sets the User-Agent's product (default "wasmwizard-go").
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a Client of the API at baseURL (scheme and host, and a path
// prefix if the API is served under one) with an API key.
func New(baseURL, key string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("api url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("api url %q: want http(s)://host[:port]", baseURL)
	}
	c := &Client{base: u, token: key, http: &http.Client{}, userAgent: "wasmwizard-go", retry: DefaultRetryPolicy}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// BaseURL is the API's URL.
func (c *Client) BaseURL() string { return c.base.String() }

// request is one API call.
type request struct {
	method string
	path   string // under the base URL, with its leading slash
	query  url.Values
	body   []byte // sent again on a retry
	ctype  string
	header http.Header
	// safe: the call may be repeated after a failed connection or a 5xx.
	safe bool
	// progress, when set, is told of each part of the body as it is sent.
	progress func(n int)
}

// send makes the call, retrying per the policy, and returns a 2xx answer
// with its body open (the caller closes it), or the error.
func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	u := *c.base
	u.Path += r.path
	u.RawPath = ""
	if len(r.query) > 0 {
		u.RawQuery = r.query.Encode()
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, r.method, u.String(), nil)
		if err != nil {
			return nil, err
		}
		if r.body != nil {
			var body io.Reader = bytes.NewReader(r.body)
			if r.progress != nil {
				body = &progressReader{r: body, fn: r.progress}
			}
			req.Body = io.NopCloser(body)
			req.ContentLength = int64(len(r.body))
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(r.body)), nil }
		}
		for k, vs := range r.header {
			req.Header[k] = vs
		}
		if r.ctype != "" {
			req.Header.Set("Content-Type", r.ctype)
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		req.Header.Set("User-Agent", c.userAgent+"/"+Version)
		res, err := c.http.Do(req)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil || !r.safe || attempt >= c.retry.MaxRetries {
				return nil, err
			}
		case res.StatusCode < 300:
			return res, nil
		default:
			e := problemFrom(res)
			_ = res.Body.Close()
			retryable := e.Status == http.StatusTooManyRequests ||
				r.safe && (e.Status == http.StatusBadGateway || e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout)
			if !retryable || attempt >= c.retry.MaxRetries || e.RetryAfter > c.retry.MaxRetryWait {
				return nil, e
			}
			wait = e.RetryAfter
		}
		wait = max(wait, c.backoff(attempt))
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			if err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w (no time left to retry in %v)", context.DeadlineExceeded, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// backoff is the delay before retry attempt+1: exponential, capped, with
// jitter over its upper half.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.retry.BaseDelay
	for i := 0; i < attempt && d < c.retry.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, c.retry.MaxDelay)
	if d <= 0 {
		return 0
	}
	return d/2 + mathrand.N(d/2+1) //nolint:gosec // jitter spreads retries, not a secret
}

// do makes the call and decodes a JSON answer into out (when not nil).
func (c *Client) do(ctx context.Context, r request, out any) (http.Header, error) {
	res, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	defer func() { _ = res.Body.Close() }()
	if out == nil || res.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
		return res.Header, nil
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return nil, fmt.Errorf("%s %s: decode answer: %w", r.method, r.path, err)
	}
	return res.Header, nil
}

// jsonBody encodes v as a request body.
func jsonBody(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return b.Bytes(), nil
}

// get reads a route into out; its safe to repeat.
func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	_, err := c.do(ctx, request{method: http.MethodGet, path: path, query: q, safe: true}, out)
	return err
}

// postJSON sends v as JSON.
func (c *Client) postJSON(ctx context.Context, method, path string, v any, safe bool, out any) error {
	var body []byte
	if v != nil {
		var err error
		if body, err = jsonBody(v); err != nil {
			return err
		}
	}
	r := request{method: method, path: path, body: body, safe: safe}
	if body != nil {
		r.ctype = "application/json"
	}
	_, err := c.do(ctx, r, out)
	return err
}

// listQuery renders ListOptions.
func listQuery(o ListOptions) url.Values {
	q := url.Values{}
	if o.Limit > 0 {
		q.Set("limit", fmt.Sprint(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	return q
}

// seg escapes one path segment (an ID from a caller).
func seg(s string) string { return url.PathEscape(s) }

// NewIdempotencyKey returns a random key for Idempotency-Key.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "wz-" + hex.EncodeToString(b[:])
}

type progressReader struct {
	r  io.Reader
	fn func(int)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.fn(n)
	}
	return n, err
}

// IsCode reports whether err is an *Error with this code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
