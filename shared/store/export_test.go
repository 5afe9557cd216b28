package store

import (
	"context"
	"strings"

	"github.com/google/uuid"
)

// ExplainListJobs returns the plan of ListJobs's query for f, with sequential
// scans discouraged as they would be on a large table.
func (s *Store) ExplainListJobs(ctx context.Context, accountID uuid.UUID, f JobFilter, limit int) (string, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		return "", err
	}
	q, args := listJobsQuery(accountID, f, uuid.Max, limit)
	var lines []string
	if err := tx.SelectContext(ctx, &lines, "EXPLAIN "+q, args...); err != nil {
		return "", err
	}
	return strings.Join(lines, "\n"), nil
}

// CreateJobWrites runs CreateJob in a transaction that it rolls back, and
// reports whether the insert wrote anything (whether the transaction was
// given an ID: a row written or locked gives it one, and its commit would
// then be a durable one).
func (s *Store) CreateJobWrites(ctx context.Context, actor Actor, j Job) (bool, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback() }()
	_, err = s.createJob(ctx, tx, actor, j)
	var wrote bool
	if qerr := tx.GetContext(ctx, &wrote, `SELECT pg_current_xact_id_if_assigned() IS NOT NULL`); qerr != nil {
		return false, qerr
	}
	return wrote, err
}
