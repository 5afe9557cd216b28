package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

// tierColumns are the tier fields an admin sets (name is the key).
const tierColumns = `runs_per_minute, runs_per_day, max_concurrent_runs, default_timeout_ms, max_timeout_ms,
	default_memory_mb, max_memory_mb, default_output_bytes, max_output_bytes, max_module_bytes,
	queue_weight, reads_per_minute, uploads_per_minute, max_modules, max_module_storage_bytes,
	max_input_bytes, max_fs_bytes, max_artifact_bytes, max_asset_bytes`

// CreateTier inserts a tier.
func (s *Store) CreateTier(ctx context.Context, actor Actor, t Tier) (Tier, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return Tier{}, wrapDB(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	var out Tier
	err = tx.GetContext(ctx, &out, `
		INSERT INTO tiers (name, `+tierColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
		RETURNING *`, t.Name, t.RunsPerMinute, t.RunsPerDay, t.MaxConcurrentRuns, t.DefaultTimeoutMS, t.MaxTimeoutMS,
		t.DefaultMemoryMB, t.MaxMemoryMB, t.DefaultOutputBytes, t.MaxOutputBytes, t.MaxModuleBytes, t.QueueWeight, t.ReadsPerMinute,
		t.UploadsPerMinute, t.MaxModules, t.MaxModuleStorageBytes,
		t.MaxInputBytes, t.MaxFSBytes, t.MaxArtifactBytes, t.MaxAssetBytes)
	if err != nil {
		return Tier{}, tierError(err, t.Name)
	}
	if err := audit(ctx, tx, Event{Actor: actor, Action: "tier.created", SubjectType: "tier", SubjectID: t.Name,
		Data: tierData(out)}); err != nil {
		return Tier{}, err
	}
	return out, wrapDB(tx.Commit(), "commit tier")
}

// UpdateTier replaces an existing tier's limits with t's (t.Name is ignored).
func (s *Store) UpdateTier(ctx context.Context, actor Actor, name string, t Tier) (Tier, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return Tier{}, wrapDB(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	var out Tier
	err = tx.GetContext(ctx, &out, `
		UPDATE tiers SET runs_per_minute = $2, runs_per_day = $3, max_concurrent_runs = $4,
			default_timeout_ms = $5, max_timeout_ms = $6, default_memory_mb = $7, max_memory_mb = $8,
			default_output_bytes = $9, max_output_bytes = $10, max_module_bytes = $11, queue_weight = $12,
			reads_per_minute = $13, uploads_per_minute = $14, max_modules = $15, max_module_storage_bytes = $16,
			max_input_bytes = $17, max_fs_bytes = $18, max_artifact_bytes = $19, max_asset_bytes = $20,
			updated_at = now()
		WHERE name = $1 RETURNING *`, name, t.RunsPerMinute, t.RunsPerDay, t.MaxConcurrentRuns, t.DefaultTimeoutMS,
		t.MaxTimeoutMS, t.DefaultMemoryMB, t.MaxMemoryMB, t.DefaultOutputBytes, t.MaxOutputBytes, t.MaxModuleBytes,
		t.QueueWeight, t.ReadsPerMinute, t.UploadsPerMinute, t.MaxModules, t.MaxModuleStorageBytes,
		t.MaxInputBytes, t.MaxFSBytes, t.MaxArtifactBytes, t.MaxAssetBytes)
	if errors.Is(err, sql.ErrNoRows) {
		return Tier{}, apperr.New(apperr.NotFound, "tier %q does not exist", name)
	}
	if err != nil {
		return Tier{}, tierError(err, name)
	}
	if err := audit(ctx, tx, Event{Actor: actor, Action: "tier.updated", SubjectType: "tier", SubjectID: name,
		Data: tierData(out)}); err != nil {
		return Tier{}, err
	}
	return out, wrapDB(tx.Commit(), "commit tier")
}

func tierData(t Tier) map[string]any {
	return map[string]any{"runs_per_minute": t.RunsPerMinute, "runs_per_day": t.RunsPerDay,
		"max_concurrent_runs": t.MaxConcurrentRuns, "max_timeout_ms": t.MaxTimeoutMS, "max_memory_mb": t.MaxMemoryMB,
		"max_module_bytes": t.MaxModuleBytes, "queue_weight": t.QueueWeight, "reads_per_minute": t.ReadsPerMinute,
		"uploads_per_minute": t.UploadsPerMinute, "max_modules": t.MaxModules, "max_module_storage_bytes": t.MaxModuleStorageBytes,
		"max_input_bytes": t.MaxInputBytes, "max_fs_bytes": t.MaxFSBytes, "max_artifact_bytes": t.MaxArtifactBytes,
		"max_asset_bytes": t.MaxAssetBytes}
}

func tierError(err error, name string) error {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch pqErr.Code {
		case "23505":
			return apperr.New(apperr.Conflict, "tier %q already exists", name)
		case "23514":
			return apperr.Validation(apperr.FieldError{Field: "tier", Message: "limits are inconsistent (" + pqErr.Constraint + ")"})
		}
	}
	return wrapDB(err, "write tier")
}

// UpdateAccountTier moves an account to another existing tier.
func (s *Store) UpdateAccountTier(ctx context.Context, actor Actor, id uuid.UUID, tier string) (Account, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return Account{}, wrapDB(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	var prev string
	if err := tx.GetContext(ctx, &prev, `SELECT tier FROM accounts WHERE id = $1 FOR UPDATE`, id); errors.Is(err, sql.ErrNoRows) {
		return Account{}, apperr.New(apperr.NotFound, "account %s does not exist", id)
	} else if err != nil {
		return Account{}, wrapDB(err, "read account")
	}
	var a Account
	err = tx.GetContext(ctx, &a, `UPDATE accounts SET tier = $2, updated_at = now() WHERE id = $1 RETURNING *`, id, tier)
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "23503" {
		return Account{}, apperr.Validation(apperr.FieldError{Field: "tier", Message: fmt.Sprintf("tier %q does not exist", tier)})
	}
	if err != nil {
		return Account{}, wrapDB(err, "update account")
	}
	if err := audit(ctx, tx, Event{AccountID: &id, Actor: actor, Action: "account.tier_changed", SubjectType: "account",
		SubjectID: id.String(), Data: map[string]any{"from": prev, "to": tier}}); err != nil {
		return Account{}, err
	}
	return a, wrapDB(tx.Commit(), "commit account")
}

// ListAccountsPage returns a page of accounts, newest first.
func (s *Store) ListAccountsPage(ctx context.Context, cursor string, limit int) (Page[Account], error) {
	after, err := cursorOrMax(cursor)
	if err != nil {
		return Page[Account]{}, err
	}
	var as []Account
	err = s.db.SelectContext(ctx, &as, `SELECT * FROM accounts WHERE id < $1 ORDER BY id DESC LIMIT $2`, after, limit+1)
	if err != nil {
		return Page[Account]{}, wrapDB(err, "list accounts")
	}
	return paginate(as, limit, func(a Account) uuid.UUID { return a.ID }), nil
}

// ListKeys returns a page of keys (of one account when accountID is set),
// newest first. Hashes are never returned to callers outside this package.
func (s *Store) ListKeys(ctx context.Context, accountID uuid.UUID, cursor string, limit int) (Page[APIKey], error) {
	after, err := cursorOrMax(cursor)
	if err != nil {
		return Page[APIKey]{}, err
	}
	var ks []APIKey
	q := `SELECT id, account_id, name, prefix, ''::bytea AS hash, created_at, last_used_at, revoked_at
		FROM api_keys WHERE id < $1`
	args := []any{after}
	if accountID != uuid.Nil {
		q += ` AND account_id = $3`
		args = append(args, limit+1, accountID)
	} else {
		args = append(args, limit+1)
	}
	q += ` ORDER BY id DESC LIMIT $2`
	if err := s.db.SelectContext(ctx, &ks, q, args...); err != nil {
		return Page[APIKey]{}, wrapDB(err, "list keys")
	}
	return paginate(ks, limit, func(k APIKey) uuid.UUID { return k.ID }), nil
}

// RevokeKey revokes a key at once; lookups refuse it from the next request
// on, on every replica. Revoking a revoked key changes nothing.
func (s *Store) RevokeKey(ctx context.Context, actor Actor, id uuid.UUID) (APIKey, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return APIKey{}, wrapDB(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	var k APIKey
	err = tx.GetContext(ctx, &k, `
		UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1
		RETURNING id, account_id, name, prefix, ''::bytea AS hash, created_at, last_used_at, revoked_at`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, apperr.New(apperr.NotFound, "key %s does not exist", id)
	}
	if err != nil {
		return APIKey{}, wrapDB(err, "revoke key")
	}
	if err := audit(ctx, tx, Event{AccountID: &k.AccountID, Actor: actor, Action: "key.revoked", SubjectType: "api_key",
		SubjectID: id.String(), Data: map[string]any{"prefix": k.Prefix}}); err != nil {
		return APIKey{}, err
	}
	return k, wrapDB(tx.Commit(), "commit revoke")
}

// Usage is an account's activity today (UTC) and now.
type Usage struct {
	RunsToday int `db:"runs_today" json:"runs_today"`
	Running   int `db:"running" json:"running"`
	Queued    int `db:"queued" json:"queued"`
	// Modules and ModuleBytes are the account's live modules and their
	// bytes: what max_modules and max_module_storage_bytes limit.
	Modules     int   `db:"modules" json:"modules"`
	ModuleBytes int64 `db:"module_bytes" json:"module_bytes"`
}

// AccountUsage counts the account's jobs created today and those
// unfinished, and its live modules.
func (s *Store) AccountUsage(ctx context.Context, accountID uuid.UUID) (Usage, error) {
	var u Usage
	err := s.db.GetContext(ctx, &u, `
		SELECT count(*) AS modules, coalesce(sum(size_bytes), 0)::bigint AS module_bytes
		FROM modules WHERE account_id = $1 AND deleted_at IS NULL`, accountID)
	if err != nil {
		return u, wrapDB(err, "account usage")
	}
	err = s.db.GetContext(ctx, &u, `
		SELECT count(*) FILTER (WHERE created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS runs_today,
			count(*) FILTER (WHERE status = 'running') AS running,
			count(*) FILTER (WHERE status = 'queued') AS queued
		FROM jobs WHERE account_id = $1
			AND (status IN ('queued', 'running') OR created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')`, accountID)
	return u, wrapDB(err, "account usage")
}

// AuditFilter narrows ListAudit.
type AuditFilter struct {
	AccountID     uuid.UUID
	Action        string
	JobID         uuid.UUID
	CreatedAfter  time.Time
	CreatedBefore time.Time
}

// ListAudit returns a page of audit events, newest first, by keyset on id.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter, cursor string, limit int) (Page[Event], error) {
	before := int64(1<<63 - 1)
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(b) != 8 {
			return Page[Event]{}, apperr.Validation(apperr.FieldError{Field: "cursor", Message: "is not a cursor this API returned"})
		}
		before = int64(binary.BigEndian.Uint64(b))
	}
	q := `SELECT id, account_id, actor, action, subject_type, subject_id, job_id, request_id, data, created_at
		FROM audit_events WHERE id < $1`
	args := []any{before}
	add := func(cond string, v any) {
		args = append(args, v)
		q += fmt.Sprintf(" AND "+cond, len(args))
	}
	if f.AccountID != uuid.Nil {
		add("account_id = $%d", f.AccountID)
	}
	if f.Action != "" {
		add("action = $%d", f.Action)
	}
	if f.JobID != uuid.Nil {
		add("job_id = $%d", f.JobID)
	}
	if !f.CreatedAfter.IsZero() {
		add("created_at > $%d", f.CreatedAfter)
	}
	if !f.CreatedBefore.IsZero() {
		add("created_at < $%d", f.CreatedBefore)
	}
	args = append(args, limit+1)
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT $%d", len(args))
	var es []Event
	if err := s.db.SelectContext(ctx, &es, q, args...); err != nil {
		return Page[Event]{}, wrapDB(err, "list audit events")
	}
	for i := range es {
		es[i].Data = es[i].DataJSON.V
	}
	p := Page[Event]{Items: es}
	if len(es) > limit {
		p.Items = es[:limit]
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(es[limit-1].ID))
		p.NextCursor = base64.RawURLEncoding.EncodeToString(b[:])
	}
	if p.Items == nil {
		p.Items = []Event{}
	}
	return p, nil
}

func cursorOrMax(cursor string) (uuid.UUID, error) {
	if cursor == "" {
		return uuid.Max, nil
	}
	return DecodeCursor(cursor)
}

// UnfinishedJobs counts the account's queued and running jobs.
func (s *Store) UnfinishedJobs(ctx context.Context, accountID uuid.UUID) (int, error) {
	var n int
	err := s.db.GetContext(ctx, &n, `
		SELECT count(*) FROM jobs WHERE account_id = $1 AND status IN ('queued', 'running')`, accountID)
	return n, wrapDB(err, "count unfinished jobs")
}
