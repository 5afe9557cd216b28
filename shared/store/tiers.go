package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/lib/pq"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

// Tier is a row of tiers: the limits an account's tier grants.
type Tier struct {
	Name               string    `db:"name"`
	RunsPerMinute      int       `db:"runs_per_minute"`
	RunsPerDay         int       `db:"runs_per_day"`
	MaxConcurrentRuns  int       `db:"max_concurrent_runs"`
	DefaultTimeoutMS   int       `db:"default_timeout_ms"`
	MaxTimeoutMS       int       `db:"max_timeout_ms"`
	DefaultMemoryMB    int       `db:"default_memory_mb"`
	MaxMemoryMB        int       `db:"max_memory_mb"`
	DefaultOutputBytes int       `db:"default_output_bytes"`
	MaxOutputBytes     int       `db:"max_output_bytes"`
	MaxModuleBytes     int64     `db:"max_module_bytes"`
	QueueWeight        int       `db:"queue_weight"`
	ReadsPerMinute     int       `db:"reads_per_minute"`
	CreatedAt          time.Time `db:"created_at"`
	UpdatedAt          time.Time `db:"updated_at"`

	// Upload limits (0: unlimited): module uploads per minute, live modules
	// held, and the bytes of those modules.
	UploadsPerMinute      int   `db:"uploads_per_minute"`
	MaxModules            int   `db:"max_modules"`
	MaxModuleStorageBytes int64 `db:"max_module_storage_bytes"`

	// File limits (bytes; migrations/00009_files.sql): the files of a job
	// request, what a job may write to its filesystem, what is kept of its
	// artifacts, and a module's asset trees (all mounts together).
	MaxInputBytes    int64 `db:"max_input_bytes"`
	MaxFSBytes       int64 `db:"max_fs_bytes"`
	MaxArtifactBytes int64 `db:"max_artifact_bytes"`
	MaxAssetBytes    int64 `db:"max_asset_bytes"`
}

// MaxTimeoutMS is the largest max_timeout_ms a tier may have (an hour).
const MaxTimeoutMS = 3_600_000

// tierColumns are the tier fields an admin sets (name is the key).
const tierColumns = `runs_per_minute, runs_per_day, max_concurrent_runs, default_timeout_ms, max_timeout_ms,
	default_memory_mb, max_memory_mb, default_output_bytes, max_output_bytes, max_module_bytes,
	queue_weight, reads_per_minute, uploads_per_minute, max_modules, max_module_storage_bytes,
	max_input_bytes, max_fs_bytes, max_artifact_bytes, max_asset_bytes`

// GetTier returns a tier by name.
func (s *Store) GetTier(ctx context.Context, name string) (Tier, error) {
	var t Tier
	err := s.db.GetContext(ctx, &t, `SELECT * FROM tiers WHERE name = $1`, name)
	if errors.Is(err, sql.ErrNoRows) {
		return Tier{}, apperr.New(apperr.NotFound, "tier %q does not exist", name)
	}
	return t, wrapDB(err, "get tier")
}

// ListTiers returns all tiers by name.
func (s *Store) ListTiers(ctx context.Context) ([]Tier, error) {
	var ts []Tier
	err := s.db.SelectContext(ctx, &ts, `SELECT * FROM tiers ORDER BY name`)
	return ts, wrapDB(err, "list tiers")
}

// CreateTier inserts a tier.
func (s *Store) CreateTier(ctx context.Context, actor Actor, t Tier) (Tier, error) {
	return s.writeTier(ctx, actor, "tier.created", t.Name, t, `
		INSERT INTO tiers (name, `+tierColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
		RETURNING *`)
}

// UpdateTier replaces an existing tier's limits with t's (t.Name is ignored).
func (s *Store) UpdateTier(ctx context.Context, actor Actor, name string, t Tier) (Tier, error) {
	return s.writeTier(ctx, actor, "tier.updated", name, t, `
		UPDATE tiers SET runs_per_minute = $2, runs_per_day = $3, max_concurrent_runs = $4,
			default_timeout_ms = $5, max_timeout_ms = $6, default_memory_mb = $7, max_memory_mb = $8,
			default_output_bytes = $9, max_output_bytes = $10, max_module_bytes = $11, queue_weight = $12,
			reads_per_minute = $13, uploads_per_minute = $14, max_modules = $15, max_module_storage_bytes = $16,
			max_input_bytes = $17, max_fs_bytes = $18, max_artifact_bytes = $19, max_asset_bytes = $20,
			updated_at = now()
		WHERE name = $1 RETURNING *`)
}

// writeTier runs query, an INSERT or UPDATE of tier name RETURNING the row,
// with $1 the name and $2 to $20 t's limits in tierColumns' order, and
// audits it as action, in one transaction.
func (s *Store) writeTier(ctx context.Context, actor Actor, action, name string, t Tier, query string) (Tier, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return Tier{}, wrapDB(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	var out Tier
	err = tx.GetContext(ctx, &out, query, name, t.RunsPerMinute, t.RunsPerDay, t.MaxConcurrentRuns,
		t.DefaultTimeoutMS, t.MaxTimeoutMS, t.DefaultMemoryMB, t.MaxMemoryMB, t.DefaultOutputBytes, t.MaxOutputBytes,
		t.MaxModuleBytes, t.QueueWeight, t.ReadsPerMinute, t.UploadsPerMinute, t.MaxModules, t.MaxModuleStorageBytes,
		t.MaxInputBytes, t.MaxFSBytes, t.MaxArtifactBytes, t.MaxAssetBytes)
	if errors.Is(err, sql.ErrNoRows) {
		return Tier{}, apperr.New(apperr.NotFound, "tier %q does not exist", name)
	}
	if err != nil {
		return Tier{}, tierError(err, name)
	}
	if err := audit(ctx, tx, Event{Actor: actor, Action: action, SubjectType: "tier", SubjectID: name,
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
