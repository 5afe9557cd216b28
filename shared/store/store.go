// Package store is the Postgres data layer (sqlx + lib/pq) both binaries share.
//
// Postgres is the source of truth: every state change of a job is a
// conditional update here, written together with its audit row.
//
// Rows carry db tags only: what the API answers is rendered from them by
// its view types (api/httpapi, shared/jobview).
package store

import (
	"context"
	"database/sql/driver"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

// Store wraps the connection pool.
type Store struct {
	db *sqlx.DB
	// stmts holds the hot path's prepared statements by query text
	// (see prepared).
	stmts sync.Map
}

// Open connects to Postgres and checks the connection. Queries with
// parameters take one round trip (see OneRoundTrip).
func Open(ctx context.Context, url string, maxOpen int) (*Store, error) {
	db, err := sqlx.Open("postgres", OneRoundTrip(url))
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(maxOpen)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &Store{db: db}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.Ping(pctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// OneRoundTrip turns on lib/pq's binary_parameters in a connection string
// (URL or key=value form) unless it is set already. Without it, every query
// with parameters costs two round trips to Postgres (prepare, then bind and
// execute); with it, one: the statement, its parameters and the execution
// go out together. Parameters then travel as text, except []byte, which is
// sent as binary — the store passes []byte only for bytea columns.
func OneRoundTrip(dsn string) string {
	if strings.Contains(dsn, "binary_parameters") {
		return dsn
	}
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("binary_parameters", "yes")
		u.RawQuery = q.Encode()
		return u.String()
	}
	return strings.TrimSpace(dsn + " binary_parameters=yes")
}

// New wraps an existing pool (tests, tools).
func New(db *sqlx.DB) *Store { return &Store{db: db} }

// DB returns the underlying pool.
func (s *Store) DB() *sqlx.DB { return s.db }

// Close closes the pool.
func (s *Store) Close() error {
	s.stmts.Range(func(k, v any) bool {
		_ = v.(*sqlx.Stmt).Close()
		s.stmts.Delete(k)
		return true
	})
	return s.db.Close()
}

// prepared returns query as a prepared statement, made once per Store;
// database/sql prepares it again on each connection that runs it. The
// statements of a job's life (insert, claim, finish, reads, key lookup) run
// thousands of times a second: prepared, Postgres parses and analyses them
// once per connection and, after a few runs, keeps a generic plan, where
// otherwise parsing, analysis and planning were a third of its CPU per job
// (docs/BENCHMARKS.md). Prepared statements name their columns, so that a
// migration that adds a column does not change their result type.
func (s *Store) prepared(ctx context.Context, query string) (*sqlx.Stmt, error) {
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sqlx.Stmt), nil
	}
	st, err := s.db.PreparexContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		_ = st.Close() //nolint:sqlclosecheck // lost the race: the winner's statement is kept
		return prev.(*sqlx.Stmt), nil
	}
	return st, nil
}

// prepareOutside prepares query for the Store, if it is not yet, before a
// transaction that runs it begins: outside a transaction, waiting for a
// connection of the pool holds none (see getPrepared).
func (s *Store) prepareOutside(ctx context.Context, query string) error {
	_, err := s.prepared(ctx, query) //nolint:sqlclosecheck // kept by the Store, closed by Close
	return err
}

// getPrepared is GetContext through the prepared statement of query, in tx
// when tx is not nil. A statement whose cached plan a migration made
// invalid ("cached plan must not change result type") is prepared afresh
// once.
//
// In a transaction, a statement not prepared yet is prepared on the
// transaction's own connection for this use only: preparing it for the
// Store would take a second connection from the pool while the transaction
// holds one, and with every connection held by transactions that wait for
// this one (concurrent submits with one Idempotency-Key wait on its row)
// that never comes. Callers prepare the statements their transactions run
// before they begin them (prepareOutside), so this happens only when a
// migration made a statement invalid.
func (s *Store) getPrepared(ctx context.Context, tx *sqlx.Tx, dest any, query string, args ...any) error {
	for attempt := 0; ; attempt++ {
		var st *sqlx.Stmt
		if cached, ok := s.stmts.Load(query); ok {
			st = cached.(*sqlx.Stmt)
		}
		switch {
		case tx != nil && st != nil:
			st = tx.StmtxContext(ctx, st) //nolint:sqlclosecheck // closed by database/sql when tx ends
		case tx != nil:
			own, err := tx.PreparexContext(ctx, query)
			if err != nil {
				return err
			}
			defer func() { _ = own.Close() }()
			st = own
		default:
			var err error
			if st, err = s.prepared(ctx, query); err != nil {
				return err
			}
		}
		err := st.GetContext(ctx, dest, args...)
		var pqErr *pq.Error
		if attempt == 0 && errors.As(err, &pqErr) && pqErr.Code == "0A000" && strings.Contains(pqErr.Message, "cached plan") {
			if old, ok := s.stmts.LoadAndDelete(query); ok {
				_ = old.(*sqlx.Stmt).Close()
			}
			continue
		}
		return err
	}
}

// Ping checks that Postgres answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// JSON is a jsonb column holding a T.
type JSON[T any] struct {
	V T
}

// Scan implements sql.Scanner; NULL leaves the zero value.
func (j *JSON[T]) Scan(src any) error {
	var zero T
	j.V = zero
	switch v := src.(type) {
	case nil:
		return nil
	case []byte:
		return json.Unmarshal(v, &j.V)
	case string:
		return json.Unmarshal([]byte(v), &j.V)
	default:
		return fmt.Errorf("jsonb: cannot scan %T", src)
	}
}

// Value implements driver.Valuer.
func (j JSON[T]) Value() (driver.Value, error) {
	b, err := json.Marshal(j.V)
	if err != nil {
		return nil, fmt.Errorf("jsonb: %w", err)
	}
	return string(b), nil
}

// Page is one page of a keyset-paginated list.
type Page[T any] struct {
	Items      []T
	NextCursor string // empty on the last page
}

// EncodeCursor makes an opaque cursor from the last ID of a page.
func EncodeCursor(id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// DecodeCursor reads a cursor made by EncodeCursor.
func DecodeCursor(s string) (uuid.UUID, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return uuid.Nil, apperr.Validation(apperr.FieldError{Field: "cursor", Message: "is not a cursor this API returned"})
	}
	return uuid.UUID(b), nil
}

func cursorOrMax(cursor string) (uuid.UUID, error) {
	if cursor == "" {
		return uuid.Max, nil
	}
	return DecodeCursor(cursor)
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

// newID returns a time-ordered UUIDv7.
func newID() uuid.UUID {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only when the system's random source does.
		panic(fmt.Sprintf("uuid v7: %v", err))
	}
	return id
}

// NewID returns a time-ordered UUIDv7 for a new row.
func NewID() uuid.UUID { return newID() }

// wrapDB turns a database error into an apperr: connection problems become
// unavailable; everything else is internal. The cause stays attached for logs.
func wrapDB(err error, doing string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return apperr.Wrap(fmt.Errorf("%s: %w", doing, err), apperr.Unavailable, "the database did not answer in time")
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch pqErr.Code.Class() {
		case "08", "53", "57": // connection exception, insufficient resources, operator intervention
			return apperr.Wrap(fmt.Errorf("%s: %w", doing, err), apperr.Unavailable, "the database is unavailable")
		}
		return fmt.Errorf("%s: %w", doing, err)
	}
	if errors.Is(err, driver.ErrBadConn) || isNetErr(err) {
		return apperr.Wrap(fmt.Errorf("%s: %w", doing, err), apperr.Unavailable, "the database is unavailable")
	}
	return fmt.Errorf("%s: %w", doing, err)
}
