package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"time"
)

// SubmitOptions are the options of Submit.
type SubmitOptions struct {
	// IdempotencyKey is sent as Idempotency-Key; empty: a new random key,
	// so that retries of this call create one job.
	IdempotencyKey string
	// Wait, when positive, holds the answer until the job is terminal or
	// Wait passes (?wait=, at most 60 s).
	Wait time.Duration
	// Uploads are input files sent as parts of a multipart/form-data
	// request instead of in the JSON body (for large or binary files).
	Uploads []Upload
}

// Upload is an input file sent as a multipart part.
type Upload struct {
	Path    string // the guest path, e.g. /in/data.bin
	Content []byte
}

// Submit submits a job (POST /v1/jobs). The answer is the queued job, or
// with Wait the job as it is when the wait ends. A request repeated with
// the same Idempotency-Key answers the job the first one created.
func (c *Client) Submit(ctx context.Context, req JobRequest, opts *SubmitOptions) (*Job, error) {
	if opts == nil {
		opts = &SubmitOptions{}
	}
	key := opts.IdempotencyKey
	if key == "" {
		key = NewIdempotencyKey()
	}
	r := request{method: http.MethodPost, path: "/v1/jobs", safe: true,
		header: http.Header{"Idempotency-Key": {key}}}
	if opts.Wait > 0 {
		r.query = url.Values{"wait": {waitParam(opts.Wait)}}
	}
	var err error
	if len(opts.Uploads) == 0 {
		r.body, err = jsonBody(req)
		r.ctype = "application/json"
	} else {
		r.body, r.ctype, err = multipartJob(req, opts.Uploads)
	}
	if err != nil {
		return nil, err
	}
	var j Job
	_, err = c.do(ctx, r, &j)
	return &j, err
}

// multipartJob renders a job request with file parts.
func multipartJob(req JobRequest, uploads []Upload) ([]byte, string, error) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="job"`)
	h.Set("Content-Type", "application/json")
	p, err := w.CreatePart(h)
	if err != nil {
		return nil, "", err
	}
	js, err := jsonBody(req)
	if err != nil {
		return nil, "", err
	}
	_, _ = p.Write(js)
	for _, u := range uploads {
		fp, err := w.CreateFormFile("file", u.Path)
		if err != nil {
			return nil, "", err
		}
		_, _ = fp.Write(u.Content)
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return b.Bytes(), w.FormDataContentType(), nil
}

// maxWait is the longest ?wait= the API takes.
const maxWait = 60 * time.Second

func waitParam(d time.Duration) string {
	d = min(d, maxWait)
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10) + "ms"
}

// SubmitBatch submits up to 100 jobs at once (POST /v1/jobs/batch); each
// item is the job or the error refusing it, in request order. A batch
// carries no Idempotency-Key, so it is retried only on 429.
func (c *Client) SubmitBatch(ctx context.Context, reqs []JobRequest) ([]BatchItem, error) {
	var out Page[BatchItem]
	err := c.postJSON(ctx, http.MethodPost, "/v1/jobs/batch", map[string]any{"jobs": reqs}, false, &out)
	return out.Data, err
}

// GetJob reads a job as it is now.
func (c *Client) GetJob(ctx context.Context, id string) (*Job, error) {
	var j Job
	return &j, c.get(ctx, "/v1/jobs/"+seg(id), nil, &j)
}

// Wait returns the job once it is terminal, long-polling with ?wait= (the
// API answers as soon as the job finishes). It returns the context's error
// when ctx ends first.
func (c *Client) Wait(ctx context.Context, id string) (*Job, error) {
	for {
		wait := maxWait
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl))
		}
		if wait <= 0 {
			return nil, context.DeadlineExceeded
		}
		var j Job
		if err := c.get(ctx, "/v1/jobs/"+seg(id), url.Values{"wait": {waitParam(wait)}}, &j); err != nil {
			return nil, err
		}
		if j.Terminal() {
			return &j, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// ListJobs reads a page of the account's jobs, newest first. Finished jobs
// in a page carry no outputs (OutputOmitted); GetJob has them.
func (c *Client) ListJobs(ctx context.Context, f JobFilter) (*Page[Job], error) {
	q := listQuery(f.ListOptions)
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	if f.ModuleID != "" {
		q.Set("module_id", f.ModuleID)
	}
	if !f.CreatedAfter.IsZero() {
		q.Set("created_after", f.CreatedAfter.UTC().Format(time.RFC3339Nano))
	}
	if !f.CreatedBefore.IsZero() {
		q.Set("created_before", f.CreatedBefore.UTC().Format(time.RFC3339Nano))
	}
	var p Page[Job]
	return &p, c.get(ctx, "/v1/jobs", q, &p)
}

// CancelJob cancels a queued or running job and returns it cancelled; a
// job already terminal is an *Error with CodeConflict.
func (c *Client) CancelJob(ctx context.Context, id string) (*Job, error) {
	var j Job
	return &j, c.postJSON(ctx, http.MethodPost, "/v1/jobs/"+seg(id)+"/cancel", nil, false, &j)
}

// JobEvents reads a job's audit trail, oldest first.
func (c *Client) JobEvents(ctx context.Context, id string) ([]Event, error) {
	var p Page[Event]
	return p.Data, c.get(ctx, "/v1/jobs/"+seg(id)+"/events", nil, &p)
}

// JobDeliveries reads a job's webhook delivery with its attempts (empty
// without a webhook_url or before the job finished).
func (c *Client) JobDeliveries(ctx context.Context, id string) ([]Delivery, error) {
	var p Page[Delivery]
	return p.Data, c.get(ctx, "/v1/jobs/"+seg(id)+"/deliveries", nil, &p)
}

// RetryDelivery sends a job's webhook delivery again.
func (c *Client) RetryDelivery(ctx context.Context, id string) (*Delivery, error) {
	var d Delivery
	return &d, c.postJSON(ctx, http.MethodPost, "/v1/jobs/"+seg(id)+"/deliveries/retry", nil, false, &d)
}

// ListArtifacts lists the files a job kept.
func (c *Client) ListArtifacts(ctx context.Context, id string) ([]Artifact, error) {
	var p Page[Artifact]
	return p.Data, c.get(ctx, "/v1/jobs/"+seg(id)+"/artifacts", nil, &p)
}

// Download is an artifact's bytes being read; the caller closes it.
type Download struct {
	io.ReadCloser
	// Size is the Content-Length, or -1 when unknown.
	Size int64
	// ETag is the answer's ETag.
	ETag string
}

// DownloadArtifact reads one artifact's bytes (path as listed, e.g.
// /out/a.wav).
func (c *Client) DownloadArtifact(ctx context.Context, id, path string) (*Download, error) {
	return c.download(ctx, "/v1/jobs/"+seg(id)+"/artifacts/"+escapePath(path), nil)
}

// DownloadArtifactsTar reads all of a job's artifacts as one tar.
func (c *Client) DownloadArtifactsTar(ctx context.Context, id string) (*Download, error) {
	return c.download(ctx, "/v1/jobs/"+seg(id)+"/artifacts", url.Values{"format": {"tar"}})
}

func (c *Client) download(ctx context.Context, path string, q url.Values) (*Download, error) {
	res, err := c.send(ctx, request{method: http.MethodGet, path: path, query: q, safe: true}) //nolint:bodyclose // the caller closes the Download
	if err != nil {
		return nil, err
	}
	return &Download{ReadCloser: res.Body, Size: res.ContentLength, ETag: res.Header.Get("ETag")}, nil
}

// escapePath escapes each segment of a guest path, without its leading
// slash.
func escapePath(p string) string {
	var b bytes.Buffer
	for i, s := range splitPath(p) {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

func splitPath(p string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			if i > start {
				out = append(out, p[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// Account reads the caller's account, its tier's limits and its usage.
func (c *Client) Account(ctx context.Context) (*Account, error) {
	var a Account
	return &a, c.get(ctx, "/v1/account", nil, &a)
}

// RotateWebhookSecret gives the account a new webhook secret; the previous
// one keeps signing for 24 h.
func (c *Client) RotateWebhookSecret(ctx context.Context) (*SecretRotation, error) {
	var s SecretRotation
	return &s, c.postJSON(ctx, http.MethodPost, "/v1/account/webhook-secret/rotate", nil, false, &s)
}

// Health reads GET /health (no key needed).
func (c *Client) Health(ctx context.Context) (map[string]any, error) {
	var h map[string]any
	return h, c.get(ctx, "/health", nil, &h)
}

func decodeJSON(res *http.Response, out any) error {
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", res.Request.Method, res.Request.URL.Path, err)
	}
	return nil
}
