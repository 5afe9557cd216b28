package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/guestpath"
)

// Input file modes.
const (
	ModeReadOnly  = "ro"
	ModeReadWrite = "rw"
)

// JobInput is one of a job's input files: its guest path, its mode ("ro" or
// "rw") and its bytes.
type JobInput struct {
	Path    string
	Mode    string
	Content []byte
}

// inputRef is a JobInput whose bytes are stored.
type inputRef struct {
	path, mode, sha256 string
	size               int64
}

// putInputs stores the bytes of j.Files (each distinct content once) and
// fills j.inputs. A job without files stores nothing.
func (s *Store) putInputs(ctx context.Context, j *Job) error {
	if len(j.Files) == 0 {
		return nil
	}
	j.inputs = make([]inputRef, 0, len(j.Files))
	done := make(map[string]string, len(j.Files)) // content → SHA-256
	for _, f := range j.Files {
		sum, ok := done[string(f.Content)]
		if !ok {
			var err error
			if sum, err = s.PutBlob(ctx, j.AccountID, f.Content); err != nil {
				return err
			}
			done[string(f.Content)] = sum
		}
		mode := f.Mode
		if mode == "" {
			mode = ModeReadWrite
		}
		j.inputs = append(j.inputs, inputRef{path: f.Path, mode: mode, sha256: sum, size: int64(len(f.Content))})
	}
	return nil
}

// insertInputs writes a new job's job_inputs rows in one statement.
func insertInputs(ctx context.Context, ex sqlx.ExecerContext, jobID, accountID uuid.UUID, in []inputRef) error {
	paths := make(pq.StringArray, len(in))
	modes := make(pq.StringArray, len(in))
	sums := make(pq.StringArray, len(in))
	sizes := make(pq.Int64Array, len(in))
	for i, r := range in {
		paths[i], modes[i], sums[i], sizes[i] = r.path, r.mode, r.sha256, r.size
	}
	_, err := ex.ExecContext(ctx, `
		INSERT INTO job_inputs (job_id, path, mode, account_id, sha256, size_bytes)
		SELECT $1, p, m, $2, decode(h, 'hex'), n FROM unnest($3::text[], $4::text[], $5::text[], $6::bigint[]) AS t(p, m, h, n)`,
		jobID, accountID, paths, modes, sums, sizes)
	return err
}

// JobInputs returns a job's input files with their bytes, in path order
// (the same every attempt). Files of the same content share one slice.
func (s *Store) JobInputs(ctx context.Context, jobID uuid.UUID) ([]JobInput, error) {
	var rows []struct {
		Path      string    `db:"path"`
		Mode      string    `db:"mode"`
		AccountID uuid.UUID `db:"account_id"`
		SHA256    string    `db:"sha256"`
		Size      int64     `db:"size_bytes"`
	}
	if err := s.db.SelectContext(ctx, &rows, `SELECT path, mode, account_id, encode(sha256, 'hex') AS sha256, size_bytes
		FROM job_inputs WHERE job_id = $1 ORDER BY path`, jobID); err != nil {
		return nil, wrapDB(err, "list job inputs")
	}
	out := make([]JobInput, 0, len(rows))
	read := make(map[string][]byte, len(rows))
	for _, r := range rows {
		content, ok := read[r.SHA256]
		if !ok {
			b, err := s.findBlob(ctx, r.AccountID, r.SHA256)
			if err != nil {
				return nil, err
			}
			// The size is the platform's own record, bounded by the
			// tier's max_input_bytes at submit.
			buf := bytes.NewBuffer(make([]byte, 0, b.Size))
			if _, err := s.copyBlob(ctx, b, buf); err != nil {
				return nil, err
			}
			content = buf.Bytes()
			read[r.SHA256] = content
		}
		out = append(out, JobInput{Path: r.Path, Mode: r.Mode, Content: content})
	}
	return out, nil
}

// ModuleAsset is one of a module's asset trees: mounted read-only at Mount,
// its tar stored as the blob SHA256 (hex); SizeBytes is the bytes of its
// regular files, Files their number.
type ModuleAsset struct {
	Mount     string    `db:"mount"`
	SHA256    string    `db:"sha256"`
	SizeBytes int64     `db:"size_bytes"`
	Files     int       `db:"files"`
	CreatedAt time.Time `db:"created_at"`
}

// ModuleAssets lists a module's asset trees by mount (one indexed query;
// Job.AssetCount tells whether a job's module had any at submit). It does
// not check the module's account: the caller knows the module from a job
// or checked it (ListModuleAssets).
func (s *Store) ModuleAssets(ctx context.Context, moduleID uuid.UUID) ([]ModuleAsset, error) {
	as := []ModuleAsset{}
	err := s.db.SelectContext(ctx, &as, `SELECT mount, encode(sha256, 'hex') AS sha256, size_bytes, files, created_at
		FROM module_assets WHERE module_id = $1 ORDER BY mount`, moduleID)
	return as, wrapDB(err, "list module assets")
}

// ListModuleAssets is ModuleAssets for one of the account's live modules
// (another account's is not found).
func (s *Store) ListModuleAssets(ctx context.Context, accountID, moduleID uuid.UUID) ([]ModuleAsset, error) {
	if _, err := s.GetModule(ctx, accountID, moduleID); err != nil {
		return nil, err
	}
	return s.ModuleAssets(ctx, moduleID)
}

// MaxAssetMounts bounds the asset trees of one module.
const MaxAssetMounts = 16

// PutModuleAsset attaches the tree a (whose tar is the account's blob
// a.SHA256) to one of the account's live modules at a.Mount, replacing the
// tree mounted there. The module's trees, all mounts together, must stay
// within maxBytes (their files' bytes), counted with the module's row
// locked so that concurrent uploads cannot pass it together; past it the
// answer is assets_too_large. It reports whether the mount is new.
func (s *Store) PutModuleAsset(ctx context.Context, actor Actor, accountID, moduleID uuid.UUID, a ModuleAsset, maxBytes int64) (ModuleAsset, bool, error) {
	sum, err := hex.DecodeString(a.SHA256)
	if err != nil {
		return ModuleAsset{}, false, errors.New("put module asset: sha256 is not hex")
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return ModuleAsset{}, false, wrapDB(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	var live bool
	err = tx.GetContext(ctx, &live, `SELECT true FROM modules WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
		FOR NO KEY UPDATE`, moduleID, accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return ModuleAsset{}, false, apperr.New(apperr.NotFound, "module %s not found", moduleID)
	}
	if err != nil {
		return ModuleAsset{}, false, wrapDB(err, "lock module")
	}
	var mounts []struct {
		Mount string `db:"mount"`
		Size  int64  `db:"size_bytes"`
	}
	if err := tx.SelectContext(ctx, &mounts, `SELECT mount, size_bytes FROM module_assets
		WHERE module_id = $1 AND mount <> $2`, moduleID, a.Mount); err != nil {
		return ModuleAsset{}, false, wrapDB(err, "count module assets")
	}
	var others int64
	for _, m := range mounts {
		if guestpath.Under(a.Mount, m.Mount) || guestpath.Under(m.Mount, a.Mount) {
			return ModuleAsset{}, false, apperr.Validation(apperr.FieldError{Field: "mount",
				Message: fmt.Sprintf("%q would nest with the module's asset tree at %q; mounts must not contain each other", a.Mount, m.Mount)})
		}
		others += m.Size
	}
	if len(mounts) >= MaxAssetMounts {
		return ModuleAsset{}, false, apperr.Validation(apperr.FieldError{Field: "mount",
			Message: fmt.Sprintf("the module has %d asset trees, at most %d are allowed", len(mounts), MaxAssetMounts)})
	}
	if others+a.SizeBytes > maxBytes {
		return ModuleAsset{}, false, AssetsTooLarge(others, a.SizeBytes, maxBytes)
	}
	var out struct {
		ModuleAsset
		Fresh bool `db:"fresh"`
	}
	err = tx.GetContext(ctx, &out, `
		INSERT INTO module_assets (module_id, mount, account_id, sha256, size_bytes, files)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (module_id, mount) DO UPDATE SET sha256 = EXCLUDED.sha256, size_bytes = EXCLUDED.size_bytes,
			files = EXCLUDED.files, created_at = now()
		RETURNING mount, encode(sha256, 'hex') AS sha256, size_bytes, files, created_at, (xmax = 0) AS fresh`,
		moduleID, a.Mount, accountID, sum, a.SizeBytes, a.Files)
	if err != nil {
		return ModuleAsset{}, false, wrapDB(err, "write module asset")
	}
	if _, err := tx.ExecContext(ctx, `UPDATE modules SET asset_count = (SELECT count(*) FROM module_assets WHERE module_id = $1)
		WHERE id = $1`, moduleID); err != nil {
		return ModuleAsset{}, false, wrapDB(err, "count module assets")
	}
	if err := audit(ctx, tx, Event{AccountID: &accountID, Actor: actor, Action: "module.asset_attached",
		SubjectType: "module", SubjectID: moduleID.String(),
		Data: map[string]any{"mount": a.Mount, "sha256": out.SHA256, "size_bytes": out.SizeBytes, "files": out.Files}}); err != nil {
		return ModuleAsset{}, false, err
	}
	if err := tx.Commit(); err != nil {
		return ModuleAsset{}, false, wrapDB(err, "commit module asset")
	}
	return out.ModuleAsset, out.Fresh, nil
}

// AssetsTooLarge is the error for a module whose asset trees would pass
// the tier's max_asset_bytes.
func AssetsTooLarge(others, size, limit int64) error {
	if others == 0 {
		return apperr.New(apperr.AssetsTooLarge,
			"the asset tree's files take more than the tier's max_asset_bytes (%d bytes)", limit)
	}
	return apperr.New(apperr.AssetsTooLarge,
		"the module's other asset trees take %d bytes; this one (%d bytes) would pass the tier's max_asset_bytes (%d bytes)",
		others, size, limit)
}

// DeleteModuleAsset detaches the tree mounted at mount from one of the
// account's live modules (not_found if there is none). Jobs that already
// run keep it; its bytes go with the purge once nothing refers to them.
func (s *Store) DeleteModuleAsset(ctx context.Context, actor Actor, accountID, moduleID uuid.UUID, mount string) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return wrapDB(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	var live bool
	err = tx.GetContext(ctx, &live, `SELECT true FROM modules WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
		FOR NO KEY UPDATE`, moduleID, accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return apperr.New(apperr.NotFound, "module %s not found", moduleID)
	}
	if err != nil {
		return wrapDB(err, "lock module")
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM module_assets WHERE module_id = $1 AND mount = $2`, moduleID, mount)
	if err != nil {
		return wrapDB(err, "delete module asset")
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrapDB(err, "delete module asset")
	} else if n == 0 {
		return apperr.New(apperr.NotFound, "module %s has no asset tree at %q", moduleID, mount)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE modules SET asset_count = asset_count - 1 WHERE id = $1`, moduleID); err != nil {
		return wrapDB(err, "count module assets")
	}
	if err := audit(ctx, tx, Event{AccountID: &accountID, Actor: actor, Action: "module.asset_detached",
		SubjectType: "module", SubjectID: moduleID.String(), Data: map[string]any{"mount": mount}}); err != nil {
		return err
	}
	return wrapDB(tx.Commit(), "commit module asset deletion")
}

// ArtifactFile is a file a job's run left that matched its collect
// patterns: its guest path and bytes.
type ArtifactFile struct {
	Path    string
	Content []byte
}

// SaveArtifacts stores a job's artifacts: each file's bytes as a blob of
// the job's account, and its row (idempotent per job and path: a later
// save of the same path replaces it). The worker calls it before it
// finishes the job.
func (s *Store) SaveArtifacts(ctx context.Context, jobID uuid.UUID, files []ArtifactFile) error {
	if len(files) == 0 {
		return nil
	}
	var accountID uuid.UUID
	err := s.db.GetContext(ctx, &accountID, `SELECT account_id FROM jobs WHERE id = $1`, jobID)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrJobGone
	}
	if err != nil {
		return wrapDB(err, "find job account")
	}
	paths := make(pq.StringArray, len(files))
	sums := make(pq.StringArray, len(files))
	sizes := make(pq.Int64Array, len(files))
	for i, f := range files {
		sum, err := s.PutBlob(ctx, accountID, f.Content)
		if err != nil {
			return err
		}
		paths[i], sums[i], sizes[i] = f.Path, sum, int64(len(f.Content))
	}
	_, err = s.db.ExecContext(ctx, `
		INSERT INTO job_artifacts (job_id, path, account_id, sha256, size_bytes)
		SELECT $1, p, $2, decode(h, 'hex'), n FROM unnest($3::text[], $4::text[], $5::bigint[]) AS t(p, h, n)
		ON CONFLICT (job_id, path) DO UPDATE SET sha256 = EXCLUDED.sha256, size_bytes = EXCLUDED.size_bytes,
			created_at = now()`, jobID, accountID, paths, sums, sizes)
	return wrapDB(err, "write job artifacts")
}

// Artifact is a stored artifact of a job.
type Artifact struct {
	Path      string `db:"path"`
	SizeBytes int64  `db:"size_bytes"`
	SHA256    string `db:"sha256"`
}

// JobArtifacts lists the artifacts of one of the account's jobs, in path
// order (another account's job is not found).
func (s *Store) JobArtifacts(ctx context.Context, accountID, jobID uuid.UUID) ([]Artifact, error) {
	as := []Artifact{}
	if err := s.db.SelectContext(ctx, &as, `SELECT path, size_bytes, encode(sha256, 'hex') AS sha256
		FROM job_artifacts WHERE job_id = $1 AND account_id = $2 ORDER BY path`, jobID, accountID); err != nil {
		return nil, wrapDB(err, "list job artifacts")
	}
	if len(as) == 0 {
		if err := s.JobExists(ctx, accountID, jobID); err != nil {
			return nil, err
		}
	}
	return as, nil
}

// LoadArtifacts fills j.Artifacts for a finished job that asked to collect
// files; a job without collect patterns costs no query.
func (s *Store) LoadArtifacts(ctx context.Context, j *Job) error {
	if !j.Status.Terminal() || len(j.Collect) == 0 {
		return nil
	}
	as := []Artifact{}
	if err := s.db.SelectContext(ctx, &as, `SELECT path, size_bytes, encode(sha256, 'hex') AS sha256
		FROM job_artifacts WHERE job_id = $1 ORDER BY path`, j.ID); err != nil {
		return wrapDB(err, "list job artifacts")
	}
	j.Artifacts = as
	return nil
}

// JobArtifact returns one artifact of one of the account's jobs.
func (s *Store) JobArtifact(ctx context.Context, accountID, jobID uuid.UUID, path string) (Artifact, error) {
	var a Artifact
	err := s.db.GetContext(ctx, &a, `SELECT path, size_bytes, encode(sha256, 'hex') AS sha256
		FROM job_artifacts WHERE job_id = $1 AND account_id = $2 AND path = $3`, jobID, accountID, path)
	if errors.Is(err, sql.ErrNoRows) {
		if err := s.JobExists(ctx, accountID, jobID); err != nil {
			return Artifact{}, err
		}
		return Artifact{}, apperr.New(apperr.NotFound, "job %s has no artifact %q", jobID, path)
	}
	return a, wrapDB(err, "get job artifact")
}
