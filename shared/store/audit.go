package store

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
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

// Actor says who did something, for audit rows.
type Actor struct {
	Name      string // "admin", "cli", "key:<id>", "worker", "reconciler", "anonymous"
	RequestID string
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
