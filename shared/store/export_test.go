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
