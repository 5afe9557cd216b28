package httpapi

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/apiobject"
	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/assettar"
	"github.com/wasmwizard/wasmwizard/shared/guestpath"
	"github.com/wasmwizard/wasmwizard/shared/jobview"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
)

// Limits on a job request's files that do not depend on the tier.
const (
	maxInputFiles = 1000
	maxPreopens   = 16
	// multipartOverhead is what a multipart job request may hold beyond
	// its job part and its files' bytes: part headers and boundaries.
	multipartOverhead = 1 << 20
)

// fileRequest is one of a job request's files.
type fileRequest struct {
	Path     string `json:"path"`
	Content  string `json:"content"`
	Encoding string `json:"encoding,omitempty"`
	Mode     string `json:"mode,omitempty"`
	// data is the decoded content (decodeFiles, or a multipart part).
	data    []byte
	decoded bool
}

// decodeFiles decodes the request's file contents (utf8 or base64) into
// data, reporting every file whose encoding or content is invalid.
func decodeFiles(req *jobRequest) []apperr.FieldError {
	var errs []apperr.FieldError
	if len(req.Files) > maxInputFiles {
		return []apperr.FieldError{{Field: "files", Message: fmt.Sprintf("has %d entries, at most %d are allowed", len(req.Files), maxInputFiles)}}
	}
	for i := range req.Files {
		f := &req.Files[i]
		if f.decoded {
			continue
		}
		switch f.Encoding {
		case "", "utf8":
			f.data = []byte(f.Content)
		case "base64":
			b, err := base64.StdEncoding.DecodeString(f.Content)
			if err != nil {
				errs = append(errs, apperr.FieldError{Field: fmt.Sprintf("files[%d].content", i), Message: "is not valid base64"})
			}
			f.data = b
		default:
			errs = append(errs, apperr.FieldError{Field: fmt.Sprintf("files[%d].encoding", i), Message: "must be utf8 or base64"})
		}
		f.Content, f.decoded = "", true // held once, as bytes
	}
	return errs
}

// hashedFiles is the form of the request's files that requestHash encodes:
// the same bytes hash alike whichever way (JSON, base64, multipart) they
// came.
func hashedFiles(fs []fileRequest) []fileRequest {
	if fs == nil {
		return nil
	}
	out := make([]fileRequest, len(fs))
	for i, f := range fs {
		sum := sha256.Sum256(f.data)
		mode := f.Mode
		if mode == "" {
			mode = store.ModeReadWrite
		}
		out[i] = fileRequest{Path: f.Path, Mode: mode, Encoding: "sha256", Content: hex.EncodeToString(sum[:])}
	}
	return out
}

// buildFiles validates the request's files, preopens and collect patterns
// against each other and the tier, and sets them on j. Field errors are
// reported through bad; the size over the tier's limit is returned as
// input_too_large, once the rest is valid.
func buildFiles(req jobRequest, t store.Tier, j *store.Job, bad func(field, format string, args ...any)) error {
	j.MaxFSBytes, j.MaxArtifactBytes = t.MaxFSBytes, t.MaxArtifactBytes
	preopens := req.Preopens
	if preopens == nil {
		preopens = []string{"/"}
	}
	if len(preopens) > maxPreopens {
		bad("preopens", "has %d entries, at most %d are allowed", len(preopens), maxPreopens)
		preopens = nil
	}
	dirs := make([]string, 0, len(preopens))
	seenDir := map[string]bool{}
	for i, p := range preopens {
		d, err := guestpath.PreopenDir(p)
		if err != nil {
			bad(fmt.Sprintf("preopens[%d]", i), "%v", err)
			continue
		}
		if seenDir[d] {
			bad(fmt.Sprintf("preopens[%d]", i), "names the directory %s again", d)
			continue
		}
		seenDir[d] = true
		dirs = append(dirs, d)
	}
	j.Preopens = preopens

	if len(req.Collect) > guestpath.MaxPatterns {
		bad("collect", "has %d patterns, at most %d are allowed", len(req.Collect), guestpath.MaxPatterns)
	} else {
		for i, p := range req.Collect {
			if err := guestpath.Pattern(p); err != nil {
				bad(fmt.Sprintf("collect[%d]", i), "%v", err)
			}
		}
	}
	j.Collect = req.Collect

	var total int64
	files := make(map[string]bool, len(req.Files))
	for i, f := range req.Files {
		field := fmt.Sprintf("files[%d]", i)
		total += int64(len(f.data))
		if f.Mode != "" && f.Mode != store.ModeReadOnly && f.Mode != store.ModeReadWrite {
			bad(field+".mode", "must be ro or rw")
		}
		if err := guestpath.File(f.Path); err != nil {
			bad(field+".path", "%v", err)
			continue
		}
		if files[f.Path] {
			bad(field+".path", "%s is given twice", f.Path)
			continue
		}
		files[f.Path] = true
		under := false
		for _, d := range dirs {
			under = under || guestpath.Under(f.Path, d)
		}
		if !under {
			bad(field+".path", "%s is under none of the preopens (%s)", f.Path, strings.Join(dirs, ", "))
		}
	}
	// A file cannot also be a directory of another.
	for p := range files {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if files[d] {
				bad("files", "%s is a file and the directory of %s", d, p)
				break
			}
		}
	}
	if len(req.Files) > 0 {
		j.Files = make([]store.JobInput, len(req.Files))
		for i, f := range req.Files {
			j.Files[i] = store.JobInput{Path: f.Path, Mode: f.Mode, Content: f.data}
		}
	}
	if total > t.MaxInputBytes {
		return apperr.New(apperr.InputTooLarge,
			"the request's files take %d bytes; the %s tier's max_input_bytes is %d", total, t.Name, t.MaxInputBytes)
	}
	return nil
}

// jobBodyLimit bounds a job request's body by the caller's tier: a JSON
// request may carry its files' bytes twice over (base64 takes 4/3, and
// JSON escapes some more), a multipart request its files' bytes plus part
// headers; a batch is bounded like one request. Everything else under
// /v1/jobs gets the fixed limit.
func (s *Server) jobsBodyLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		n := int64(jobBodyLimit)
		if r.Method == http.MethodPost && (c.Path() == "/v1/jobs" || c.Path() == "/v1/jobs/batch") {
			files := principal(c).Tier.MaxInputBytes
			if mt, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType)); mt == "multipart/form-data" {
				n += files + multipartOverhead
			} else {
				n += 2 * files
			}
		}
		if r.ContentLength > n {
			return apperr.New(apperr.RequestTooLarge, "the request body is larger than %d bytes (for files past the tier's max_input_bytes, %d, the answer would be input_too_large)",
				n, principal(c).Tier.MaxInputBytes)
		}
		r.Body = &limitedBody{rc: r.Body, left: n, limit: n}
		return next(c)
	}
}

// readMultipartJob reads a multipart/form-data job request: one "job" part
// with the JSON request, and "file" parts whose filename is the guest path
// (mode rw). The files' bytes are counted while they stream in: past the
// tier's max_input_bytes the request fails at once, having held at most
// that many bytes of them.
func readMultipartJob(c echo.Context, t store.Tier, boundary string) (jobRequest, error) {
	mr := multipart.NewReader(c.Request().Body, boundary)
	var req jobRequest
	var parts []fileRequest
	haveJob := false
	var total int64
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if apperr.As(err) != nil {
				return jobRequest{}, err
			}
			return jobRequest{}, apperr.Validation(apperr.FieldError{Field: "body", Message: "malformed multipart body: " + err.Error()})
		}
		switch part.FormName() {
		case "job":
			if haveJob {
				return jobRequest{}, apperr.Validation(apperr.FieldError{Field: "job", Message: "send exactly one job part"})
			}
			haveJob = true
			b, err := io.ReadAll(io.LimitReader(part, jobBodyLimit+1))
			if err != nil {
				return jobRequest{}, partErr("job", err)
			}
			if len(b) > jobBodyLimit {
				return jobRequest{}, apperr.Validation(apperr.FieldError{Field: "job", Message: fmt.Sprintf("is larger than %d bytes", jobBodyLimit)})
			}
			if err := decodeJSONBytes(b, &req); err != nil {
				return jobRequest{}, err
			}
		case "file":
			// FileName() would keep only the last element; the guest path
			// is the whole filename parameter.
			_, params, _ := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
			name, ok := params["filename"]
			if !ok || name == "" {
				return jobRequest{}, apperr.Validation(apperr.FieldError{Field: "file", Message: "each file part needs a filename: the file's guest path"})
			}
			if len(parts) >= maxInputFiles {
				return jobRequest{}, apperr.Validation(apperr.FieldError{Field: "file", Message: fmt.Sprintf("at most %d files are allowed", maxInputFiles)})
			}
			left := t.MaxInputBytes - total
			b, err := io.ReadAll(io.LimitReader(part, left+1))
			if err != nil {
				return jobRequest{}, partErr("file", err)
			}
			if int64(len(b)) > left {
				return jobRequest{}, apperr.New(apperr.InputTooLarge,
					"the request's files take more than the %s tier's max_input_bytes, %d bytes", t.Name, t.MaxInputBytes)
			}
			total += int64(len(b))
			parts = append(parts, fileRequest{Path: name, Mode: store.ModeReadWrite, data: b, decoded: true})
		default:
			return jobRequest{}, apperr.Validation(apperr.FieldError{Field: printable(part.FormName()),
				Message: "is not a known part; send a job part and file parts"})
		}
	}
	if !haveJob {
		return jobRequest{}, apperr.Validation(apperr.FieldError{Field: "job", Message: "the multipart form has no job part"})
	}
	req.Files = append(req.Files, parts...)
	return req, nil
}

func partErr(field string, err error) error {
	if apperr.As(err) != nil {
		return err
	}
	return apperr.Validation(apperr.FieldError{Field: field, Message: "could not be read: " + err.Error()})
}

// listArtifacts is GET /v1/jobs/{id}/artifacts: the list, or with
// ?format=tar all of them as one tar.
func (s *Server) listArtifacts(c echo.Context) error {
	id, err := pathID(c, "job")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	as, err := s.store.JobArtifacts(ctx, principal(c).AccountID, id)
	if err != nil {
		return err
	}
	switch c.QueryParam("format") {
	case "":
		return c.JSON(http.StatusOK, dataView[jobview.Artifact]{Data: jobview.Artifacts(as)})
	case "tar":
		return s.writeArtifactsTar(c, id, as)
	default:
		return apperr.Validation(apperr.FieldError{Field: "format", Message: "must be tar, or absent for the list"})
	}
}

// writeArtifactsTar streams a job's artifacts as one tar, each file read a
// chunk at a time from Postgres. Once the answer has started, a failure
// can only cut it short (the tar then lacks its end marker).
func (s *Server) writeArtifactsTar(c echo.Context, id fmt.Stringer, as []store.Artifact) error {
	ctx := c.Request().Context()
	p := principal(c)
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "application/x-tar")
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s-artifacts.tar"`, id))
	c.Response().WriteHeader(http.StatusOK)
	w := deadlineWriter{w: c.Response(), rc: http.NewResponseController(c.Response())}
	tw := tar.NewWriter(w)
	for _, a := range as {
		r, err := s.store.OpenBlob(ctx, p.AccountID, a.SHA256)
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(a.Path, "/"), Typeflag: tar.TypeReg,
				Mode: 0o644, Size: a.SizeBytes, ModTime: time.Unix(0, 0)})
		}
		if err == nil {
			_, err = io.Copy(tw, r)
		}
		if err != nil {
			s.log.Warn("artifact tar cut short", zap.String("job_id", id.String()), zap.String("path", a.Path), zap.Error(err))
			return s.abortOnError(c, err)
		}
	}
	return s.abortOnError(c, tw.Close())
}

// getArtifact answers one artifact's bytes: Content-Length, an ETag of its
// SHA-256, conditional and range requests (http.ServeContent over a reader
// that fetches a chunk at a time).
func (s *Server) getArtifact(c echo.Context) error {
	id, err := pathID(c, "job")
	if err != nil {
		return err
	}
	p := "/" + strings.TrimPrefix(c.Param("*"), "/")
	if err := guestpath.File(p); err != nil || !utf8.ValidString(p) {
		return apperr.New(apperr.NotFound, "job %s has no artifact %q", id, printable(p))
	}
	ctx := c.Request().Context()
	a, err := s.store.JobArtifact(ctx, principal(c).AccountID, id, p)
	if err != nil {
		return err
	}
	r, err := s.store.OpenBlob(ctx, principal(c).AccountID, a.SHA256)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "application/octet-stream")
	h.Set("ETag", `"`+a.SHA256+`"`)
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s"`, strings.ReplaceAll(path.Base(p), `"`, "_")))
	http.ServeContent(c.Response(), c.Request(), "", time.Time{}, r)
	return nil
}

// moduleMount reads and checks the module ID of the path and ?mount=.
func moduleMount(c echo.Context) (uuid.UUID, string, error) {
	id, err := pathID(c, "module")
	if err != nil {
		return uuid.Nil, "", err
	}
	mount, err := assetMount(c)
	return id, mount, err
}

// assetMount reads and checks ?mount=.
func assetMount(c echo.Context) (string, error) {
	m := c.QueryParam("mount")
	if m == "" {
		return "", apperr.Validation(apperr.FieldError{Field: "mount", Message: "is required: the absolute path the tree is mounted at, e.g. /share"})
	}
	if err := guestpath.File(m); err != nil {
		return "", apperr.Validation(apperr.FieldError{Field: "mount", Message: err.Error()})
	}
	return m, nil
}

// putAssets is PUT /v1/modules/{id}/assets?mount=: the body, a tar or a
// gzipped tar, is checked while it streams (assettar) and stored
// normalised, a chunk at a time, as a blob of the account; the tree is
// then attached to the module at the mount (201 for a new mount, 200 when
// it replaced the tree there).
func (s *Server) putAssets(c echo.Context) error {
	id, mount, err := moduleMount(c)
	if err != nil {
		return err
	}
	mt, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	switch mt {
	case "application/x-tar", "application/tar", "application/gzip", "application/x-gzip":
	default:
		return apperr.New(apperr.UnsupportedMediaType, "send the asset tree as application/x-tar or application/gzip (a gzipped tar)")
	}
	p := principal(c)
	ctx := c.Request().Context()
	if err := s.admitUpload(ctx, c.Response().Header(), p); err != nil {
		return err
	}
	// The room left for this mount: the tier's limit less the module's
	// other trees (counted again, exactly, when the tree is attached).
	existing, err := s.store.ListModuleAssets(ctx, p.AccountID, id)
	if err != nil {
		return err
	}
	room := p.Tier.MaxAssetBytes
	for _, a := range existing {
		if a.Mount != mount {
			room -= a.SizeBytes
		}
	}
	room = max(room, 0)
	a, created, err := s.storeAssets(c, id, mount, room)
	if err != nil {
		return err
	}
	s.prefetchAssets(ctx, a.SHA256)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.JSON(status, viewAsset(a))
}

// prefetchAssets asks a worker to load a new asset tree before the
// module's next run. Like a pre-compile, it is an optimisation: a failure
// is logged and the upload still succeeds.
func (s *Server) prefetchAssets(ctx context.Context, sum string) {
	task, err := tasks.NewPrefetchAssets(sum, s.queue)
	s.enqueueHint(ctx, task, err, "asset prefetch not enqueued")
}

// storeAssets checks and stores the uploaded tree (at most room bytes of
// files) and attaches it to the module.
func (s *Server) storeAssets(c echo.Context, moduleID uuid.UUID, mount string, room int64) (store.ModuleAsset, bool, error) {
	p := principal(c)
	ctx := c.Request().Context()
	w := s.store.NewBlobWriter(ctx, p.AccountID)
	st, err := assettar.Normalize(c.Request().Body, w, assettar.Limits{MaxFileBytes: room})
	if err != nil {
		w.Abort()
		return store.ModuleAsset{}, false, err
	}
	sum, _, err := w.Commit()
	if err != nil {
		return store.ModuleAsset{}, false, err
	}
	return s.store.PutModuleAsset(ctx, actorOf(c), p.AccountID, moduleID,
		store.ModuleAsset{Mount: mount, SHA256: sum, SizeBytes: st.Bytes, Files: st.Files}, p.Tier.MaxAssetBytes)
}

// assetView is one of a module's asset trees (the SDK reads it with the
// same type).
type assetView = apiobject.Asset

func viewAsset(a store.ModuleAsset) assetView {
	return assetView{Mount: a.Mount, SHA256: a.SHA256, SizeBytes: a.SizeBytes, Files: int64(a.Files), CreatedAt: a.CreatedAt}
}

func (s *Server) listAssets(c echo.Context) error {
	id, err := pathID(c, "module")
	if err != nil {
		return err
	}
	as, err := s.store.ListModuleAssets(c.Request().Context(), principal(c).AccountID, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, dataView[assetView]{Data: viewAll(as, viewAsset)})
}

func (s *Server) deleteAssets(c echo.Context) error {
	id, mount, err := moduleMount(c)
	if err != nil {
		return err
	}
	if err := s.store.DeleteModuleAsset(c.Request().Context(), actorOf(c), principal(c).AccountID, id, mount); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
