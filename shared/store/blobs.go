package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

// ChunkSize is the size of a file blob's chunks (file_blob_chunks): every
// chunk but the last of a blob holds exactly this many bytes, so that a
// reader finds any offset's chunk by division. It bounds what writing or
// reading a blob holds in memory, whatever the blob's size.
const ChunkSize = 1 << 20

// PutBlob stores content as the account's blob of its SHA-256 and returns
// the SHA-256 (hex). A blob the account already has is kept (its age is
// reset, so that the purge leaves it alone while the row that refers to it
// is written). Blobs are per account, like module bytes: the cost of a
// write does not tell whether another account has the same bytes.
func (s *Store) PutBlob(ctx context.Context, accountID uuid.UUID, content []byte) (string, error) {
	sum := sha256.Sum256(content)
	hexSum := hex.EncodeToString(sum[:])
	if len(content) <= ChunkSize {
		// One statement: the blob row and its only chunk, or nothing new.
		_, err := s.db.ExecContext(ctx, `
			WITH b AS (
				INSERT INTO file_blobs (account_id, sha256, size_bytes) VALUES ($1, $2, $3)
				ON CONFLICT (account_id, sha256) DO UPDATE SET created_at = now()
				RETURNING id, (xmax = 0) AS fresh
			)
			INSERT INTO file_blob_chunks (blob_id, seq, data) SELECT id, 0, $4 FROM b WHERE fresh AND $3 > 0`,
			accountID, sum[:], len(content), nonNil(content))
		if err != nil {
			return "", wrapDB(err, "write blob")
		}
		return hexSum, nil
	}
	found, err := s.touchBlob(ctx, s.db, accountID, sum[:])
	if err != nil || found {
		return hexSum, err
	}
	w := s.NewBlobWriter(ctx, accountID)
	if _, err := w.Write(content); err != nil {
		w.Abort()
		return "", err
	}
	got, _, err := w.Commit()
	return got, err
}

// touchBlob resets the age of the account's blob of sum and reports
// whether it exists.
func (s *Store) touchBlob(ctx context.Context, q sqlx.QueryerContext, accountID uuid.UUID, sum []byte) (bool, error) {
	var id int64
	err := sqlx.GetContext(ctx, q, &id, `UPDATE file_blobs SET created_at = now()
		WHERE account_id = $1 AND sha256 = $2 RETURNING id`, accountID, sum)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, wrapDB(err, "find blob")
}

// BlobWriter streams bytes into a new blob of an account, a chunk at a
// time, holding at most ChunkSize bytes: the blob is a pending row
// (sha256 NULL) until Commit names it by its SHA-256. A writer that is
// neither committed nor aborted leaves a pending row that the reconciler's
// purge removes after an hour.
type BlobWriter struct {
	s         *Store
	ctx       context.Context
	accountID uuid.UUID
	id        int64 // the pending row, once made
	seq       int
	buf       []byte
	sum       hash.Hash
	n         int64
	err       error
}

// NewBlobWriter starts a blob of the account. ctx bounds every statement
// of the writer's.
func (s *Store) NewBlobWriter(ctx context.Context, accountID uuid.UUID) *BlobWriter {
	return &BlobWriter{s: s, ctx: ctx, accountID: accountID, sum: sha256.New()}
}

// Write adds p to the blob.
func (w *BlobWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	written := 0
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, ChunkSize)
		}
		k := min(len(p), ChunkSize-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		w.sum.Write(p[:k])
		w.n += int64(k)
		written += k
		p = p[k:]
		if len(w.buf) == ChunkSize {
			if err := w.flush(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// flush writes the buffered chunk.
func (w *BlobWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if w.id == 0 {
		if err := w.s.db.GetContext(w.ctx, &w.id, `INSERT INTO file_blobs (account_id) VALUES ($1) RETURNING id`,
			w.accountID); err != nil {
			w.err = wrapDB(err, "start blob")
			return w.err
		}
	}
	if _, err := w.s.db.ExecContext(w.ctx, `INSERT INTO file_blob_chunks (blob_id, seq, data) VALUES ($1, $2, $3)`,
		w.id, w.seq, w.buf); err != nil {
		w.err = wrapDB(err, "write blob chunk")
		return w.err
	}
	w.seq++
	w.buf = w.buf[:0]
	return nil
}

// Size is the number of bytes written so far.
func (w *BlobWriter) Size() int64 { return w.n }

// Commit writes the last chunk and makes the blob the account's blob of
// its SHA-256 (hex, returned with the size). When the account has that
// blob already, the new copy is dropped and the existing one kept.
func (w *BlobWriter) Commit() (string, int64, error) {
	if w.err != nil {
		return "", 0, w.err
	}
	if w.id == 0 {
		// At most one chunk, still buffered: PutBlob writes it in one
		// statement.
		sum, err := w.s.PutBlob(w.ctx, w.accountID, w.buf)
		w.err = errors.New("blob writer: already committed")
		return sum, w.n, err
	}
	if err := w.flush(); err != nil {
		return "", 0, err
	}
	sum := w.sum.Sum(nil)
	for attempt := 0; ; attempt++ {
		err := w.name(sum)
		var pqErr *pq.Error
		if attempt == 0 && errors.As(err, &pqErr) && pqErr.Code == "23505" {
			continue // a concurrent writer of the same bytes committed first
		}
		if err != nil {
			w.Abort()
			return "", 0, wrapDB(err, "commit blob")
		}
		w.err = errors.New("blob writer: already committed")
		return hex.EncodeToString(sum), w.n, nil
	}
}

// name gives the pending blob its SHA-256, or drops it for the account's
// existing copy.
func (w *BlobWriter) name(sum []byte) error {
	tx, err := w.s.db.BeginTxx(w.ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	found, err := w.s.touchBlob(w.ctx, tx, w.accountID, sum)
	if err != nil {
		return err
	}
	if found {
		_, err = tx.ExecContext(w.ctx, `DELETE FROM file_blobs WHERE id = $1`, w.id)
	} else {
		_, err = tx.ExecContext(w.ctx, `UPDATE file_blobs SET sha256 = $2, size_bytes = $3, created_at = now()
			WHERE id = $1`, w.id, sum, w.n)
	}
	if err != nil {
		return err
	}
	return tx.Commit()
}

// Abort drops what the writer wrote.
func (w *BlobWriter) Abort() {
	if w.id != 0 {
		_, _ = w.s.db.ExecContext(context.WithoutCancel(w.ctx), `DELETE FROM file_blobs WHERE id = $1 AND sha256 IS NULL`, w.id)
		w.id = 0
	}
	w.err = errors.New("blob writer: aborted")
}

// blobRef is a stored blob: its row and size.
type blobRef struct {
	ID   int64 `db:"id"`
	Size int64 `db:"size_bytes"`
}

// findBlob finds the blob of a SHA-256 (hex): the account's copy when
// accountID is not nil, else any account's (they are the same bytes).
func (s *Store) findBlob(ctx context.Context, accountID uuid.UUID, hexSum string) (blobRef, error) {
	sum, err := hex.DecodeString(hexSum)
	if err != nil || len(sum) != sha256.Size {
		return blobRef{}, apperr.New(apperr.NotFound, "blob %q not found", hexSum)
	}
	var b blobRef
	if accountID == uuid.Nil {
		err = s.db.GetContext(ctx, &b, `SELECT id, size_bytes FROM file_blobs WHERE sha256 = $1 LIMIT 1`, sum)
	} else {
		err = s.db.GetContext(ctx, &b, `SELECT id, size_bytes FROM file_blobs WHERE account_id = $1 AND sha256 = $2`,
			accountID, sum)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return blobRef{}, apperr.New(apperr.NotFound, "blob %s not found", hexSum)
	}
	return b, wrapDB(err, "find blob")
}

// WriteBlobTo streams the blob's bytes (any account's copy of that
// SHA-256, in hex) to w, chunk by chunk, and returns how many it wrote.
// It holds one chunk (ChunkSize) at a time.
func (s *Store) WriteBlobTo(ctx context.Context, sha256 string, w io.Writer) (int64, error) {
	b, err := s.findBlob(ctx, uuid.Nil, sha256)
	if err != nil {
		return 0, err
	}
	return s.copyBlob(ctx, b, w)
}

func (s *Store) copyBlob(ctx context.Context, b blobRef, w io.Writer) (int64, error) {
	var n int64
	for seq := 0; n < b.Size; seq++ {
		var data []byte
		err := s.db.GetContext(ctx, &data, `SELECT data FROM file_blob_chunks WHERE blob_id = $1 AND seq = $2`, b.ID, seq)
		if errors.Is(err, sql.ErrNoRows) {
			return n, fmt.Errorf("read blob %d: chunk %d is missing", b.ID, seq)
		}
		if err != nil {
			return n, wrapDB(err, "read blob chunk")
		}
		k, err := w.Write(data)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// BlobReader reads a blob from Postgres as an io.ReadSeeker (for
// http.ServeContent: ranges, and files larger than memory), holding at most
// one chunk.
type BlobReader struct {
	s    *Store
	ctx  context.Context
	blob blobRef
	pos  int64
	buf  []byte // the bytes from bufAt
	at   int64
}

// OpenBlob opens the account's blob of a SHA-256 (hex) for reading.
func (s *Store) OpenBlob(ctx context.Context, accountID uuid.UUID, sha256 string) (*BlobReader, error) {
	b, err := s.findBlob(ctx, accountID, sha256)
	if err != nil {
		return nil, err
	}
	return &BlobReader{s: s, ctx: ctx, blob: b}, nil
}

// Size is the blob's size in bytes.
func (r *BlobReader) Size() int64 { return r.blob.Size }

// Read implements io.Reader. A read past the buffered bytes fetches the
// rest of the chunk the position falls in (only that part, thanks to
// uncompressed out-of-line storage).
func (r *BlobReader) Read(p []byte) (int, error) {
	if r.pos >= r.blob.Size {
		return 0, io.EOF
	}
	if r.pos < r.at || r.pos >= r.at+int64(len(r.buf)) {
		seq := r.pos / ChunkSize
		off := r.pos % ChunkSize
		var data []byte
		err := r.s.db.GetContext(r.ctx, &data, `SELECT substring(data FROM $3 FOR $4) FROM file_blob_chunks
			WHERE blob_id = $1 AND seq = $2`, r.blob.ID, seq, off+1, ChunkSize-off)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && len(data) == 0) {
			return 0, fmt.Errorf("read blob %d: chunk %d is missing", r.blob.ID, seq)
		}
		if err != nil {
			return 0, wrapDB(err, "read blob chunk")
		}
		r.buf, r.at = data, r.pos
	}
	n := copy(p, r.buf[r.pos-r.at:])
	r.pos += int64(n)
	return n, nil
}

// Seek implements io.Seeker.
func (r *BlobReader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.pos + offset
	case io.SeekEnd:
		abs = r.blob.Size + offset
	default:
		return 0, errors.New("blob reader: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("blob reader: negative position")
	}
	r.pos = abs
	return abs, nil
}
