package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

// IdempotencyTTL is how long an Idempotency-Key is remembered per account.
// An older key is ignored and replaced by the next request that uses it.
const IdempotencyTTL = 24 * time.Hour

// errKeyReused is the answer to a known key sent with a different request.
func errKeyReused() error {
	return apperr.New(apperr.IdempotencyKeyReused,
		"this Idempotency-Key was already used with a different request; use a new key for a new job")
}

// IdempotentJob looks up an Idempotency-Key the account used in the last 24
// hours. It returns the job created under the key and true when hash matches
// the request that created it, an idempotency_key_reused error when it does
// not, and false when the key is unknown (or expired, or its job is gone).
func (s *Store) IdempotentJob(ctx context.Context, accountID uuid.UUID, key string, hash []byte) (Job, bool, error) {
	var row struct {
		Hash  []byte     `db:"request_hash"`
		JobID *uuid.UUID `db:"job_id"`
	}
	err := s.db.GetContext(ctx, &row, `
		SELECT request_hash, job_id FROM idempotency_keys
		WHERE account_id = $1 AND key = $2 AND created_at >= now() - make_interval(secs => $3)`,
		accountID, key, IdempotencyTTL.Seconds())
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Job{}, false, nil
	case err != nil:
		return Job{}, false, wrapDB(err, "get idempotency key")
	case !bytes.Equal(row.Hash, hash):
		return Job{}, false, errKeyReused()
	case row.JobID == nil:
		return Job{}, false, nil
	}
	j, err := s.GetJobView(ctx, accountID, *row.JobID)
	if apperr.CodeOf(err) == apperr.NotFound {
		return Job{}, false, nil
	}
	return j, err == nil, err
}

// CreateJobIdempotent inserts the job like CreateJob and records it under the
// account's Idempotency-Key in the same transaction. The key's primary key
// decides between concurrent requests: the first to insert it creates the
// job; the others wait for it to commit and get its job with replayed ==
// true (or idempotency_key_reused if their request differs). An expired key,
// or one whose job no longer exists, is replaced.
func (s *Store) CreateJobIdempotent(ctx context.Context, actor Actor, j Job, key string, hash []byte) (Job, bool, error) {
	// The files' bytes are stored before the transaction begins (PutBlob
	// takes connections of its own); a replay leaves them to the purge.
	if err := s.putInputs(ctx, &j); err != nil {
		return Job{}, false, err
	}
	for range 3 {
		created, ok, err := s.createJobUnderKey(ctx, actor, j, key, hash)
		if err != nil || ok {
			return created, false, err
		}
		// Someone else holds the key: replay their job.
		theirs, found, err := s.IdempotentJob(ctx, j.AccountID, key, hash)
		if err != nil || found {
			return theirs, found, err
		}
		// Their job vanished (its enqueue failed) or the key just expired:
		// try to take the key again.
	}
	return Job{}, false, apperr.New(apperr.Conflict, "concurrent requests with this Idempotency-Key keep changing it; retry")
}

// createJobUnderKey reports false (without error) when the key is taken.
func (s *Store) createJobUnderKey(ctx context.Context, actor Actor, j Job, key string, hash []byte) (Job, bool, error) {
	if err := s.prepareOutside(ctx, insertJobSQL); err != nil {
		return Job{}, false, wrapDB(err, "prepare the job insert")
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return Job{}, false, wrapDB(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `
		DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2
			AND (created_at < now() - make_interval(secs => $3) OR job_id IS NULL)`,
		j.AccountID, key, IdempotencyTTL.Seconds()); err != nil {
		return Job{}, false, wrapDB(err, "expire idempotency key")
	}
	// Blocks while another transaction holds the same key, until it ends.
	res, err := tx.ExecContext(ctx, `
		INSERT INTO idempotency_keys (account_id, key, request_hash) VALUES ($1, $2, $3)
		ON CONFLICT (account_id, key) DO NOTHING`, j.AccountID, key, hash)
	if err != nil {
		return Job{}, false, wrapDB(err, "insert idempotency key")
	}
	if n, err := res.RowsAffected(); err != nil {
		return Job{}, false, wrapDB(err, "insert idempotency key")
	} else if n == 0 {
		return Job{}, false, nil // the key is taken
	}
	job, err := s.createJob(ctx, tx, actor, j)
	if err != nil {
		return Job{}, false, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE idempotency_keys SET job_id = $3 WHERE account_id = $1 AND key = $2`,
		j.AccountID, key, job.ID); err != nil {
		return Job{}, false, wrapDB(err, "link idempotency key")
	}
	if err := tx.Commit(); err != nil {
		return Job{}, false, wrapDB(err, "commit job")
	}
	return job, true, nil
}
