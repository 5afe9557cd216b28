package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

// Module is an account's uploaded module; its bytes live in module_blobs.
type Module struct {
	ID        uuid.UUID               `db:"id"`
	AccountID uuid.UUID               `db:"account_id"`
	Name      string                  `db:"name"`
	SHA256    []byte                  `db:"sha256"`
	SizeBytes int64                   `db:"size_bytes"`
	Imports   JSON[[]wasmmeta.Import] `db:"imports"`
	Exports   JSON[[]wasmmeta.Export] `db:"exports"`
	WASI      bool                    `db:"wasi"`
	CreatedAt time.Time               `db:"created_at"`
	DeletedAt *time.Time              `db:"deleted_at"`
}

// CreateModule stores content (once per SHA-256) and the account's module
// record. If the account already has a live module with the same bytes, that
// module is returned with created == false.
func (s *Store) CreateModule(ctx context.Context, actor Actor, accountID uuid.UUID, name string, content []byte, meta wasmmeta.Meta) (Module, bool, error) {
	sum := sha256.Sum256(content)
	if m, err := s.moduleBySHA(ctx, accountID, sum[:]); err == nil {
		return m, false, nil
	} else if apperr.CodeOf(err) != apperr.NotFound {
		return Module{}, false, err
	}

	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return Module{}, false, wrapDB(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	var haveBlob bool
	if err := tx.GetContext(ctx, &haveBlob, `SELECT EXISTS (SELECT 1 FROM module_blobs WHERE sha256 = $1)`, sum[:]); err != nil {
		return Module{}, false, wrapDB(err, "check blob")
	}
	if !haveBlob {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO module_blobs (sha256, size_bytes, content) VALUES ($1, $2, $3)
			ON CONFLICT (sha256) DO NOTHING`, sum[:], len(content), content); err != nil {
			return Module{}, false, wrapDB(err, "insert blob")
		}
	}
	var m Module
	err = tx.GetContext(ctx, &m, `
		INSERT INTO modules (id, account_id, name, sha256, size_bytes, imports, exports, wasi)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (account_id, sha256) WHERE deleted_at IS NULL DO NOTHING
		RETURNING *`,
		newID(), accountID, name, sum[:], len(content),
		JSON[[]wasmmeta.Import]{V: meta.Imports}, JSON[[]wasmmeta.Export]{V: meta.Exports}, meta.WASI)
	if errors.Is(err, sql.ErrNoRows) {
		// A concurrent upload of the same bytes won the race.
		_ = tx.Rollback()
		m, err := s.moduleBySHA(ctx, accountID, sum[:])
		return m, false, err
	}
	if err != nil {
		return Module{}, false, wrapDB(err, "insert module")
	}
	if err := audit(ctx, tx, Event{AccountID: &accountID, Actor: actor, Action: "module.created",
		SubjectType: "module", SubjectID: m.ID.String(),
		Data: map[string]any{"size_bytes": len(content)}}); err != nil {
		return Module{}, false, err
	}
	if err := tx.Commit(); err != nil {
		return Module{}, false, wrapDB(err, "commit module")
	}
	return m, true, nil
}

func (s *Store) moduleBySHA(ctx context.Context, accountID uuid.UUID, sum []byte) (Module, error) {
	var m Module
	err := s.db.GetContext(ctx, &m, `
		SELECT * FROM modules WHERE account_id = $1 AND sha256 = $2 AND deleted_at IS NULL`, accountID, sum)
	if errors.Is(err, sql.ErrNoRows) {
		return Module{}, apperr.New(apperr.NotFound, "module not found")
	}
	return m, wrapDB(err, "get module by hash")
}

// GetModule returns one of the account's live modules. Another account's
// module is not found, exactly like a missing one.
func (s *Store) GetModule(ctx context.Context, accountID, id uuid.UUID) (Module, error) {
	var m Module
	err := s.db.GetContext(ctx, &m, `
		SELECT * FROM modules WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL`, id, accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return Module{}, apperr.New(apperr.NotFound, "module %s not found", id)
	}
	return m, wrapDB(err, "get module")
}

// ListModules returns a page of the account's live modules, newest first.
func (s *Store) ListModules(ctx context.Context, accountID uuid.UUID, cursor string, limit int) (Page[Module], error) {
	after := uuid.Max
	if cursor != "" {
		var err error
		if after, err = DecodeCursor(cursor); err != nil {
			return Page[Module]{}, err
		}
	}
	var ms []Module
	err := s.db.SelectContext(ctx, &ms, `
		SELECT * FROM modules WHERE account_id = $1 AND deleted_at IS NULL AND id < $2
		ORDER BY id DESC LIMIT $3`, accountID, after, limit+1)
	if err != nil {
		return Page[Module]{}, wrapDB(err, "list modules")
	}
	return paginate(ms, limit, func(m Module) uuid.UUID { return m.ID }), nil
}

// ModuleContent returns the bytes stored under a SHA-256.
func (s *Store) ModuleContent(ctx context.Context, sum []byte) ([]byte, error) {
	var content []byte
	err := s.db.GetContext(ctx, &content, `SELECT content FROM module_blobs WHERE sha256 = $1`, sum)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, apperr.New(apperr.NotFound, "module content %x not found", sum)
	}
	return content, wrapDB(err, "get module content")
}

func paginate[T any](items []T, limit int, id func(T) uuid.UUID) Page[T] {
	p := Page[T]{Items: items}
	if len(items) > limit {
		p.Items = items[:limit]
		p.NextCursor = EncodeCursor(id(items[limit-1]))
	}
	if p.Items == nil {
		p.Items = []T{}
	}
	return p
}

// DeleteModule soft-deletes one of the account's live modules (deleted_at;
// its bytes stay for jobs that already run it) and ends its queued jobs as
// failed with module_deleted, in one transaction. It returns those jobs' IDs
// so that their queued tasks can be dropped. Another account's module is not
// found.
func (s *Store) DeleteModule(ctx context.Context, actor Actor, accountID, id uuid.UUID) ([]uuid.UUID, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, wrapDB(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `
		UPDATE modules SET deleted_at = now() WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL`, id, accountID)
	if err != nil {
		return nil, wrapDB(err, "delete module")
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, wrapDB(err, "delete module")
	} else if n == 0 {
		return nil, apperr.New(apperr.NotFound, "module %s not found", id)
	}
	if err := audit(ctx, tx, Event{AccountID: &accountID, Actor: actor, Action: "module.deleted",
		SubjectType: "module", SubjectID: id.String()}); err != nil {
		return nil, err
	}
	// Jobs inserted concurrently lock the module row (CreateJob), so once the
	// update above holds it every queued job of the module is visible here.
	var failed []uuid.UUID
	err = tx.SelectContext(ctx, &failed, `
		WITH f AS (
			UPDATE jobs SET status = 'failed', error_code = 'module_deleted',
				error_message = 'the module was deleted before the job started',
				finished_at = now(), updated_at = now()
			WHERE account_id = $1 AND module_id = $2 AND status = 'queued'
			RETURNING account_id, id, attempts
		), ev AS (
			INSERT INTO audit_events (account_id, actor, action, subject_type, subject_id, job_id, request_id, data)
			SELECT account_id, $3, 'job.finished', 'job', id::text, id, $4,
				jsonb_build_object('attempt', attempts, 'status', 'failed', 'error_code', 'module_deleted') FROM f
		)
		SELECT id FROM f`, accountID, id, actor.Name, actor.RequestID)
	if err != nil {
		return nil, wrapDB(err, "fail queued jobs of a deleted module")
	}
	if err := tx.Commit(); err != nil {
		return nil, wrapDB(err, "commit module deletion")
	}
	return failed, nil
}
