package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
)

// Event is an audit row. Data must never hold secrets or guest output.
type Event struct {
	ID          int64                `db:"id"`
	AccountID   *uuid.UUID           `db:"account_id"`
	Actor       Actor                `db:"-"`
	ActorName   string               `db:"actor"`
	Action      string               `db:"action"`
	SubjectType string               `db:"subject_type"`
	SubjectID   string               `db:"subject_id"`
	JobID       *uuid.UUID           `db:"job_id"`
	RequestID   string               `db:"request_id"`
	Data        map[string]any       `db:"-"`
	DataJSON    JSON[map[string]any] `db:"data"`
	CreatedAt   time.Time            `db:"created_at"`
}

func audit(ctx context.Context, ex sqlx.ExecerContext, e Event) error {
	data := e.Data
	if data == nil {
		data = map[string]any{}
	}
	_, err := ex.ExecContext(ctx, `
		INSERT INTO audit_events (account_id, actor, action, subject_type, subject_id, job_id, request_id, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		e.AccountID, e.Actor.Name, e.Action, e.SubjectType, e.SubjectID, e.JobID, e.Actor.RequestID, JSON[map[string]any]{V: data})
	return wrapDB(err, "insert audit event")
}

// Audit writes one audit row on its own.
func (s *Store) Audit(ctx context.Context, e Event) error { return audit(ctx, s.db, e) }

// JobEvents returns a job's audit rows in order.
func (s *Store) JobEvents(ctx context.Context, accountID, jobID uuid.UUID) ([]Event, error) {
	var es []Event
	err := s.db.SelectContext(ctx, &es, `
		SELECT id, account_id, actor, action, subject_type, subject_id, job_id, request_id, data, created_at
		FROM audit_events WHERE job_id = $1 AND account_id = $2 ORDER BY id`, jobID, accountID)
	for i := range es {
		es[i].Data = es[i].DataJSON.V
	}
	return es, wrapDB(err, "list job events")
}
