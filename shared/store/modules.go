package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

// Module is an account's uploaded module; its bytes live in module_blobs,
// one copy per account and SHA-256.
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
	// AssetCount is the number of the module's asset mounts (ModuleAssets).
	AssetCount int `db:"asset_count"`
}

// ModuleQuota bounds what one account may hold: live modules and their
// bytes (0: unlimited).
type ModuleQuota struct {
	MaxModules      int
	MaxStorageBytes int64
}

// CreateModule is CreateModuleWithin without a quota.
func (s *Store) CreateModule(ctx context.Context, actor Actor, accountID uuid.UUID, name string, content []byte, meta wasmmeta.Meta) (Module, bool, error) {
	return s.CreateModuleWithin(ctx, actor, accountID, name, content, meta, ModuleQuota{})
}

// CreateModuleWithin stores content and the account's module record. If the
// account already has a live module with the same bytes, that module is
// returned with created == false and no quota is used. A new module must fit
// the quota, counted over the account's live modules with the account's row
// locked, so concurrent uploads cannot pass it together; past it the answer
// is quota_exceeded.
//
// The bytes are stored per account (module_blobs is keyed by account and
// SHA-256): a new module writes its bytes whether or not another account
// holds the same, so the upload's cost does not tell whether they exist
// elsewhere (docs/SECURITY.md).
func (s *Store) CreateModuleWithin(ctx context.Context, actor Actor, accountID uuid.UUID, name string, content []byte, meta wasmmeta.Meta, quota ModuleQuota) (Module, bool, error) {
	sum := sha256.Sum256(content)
	if m, err := s.moduleBySHA(ctx, s.db, accountID, sum[:]); err == nil {
		return m, false, nil
	} else if apperr.CodeOf(err) != apperr.NotFound {
		return Module{}, false, err
	}

	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return Module{}, false, wrapDB(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	// One upload of an account at a time from here to the commit: the
	// count below stays exact. NO KEY UPDATE does not block the foreign-key
	// checks of the account's other inserts (jobs, keys).
	var held struct {
		Modules int   `db:"modules"`
		Bytes   int64 `db:"bytes"`
	}
	if _, err := tx.ExecContext(ctx, `SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE`, accountID); err != nil {
		return Module{}, false, wrapDB(err, "lock account")
	}
	// A concurrent upload of the same bytes may have committed meanwhile.
	if m, err := s.moduleBySHA(ctx, tx, accountID, sum[:]); err == nil {
		return m, false, nil
	} else if apperr.CodeOf(err) != apperr.NotFound {
		return Module{}, false, err
	}
	if err := tx.GetContext(ctx, &held, `
		SELECT count(*) AS modules, coalesce(sum(size_bytes), 0)::bigint AS bytes
		FROM modules WHERE account_id = $1 AND deleted_at IS NULL`, accountID); err != nil {
		return Module{}, false, wrapDB(err, "count modules")
	}
	if quota.MaxModules > 0 && held.Modules+1 > quota.MaxModules {
		return Module{}, false, apperr.New(apperr.QuotaExceeded,
			"the account holds %d modules and its tier allows %d; delete some before uploading more",
			held.Modules, quota.MaxModules)
	}
	if quota.MaxStorageBytes > 0 && held.Bytes+int64(len(content)) > quota.MaxStorageBytes {
		return Module{}, false, apperr.New(apperr.QuotaExceeded,
			"the account's modules take %d bytes; this one (%d bytes) would pass the tier's %d; delete some before uploading more",
			held.Bytes, len(content), quota.MaxStorageBytes)
	}
	// The account's own copy of the bytes. It exists already only if the
	// account had a module of them that it deleted (and the reconciler has
	// not purged yet): then it is kept, and its age reset so that the purge
	// leaves it alone while the module row is written.
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO module_blobs (account_id, sha256, size_bytes, content) VALUES ($1, $2, $3, $4)
		ON CONFLICT (account_id, sha256) DO UPDATE SET created_at = now()`,
		accountID, sum[:], len(content), content); err != nil {
		return Module{}, false, wrapDB(err, "write blob")
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
		// Not reached while the account's row is locked; kept for safety.
		_ = tx.Rollback()
		m, err := s.moduleBySHA(ctx, s.db, accountID, sum[:])
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

func (s *Store) moduleBySHA(ctx context.Context, q sqlx.QueryerContext, accountID uuid.UUID, sum []byte) (Module, error) {
	var m Module
	err := sqlx.GetContext(ctx, q, &m, `
		SELECT * FROM modules WHERE account_id = $1 AND sha256 = $2 AND deleted_at IS NULL`, accountID, sum)
	if errors.Is(err, sql.ErrNoRows) {
		return Module{}, apperr.New(apperr.NotFound, "module not found")
	}
	return m, wrapDB(err, "get module by hash")
}

// ModuleBySHA256 returns the account's live module of these bytes (a
// SHA-256 sum), or a not_found error. Clients use it to upload a module
// only when the platform lacks it.
func (s *Store) ModuleBySHA256(ctx context.Context, accountID uuid.UUID, sum []byte) (Module, error) {
	return s.moduleBySHA(ctx, s.db, accountID, sum)
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

// ModuleContent returns the bytes stored under a SHA-256 (any account's
// copy: they are the same bytes).
func (s *Store) ModuleContent(ctx context.Context, sum []byte) ([]byte, error) {
	var content []byte
	err := s.db.GetContext(ctx, &content, `SELECT content FROM module_blobs WHERE sha256 = $1 LIMIT 1`, sum)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, apperr.New(apperr.NotFound, "module content %x not found", sum)
	}
	return content, wrapDB(err, "get module content")
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

// GoneModules returns those of sums that no live module of any account has:
// a worker may drop its local copies of them. (The blobs stay in Postgres:
// jobs that already run a deleted module may still fetch it.)
func (s *Store) GoneModules(ctx context.Context, sums [][]byte) ([][]byte, error) {
	if len(sums) == 0 {
		return nil, nil
	}
	var gone [][]byte
	err := s.db.SelectContext(ctx, &gone, `
		SELECT sha FROM unnest($1::bytea[]) AS sha
		WHERE NOT EXISTS (SELECT 1 FROM modules m WHERE m.sha256 = sha AND m.deleted_at IS NULL)`,
		pq.ByteaArray(sums))
	return gone, wrapDB(err, "find deleted modules")
}
