package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

// Module ingest: the one way a module's bytes come in, whether uploaded
// (POST /v1/modules) or sent with a synchronous call (POST /api/execute).

// formRoom is what a module's request body may hold beyond the module
// itself: a multipart form's framing and its small text parts.
const formRoom = 64 << 10

// capModuleBody caps r's body at limit+extra bytes, where limit is the
// tier's module size: a body declared or found larger is refused as
// module_too_large, before the module is read or while it streams in.
func capModuleBody(r *http.Request, limit, extra int64) error {
	n := limit + extra
	if r.ContentLength > n {
		return tooLarge(limit)
	}
	r.Body = &limitedBody{rc: r.Body, left: n, limit: n, tooLarge: func() error { return tooLarge(limit) }}
	return nil
}

// readModuleForm reads a multipart form: exactly one part named file, the
// module (at most limit bytes), and each part named in text, read up to
// one byte past its bound so that the caller can tell it is too long.
// Other parts are skipped.
func readModuleForm(mr *multipart.Reader, file string, limit int64, text map[string]int64) ([]byte, map[string][]byte, error) {
	var content []byte
	texts := make(map[string][]byte, len(text))
	found := false
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, formError(err, "body", "malformed multipart body: "+err.Error())
		}
		name := part.FormName()
		bound, isText := text[name]
		switch {
		case name == file:
			if found {
				return nil, nil, apperr.Validation(apperr.FieldError{Field: file, Message: fmt.Sprintf("send exactly one %s part", file)})
			}
			found = true
			if content, err = readCapped(part, limit); err != nil {
				return nil, nil, err
			}
		case isText:
			b, err := io.ReadAll(io.LimitReader(part, bound+1))
			if err != nil {
				return nil, nil, formError(err, name, "could not be read")
			}
			texts[name] = b
		default:
			if _, err := io.Copy(io.Discard, part); err != nil {
				return nil, nil, formError(err, "body", "malformed multipart body")
			}
		}
	}
	if !found {
		return nil, nil, apperr.Validation(apperr.FieldError{Field: file, Message: fmt.Sprintf("the multipart form has no '%s' file part", file)})
	}
	return content, texts, nil
}

// formError is err when it is already the answer (the body's cap), else a
// validation error of field.
func formError(err error, field, message string) error {
	if apperr.As(err) != nil {
		return err
	}
	return apperr.Validation(apperr.FieldError{Field: field, Message: message})
}

// readCapped reads all of r, failing with module_too_large once it passes
// limit bytes.
func readCapped(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, formError(err, "body", "the upload could not be read: "+err.Error())
	}
	if int64(len(b)) > limit {
		return nil, tooLarge(limit)
	}
	return b, nil
}

func tooLarge(limit int64) error {
	return apperr.New(apperr.ModuleTooLarge, "the module is larger than your tier's limit of %d bytes", limit)
}

// ingestModule checks content as a module the caller's tier may run (valid,
// its minimum memory within the tier's) and stores it as one of the
// account's modules, within its quota; created is false when the account
// already had it.
func (s *Server) ingestModule(ctx context.Context, actor store.Actor, p store.Principal, name string, content []byte) (m store.Module, created bool, err error) {
	if len(content) == 0 {
		return store.Module{}, false, apperr.New(apperr.InvalidModule, "the module is empty")
	}
	meta, err := s.inspector.Inspect(ctx, content)
	if err != nil {
		var inv *wasmmeta.InvalidError
		if errors.As(err, &inv) {
			return store.Module{}, false, apperr.New(apperr.InvalidModule, "%s", inv.Reason)
		}
		return store.Module{}, false, fmt.Errorf("inspect module: %w", err)
	}
	if maxPages := uint32(p.Tier.MaxMemoryMB) * pagesPerMiB; meta.MemoryMinPages > maxPages {
		return store.Module{}, false, apperr.New(apperr.InvalidModule, "the module declares a minimum memory of %d MiB, more than the %d MiB the %s tier allows",
			meta.MemoryMinPages/pagesPerMiB, p.Tier.MaxMemoryMB, p.Tier.Name)
	}
	return s.store.CreateModuleWithin(ctx, actor, p.AccountID, name, content, meta, moduleQuota(p.Tier))
}
