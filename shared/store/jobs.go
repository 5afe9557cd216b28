package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
)

// statuses are every job status (the jobs table's CHECK constraint):
// listJobsQuery reads each one's part of the status indexes.
var statuses = []jobstate.Status{jobstate.Queued, jobstate.Running, jobstate.Succeeded, jobstate.Failed,
	jobstate.TimedOut, jobstate.Cancelled}

// Job is a row of jobs.
type Job struct {
	ID              uuid.UUID               `db:"id"`
	AccountID       uuid.UUID               `db:"account_id"`
	ModuleID        uuid.UUID               `db:"module_id"`
	ModuleSHA256    []byte                  `db:"module_sha256"`
	Queue           string                  `db:"queue"`
	Function        string                  `db:"function"`
	Args            JSON[[]string]          `db:"args"`
	Env             JSON[map[string]string] `db:"env"`
	Stdin           []byte                  `db:"stdin"`
	Params          JSON[[]json.RawMessage] `db:"params"`
	TimeoutMS       int                     `db:"timeout_ms"`
	MemoryLimitMB   int                     `db:"memory_limit_mb"`
	MaxOutputBytes  int                     `db:"max_output_bytes"`
	Deterministic   bool                    `db:"deterministic"`
	WebhookURL      *string                 `db:"webhook_url"`
	Metadata        JSON[map[string]string] `db:"metadata"`
	Status          jobstate.Status         `db:"status"`
	Attempts        int                     `db:"attempts"`
	ExitCode        *int                    `db:"exit_code"`
	Stdout          []byte                  `db:"stdout"`
	Stderr          []byte                  `db:"stderr"`
	StdoutTruncated bool                    `db:"stdout_truncated"`
	StderrTruncated bool                    `db:"stderr_truncated"`
	ReturnValues    JSON[[]json.RawMessage] `db:"return_values"`
	ErrorCode       *string                 `db:"error_code"`
	ErrorMessage    *string                 `db:"error_message"`
	MemoryPeakBytes *int64                  `db:"memory_peak_bytes"`
	RunMS           *int                    `db:"run_ms"`
	WorkerID        *string                 `db:"worker_id"`
	CreatedAt       time.Time               `db:"created_at"`
	StartedAt       *time.Time              `db:"started_at"`
	FinishedAt      *time.Time              `db:"finished_at"`
	UpdatedAt       time.Time               `db:"updated_at"`

	// QueueWeight is the tier's weight when the job was submitted (not
	// stored; the API uses it to ring the doorbell).
	QueueWeight int `db:"-"`
	// Slot is the account's concurrency slot the job holds while it runs
	// (nil: its tier had no limit when it was claimed; see claimJob).
	Slot *int `db:"slot"`
	// CancelRequestedAt is set once a client asked to cancel the job.
	CancelRequestedAt *time.Time `db:"cancel_requested_at"`
	// Watched: a client is long-polling the job, so its terminal
	// transition is announced with NOTIFY (see WatchJob).
	Watched bool `db:"watched"`
	// Traceparent is the W3C trace context of the request that submitted
	// the job (nil when tracing was off); the worker's spans join its trace.
	Traceparent *string `db:"traceparent"`
	// StdoutBytes and StderrBytes are the sizes of the outputs when the
	// job was read without them (see GetJobView); zero otherwise.
	StdoutBytes int64 `db:"stdout_bytes"`
	StderrBytes int64 `db:"stderr_bytes"`

	// Files (migrations/00009_files.sql). Preopens are the directory names
	// the guest gets as WASI preopens; Collect the glob patterns of the
	// files kept after the run; MaxFSBytes and MaxArtifactBytes the limits
	// snapshotted from the tier at submit. InputCount is the number of the
	// job's input files (JobInputs reads them; 0: no query needed) and
	// AssetCount the number of its module's asset mounts when the job was
	// submitted (ModuleAssets lists them; 0: no query needed).
	Preopens           pq.StringArray `db:"preopens"`
	Collect            pq.StringArray `db:"collect"`
	MaxFSBytes         int64          `db:"max_fs_bytes"`
	MaxArtifactBytes   int64          `db:"max_artifact_bytes"`
	InputCount         int            `db:"input_count"`
	AssetCount         int            `db:"asset_count"`
	ArtifactsTruncated bool           `db:"artifacts_truncated"`
	// Files are the request's input files: CreateJob and
	// CreateJobIdempotent store them with the job (not a column).
	Files []JobInput `db:"-"`
	// Artifacts are the job's stored artifacts when the reader loaded them
	// (LoadArtifacts; not a column).
	Artifacts []Artifact `db:"-"`
	// inputs are Files once their bytes are stored (see putInputs).
	inputs []inputRef
}

// OutputsLoaded reports whether the job's outputs were read with it: always
// for GetJob, and for GetJobView when they are at most OutputInline bytes
// each (else LoadOutputs reads them).
func (j Job) OutputsLoaded() bool {
	return int64(len(j.Stdout)) >= j.StdoutBytes && int64(len(j.Stderr)) >= j.StderrBytes
}

// OutputInline is the size up to which GetJobView reads an output with its
// job.
const OutputInline = 64 << 10

const jobColumns = `id, account_id, module_id, module_sha256, queue, function, args, env, stdin, params,
	timeout_ms, memory_limit_mb, max_output_bytes, deterministic, webhook_url, metadata, status, attempts,
	exit_code, stdout, stderr, stdout_truncated, stderr_truncated, return_values, error_code, error_message,
	memory_peak_bytes, run_ms, worker_id, created_at, started_at, finished_at, updated_at, cancel_requested_at, watched,
	` + fileColumns + `, traceparent`

// jobViewColumns are the columns of a job's view (shared/jobview): none of
// the request's large fields (args, env, stdin, params), the outputs only
// when they are small, and the outputs' sizes.
var jobViewColumns = fmt.Sprintf(`id, account_id, module_id, queue, function,
	timeout_ms, memory_limit_mb, max_output_bytes, deterministic, webhook_url, metadata, status, attempts,
	exit_code, stdout_truncated, stderr_truncated, return_values, error_code, error_message,
	memory_peak_bytes, run_ms, created_at, started_at, finished_at, updated_at, cancel_requested_at, watched,
	CASE WHEN octet_length(stdout) <= %[1]d THEN stdout END AS stdout,
	CASE WHEN octet_length(stderr) <= %[1]d THEN stderr END AS stderr,
	coalesce(octet_length(stdout), 0) AS stdout_bytes, coalesce(octet_length(stderr), 0) AS stderr_bytes,
	%[2]s`, OutputInline, fileColumns)

// jobListColumns are jobViewColumns without the outputs: list items do not
// carry them.
const jobListColumns = `id, account_id, module_id, queue, function,
	timeout_ms, memory_limit_mb, max_output_bytes, deterministic, webhook_url, metadata, status, attempts,
	exit_code, stdout_truncated, stderr_truncated, return_values, error_code, error_message,
	memory_peak_bytes, run_ms, created_at, started_at, finished_at, updated_at, cancel_requested_at, watched,
	coalesce(octet_length(stdout), 0) AS stdout_bytes, coalesce(octet_length(stderr), 0) AS stderr_bytes,
	` + fileColumns

// fileColumns are the job's file fields (migrations/00009_files.sql), read
// with every job: all are small (the request's counts are bounded).
const fileColumns = `preopens, collect, max_fs_bytes, max_artifact_bytes, input_count, asset_count, artifacts_truncated`

// CreateJob inserts a queued job and its "job.created" audit row in one
// statement. The caller fills every request field; ID is assigned when nil.
// The module must be one of the account's live modules (else not_found); it
// is locked while the job is inserted, so a concurrent DeleteModule either
// sees the job (and fails it) or makes this insert fail.
//
// A job with Files has their bytes stored first (content-addressed blobs of
// the account, see PutBlob), then the job and its job_inputs rows in one
// transaction. A job without files costs what it did before files existed:
// one statement.
func (s *Store) CreateJob(ctx context.Context, actor Actor, j Job) (Job, error) {
	if len(j.Files) == 0 {
		return s.createJob(ctx, nil, actor, j)
	}
	if err := s.putInputs(ctx, &j); err != nil {
		return Job{}, err
	}
	if err := s.prepareOutside(ctx, insertJobSQL); err != nil {
		return Job{}, wrapDB(err, "prepare the job insert")
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return Job{}, wrapDB(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	out, err := s.createJob(ctx, tx, actor, j)
	if err != nil {
		return Job{}, err
	}
	if err := tx.Commit(); err != nil {
		return Job{}, wrapDB(err, "commit job")
	}
	return out, nil
}

// maxSlots bounds the slot rows an account may have, whatever its tier says.
const maxSlots = 100_000

// createJob inserts the job, in tx when not nil. Admission does not look at
// the concurrency limit: it bounds the jobs that run at once, and the claim
// takes the slot (see claimJob).
func (s *Store) createJob(ctx context.Context, tx *sqlx.Tx, actor Actor, j Job) (Job, error) {
	if j.ID == uuid.Nil {
		j.ID = newID()
	}
	args := []any{j.ID, j.AccountID, j.ModuleID, j.Queue, j.Function, j.Args, j.Env, nonNil(j.Stdin), j.Params,
		j.TimeoutMS, j.MemoryLimitMB, j.MaxOutputBytes, j.Deterministic, j.WebhookURL, j.Metadata,
		actor.Name, actor.RequestID, j.Watched,
		nonNilStrings(j.Preopens), nonNilStrings(j.Collect), j.MaxFSBytes, j.MaxArtifactBytes, len(j.Files), j.Traceparent}
	var out Job
	err := s.getPrepared(ctx, tx, &out, insertJobSQL, args...)
	if err == nil && len(j.inputs) > 0 {
		err = insertInputs(ctx, s.ext(tx), out.ID, j.AccountID, j.inputs)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, apperr.New(apperr.NotFound, "module %s not found", j.ModuleID)
	}
	return out, wrapDB(err, "insert job")
}

// ext is tx when not nil, else the pool.
func (s *Store) ext(tx *sqlx.Tx) sqlx.ExtContext {
	if tx != nil {
		return tx
	}
	return s.db
}

// insertJobSQL inserts a job of one of the account's live modules (no row
// when the module is not one) and its "job.created" row. The module row
// is locked (FOR SHARE; see CreateJob).
const insertJobSQL = `
		WITH m AS (
			SELECT id, sha256, asset_count FROM modules
			WHERE id = $3 AND account_id = $2 AND deleted_at IS NULL
			FOR SHARE
		), job AS (
			INSERT INTO jobs (id, account_id, module_id, module_sha256, queue, function, args, env, stdin, params,
				timeout_ms, memory_limit_mb, max_output_bytes, deterministic, webhook_url, metadata, watched,
				preopens, collect, max_fs_bytes, max_artifact_bytes, input_count, traceparent, asset_count)
			SELECT $1, $2, m.id, m.sha256, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $18,
				$19, $20, $21, $22, $23, $24, m.asset_count FROM m
			RETURNING ` + jobColumns + `
		), ev AS (
			INSERT INTO audit_events (account_id, actor, action, subject_type, subject_id, job_id, request_id, data)
			SELECT account_id, $16, 'job.created', 'job', id::text, id, $17,
				jsonb_build_object('module_id', module_id, 'function', function) FROM job
		)
		SELECT * FROM job`

// DeleteQueuedJob removes a job that was never handed to the queue (its
// enqueue failed), with its audit rows and its idempotency key, so that no
// half-created job remains and the client's retry with the same key creates
// the job afresh.
func (s *Store) DeleteQueuedJob(ctx context.Context, id uuid.UUID) error {
	_, err := s.db.ExecContext(ctx, `
		WITH gone AS (DELETE FROM jobs WHERE id = $1 AND status = 'queued' AND attempts = 0 RETURNING id),
		keys AS (DELETE FROM idempotency_keys WHERE job_id IN (SELECT id FROM gone))
		DELETE FROM audit_events WHERE job_id IN (SELECT id FROM gone)`, id)
	return wrapDB(err, "delete unqueued job")
}

// GetJob returns one of the account's jobs.
func (s *Store) GetJob(ctx context.Context, accountID, id uuid.UUID) (Job, error) {
	return s.getJob(ctx, jobColumns, accountID, id)
}

// GetJobView returns one of the account's jobs as its view needs it: without
// the request's large fields, and with its outputs only if each is at most
// OutputInline bytes (see Job.OutputsLoaded and LoadOutputs). Reading a job
// this way costs a bounded amount of memory whatever its outputs.
func (s *Store) GetJobView(ctx context.Context, accountID, id uuid.UUID) (Job, error) {
	return s.getJob(ctx, jobViewColumns, accountID, id)
}

// getJob reads columns of one of the account's jobs.
func (s *Store) getJob(ctx context.Context, columns string, accountID, id uuid.UUID) (Job, error) {
	var j Job
	err := s.getPrepared(ctx, nil, &j, `SELECT `+columns+` FROM jobs WHERE id = $1 AND account_id = $2`, id, accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, apperr.New(apperr.NotFound, "job %s not found", id)
	}
	return j, wrapDB(err, "get job")
}

// ReadOutput reads up to n bytes of a job's stdout (stream "stdout") or
// stderr ("stderr") from byte off: the API writes large outputs a piece at
// a time, so that no request holds a whole output in memory.
func (s *Store) ReadOutput(ctx context.Context, accountID, id uuid.UUID, stream string, off int64, n int) ([]byte, error) {
	if stream != "stdout" && stream != "stderr" {
		return nil, fmt.Errorf("read output: no stream %q", stream)
	}
	var b []byte
	err := s.getPrepared(ctx, nil, &b, `SELECT coalesce(substring(`+stream+` from $3 for $4), '') FROM jobs
		WHERE id = $1 AND account_id = $2`, id, accountID, off+1, n)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, apperr.New(apperr.NotFound, "job %s not found", id)
	}
	return b, wrapDB(err, "read job output")
}

// LoadOutputs reads the outputs of a job read by GetJobView.
func (s *Store) LoadOutputs(ctx context.Context, j *Job) error {
	var out struct {
		Stdout []byte `db:"stdout"`
		Stderr []byte `db:"stderr"`
	}
	err := s.db.GetContext(ctx, &out, `SELECT stdout, stderr FROM jobs WHERE id = $1 AND account_id = $2`, j.ID, j.AccountID)
	if errors.Is(err, sql.ErrNoRows) {
		return apperr.New(apperr.NotFound, "job %s not found", j.ID)
	}
	if err != nil {
		return wrapDB(err, "read job outputs")
	}
	j.Stdout, j.Stderr = out.Stdout, out.Stderr
	j.StdoutBytes, j.StderrBytes = int64(len(out.Stdout)), int64(len(out.Stderr))
	return nil
}

// JobExists returns not_found unless the account has job id. It reads
// nothing else.
func (s *Store) JobExists(ctx context.Context, accountID, id uuid.UUID) error {
	var ok bool
	err := s.db.GetContext(ctx, &ok, `SELECT true FROM jobs WHERE id = $1 AND account_id = $2`, id, accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return apperr.New(apperr.NotFound, "job %s not found", id)
	}
	return wrapDB(err, "look up job")
}

// WatchJob marks one of the account's unfinished jobs as watched, so that
// its terminal transition sends a NOTIFY on jobwatch's channel. A caller
// that registered its watch and then called WatchJob reads the job
// afterwards: a finish that committed first is seen by that read, and one
// that commits later notifies. A terminal, unknown or already watched job
// is left alone.
func (s *Store) WatchJob(ctx context.Context, accountID, id uuid.UUID) error {
	_, err := s.db.ExecContext(ctx, `UPDATE jobs SET watched = true
		WHERE id = $1 AND account_id = $2 AND NOT watched AND status IN ('queued', 'running')`, id, accountID)
	return wrapDB(err, "watch job")
}

// JobFilter narrows ListJobs.
type JobFilter struct {
	Status        jobstate.Status
	ModuleID      uuid.UUID
	CreatedAfter  time.Time
	CreatedBefore time.Time
}

// ListJobs returns a page of the account's jobs, newest first, by keyset on
// (account_id, id). The jobs are read without their outputs and the
// request's large fields (like GetJobView for a job with large outputs), so
// a page costs memory for its jobs' metadata only.
func (s *Store) ListJobs(ctx context.Context, accountID uuid.UUID, f JobFilter, cursor string, limit int) (Page[Job], error) {
	after := uuid.Max
	if cursor != "" {
		var err error
		if after, err = DecodeCursor(cursor); err != nil {
			return Page[Job]{}, err
		}
	}
	q, args := listJobsQuery(accountID, f, after, limit)
	var js []Job
	if err := s.db.SelectContext(ctx, &js, q, args...); err != nil {
		return Page[Job]{}, wrapDB(err, "list jobs")
	}
	return paginate(js, limit, func(j Job) uuid.UUID { return j.ID }), nil
}

// listJobsQuery builds ListJobs's query: keyset on (account_id, id), newest
// first, with the filters f. Every filter is served by an index that has
// status before id ((account_id, status, id DESC), or with module_id before
// status): without a status filter the query reads each status's part of
// the index in id order and merges them (a Merge Append of at most limit+1
// rows from each), so that jobs needs no index without status, which every
// status change would have to update (see migrations/00009).
func listJobsQuery(accountID uuid.UUID, f JobFilter, after uuid.UUID, limit int) (string, []any) {
	cond := `account_id = $1 AND id < $2`
	args := []any{accountID, after}
	if f.ModuleID != uuid.Nil {
		args = append(args, f.ModuleID)
		cond += fmt.Sprintf(" AND module_id = $%d", len(args))
	}
	// IDs are UUIDv7, so a creation time is also a range of IDs: bounding
	// the ID keeps the scan on the keyset index however many rows lie
	// outside the range. The bound is widened by idClockSkew (IDs come from
	// the API's clock, created_at from Postgres's) and the exact condition
	// on created_at decides.
	if !f.CreatedAfter.IsZero() {
		args = append(args, idAt(f.CreatedAfter.Add(-idClockSkew)), f.CreatedAfter)
		cond += fmt.Sprintf(" AND id > $%d AND created_at > $%d", len(args)-1, len(args))
	}
	if !f.CreatedBefore.IsZero() {
		args = append(args, idAt(f.CreatedBefore.Add(idClockSkew)), f.CreatedBefore)
		cond += fmt.Sprintf(" AND id < $%d AND created_at < $%d", len(args)-1, len(args))
	}
	args = append(args, limit+1)
	lim := len(args)
	if f.Status != "" {
		args = append(args, f.Status)
		return fmt.Sprintf(`SELECT %s FROM jobs WHERE %s AND status = $%d ORDER BY id DESC LIMIT $%d`,
			jobListColumns, cond, len(args), lim), args
	}
	parts := make([]string, len(statuses))
	for i, st := range statuses {
		parts[i] = fmt.Sprintf(`(SELECT %s FROM jobs WHERE %s AND status = '%s' ORDER BY id DESC LIMIT $%d)`,
			jobListColumns, cond, st, lim)
	}
	return fmt.Sprintf(`SELECT * FROM (%s) j ORDER BY id DESC LIMIT $%d`, strings.Join(parts, " UNION ALL "), lim), args
}

// idClockSkew is how far apart the clock that makes job IDs (the API's) and
// the one that stamps created_at (Postgres's) may be for created_after and
// created_before to stay exact.
const idClockSkew = 5 * time.Minute

// idAt returns the smallest UUIDv7 of the millisecond t falls in.
func idAt(t time.Time) uuid.UUID {
	var id uuid.UUID
	ms := t.UnixMilli()
	if ms < 0 {
		ms = 0
	}
	if ms >= 1<<48 {
		return uuid.Max
	}
	for i := 0; i < 6; i++ {
		id[i] = byte(ms >> (8 * (5 - i)))
	}
	id[6] = 0x70
	id[8] = 0x80
	return id
}

// Claim outcomes other than success.
var (
	ErrJobGone     = errors.New("job does not exist")
	ErrJobTerminal = errors.New("job already finished")
	ErrJobBusy     = errors.New("job is running elsewhere")
	// ErrAccountAtLimit: the job is queued, but its account already runs
	// as many jobs as its tier's max_concurrent_runs allows. It is marked
	// parked and starts when one of them stops (see Finished.Waiting).
	ErrAccountAtLimit = errors.New("the job's account runs as many jobs as its tier allows")
)

// ClaimGrace is how long past its own timeout a running job's claim is
// honoured before another delivery may take it over (its worker is presumed
// dead). It covers compilation (WIZARD_COMPILE_TIMEOUT, default 60 s) and the
// result write, like the reconciler's WIZARD_RECONCILE_RUNNING_GRACE.
const ClaimGrace = 2 * time.Minute

// ClaimJob moves a job to running for a new attempt by workerID and writes
// its "job.started" row. A queued job is claimed if its account has a free
// concurrency slot (else ErrAccountAtLimit); so is a running job whose
// previous attempt is past its deadline plus ClaimGrace (its worker died;
// it keeps its slot). Otherwise ErrJobGone, ErrJobTerminal or ErrJobBusy
// says why not.
func (s *Store) ClaimJob(ctx context.Context, id uuid.UUID, workerID string) (Job, error) {
	return s.claimJob(ctx, id, workerID, claimJobSQL)
}

// ClaimFairJob is ClaimJob for a delivery of job id that may run another
// job of the same queue instead, the fairest one (pick_fair_job, migrations
// 00007 and 00015): id itself if its claim expired; else the oldest queued
// job of the account with the fewest running jobs, among the accounts
// below their concurrency limit and the jobs nobody is claiming; else id.
// A delivery is thus a turn of its tier's queue rather than one job's:
// every queued job still has a delivery, since a job whose delivery ran
// another one takes over that one's. The claimed job's ID may differ from
// id. The errors are ClaimJob's and describe id.
func (s *Store) ClaimFairJob(ctx context.Context, id uuid.UUID, workerID string) (Job, error) {
	return s.claimJob(ctx, id, workerID, claimFairJobSQL)
}

// claimSQL is the claim statement of the job target names. A job of an
// account whose tier has a concurrency limit takes a free slot of the
// account's (account_slots, the lowest free one below the limit that no
// concurrent claim is taking: FOR UPDATE SKIP LOCKED) in the same
// statement, and is not claimed without one; a takeover keeps the slot its
// job holds. Only a queued job's claim looks for a slot: a claim that
// claims nothing (a delivery of a job running elsewhere or finished) locks
// no row, so it stays a read-only transaction, not a durable commit. The
// job gives the slot back when it stops running (trigger, migration
// 00015). Taken slots are at most the account's running jobs, so the walk
// in slot order is short. A claim that takes a slot in the upper
// half of the account's rows makes more (grow), so that the account's
// next claims, its own deliveries' or another account's, find one free.
func claimSQL(target string) string {
	return `
		WITH target AS MATERIALIZED (
			SELECT j.id, j.account_id, j.status, least(t.max_concurrent_runs, ` + strconv.Itoa(maxSlots) + `) AS lim,
				CASE WHEN t.max_concurrent_runs > 0 THEN (SELECT coalesce(max(s.slot) + 1, 0) FROM account_slots s
					WHERE s.account_id = j.account_id) END AS have
			FROM jobs j JOIN accounts a ON a.id = j.account_id JOIN tiers t ON t.name = a.tier
			WHERE j.id = ` + target + `
		), slot AS (
			SELECT s.account_id, s.slot FROM account_slots s
			WHERE (SELECT status FROM target) = 'queued'
				AND s.account_id = (SELECT account_id FROM target) AND s.slot < (SELECT lim FROM target)
				AND s.job_id IS NULL
			ORDER BY s.slot LIMIT 1
			FOR UPDATE SKIP LOCKED
		), claimed AS (
			UPDATE jobs j SET status = 'running', attempts = attempts + 1, started_at = now(),
				updated_at = now(), worker_id = $2, parked = false,
				slot = CASE WHEN j.status = 'running' THEN j.slot ELSE (SELECT slot FROM slot) END
			WHERE j.id = (SELECT id FROM target) AND (
				(j.status = 'queued' AND ((SELECT lim FROM target) = 0 OR EXISTS (SELECT 1 FROM slot)))
				OR (j.status = 'running' AND started_at < now() - make_interval(secs => timeout_ms / 1000.0 + $3)))
			RETURNING ` + jobColumns + `, j.slot
		), took AS (
			UPDATE account_slots s SET job_id = c.id FROM claimed c, slot
			WHERE s.account_id = slot.account_id AND s.slot = slot.slot AND c.slot = slot.slot
		), grow AS (
			INSERT INTO account_slots (account_id, slot)
			SELECT t.account_id, g FROM target t, claimed c, slot,
				generate_series(t.have, least(t.lim, t.have + greatest(t.have, ` + strconv.Itoa(slotChunk) + `)) - 1) AS g
			WHERE c.slot = slot.slot AND slot.slot * 2 + 1 >= t.have AND t.have < t.lim
			ON CONFLICT DO NOTHING
		), ev AS (
			INSERT INTO audit_events (account_id, actor, action, subject_type, subject_id, job_id, data)
			SELECT account_id, 'worker', 'job.started', 'job', id::text, id,
				jsonb_build_object('attempt', attempts) FROM claimed
		)
		SELECT * FROM claimed`
}

var (
	claimJobSQL     = claimSQL("$1")
	claimFairJobSQL = claimSQL("(SELECT pick_fair_job($1, $3))")
)

// claimTries bounds the claim statements of one claim: a claim that found
// no slot among the account's rows while some are free (taken or given
// back concurrently), or that needed more rows, tries again.
const claimTries = 3

func (s *Store) claimJob(ctx context.Context, id uuid.UUID, workerID, query string) (Job, error) {
	for try := 1; ; try++ {
		var j Job
		err := s.getPrepared(ctx, nil, &j, query, id, workerID, ClaimGrace.Seconds())
		if err == nil {
			return j, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return Job{}, wrapDB(err, "claim job")
		}
		// Nothing claimed: say why, from the job's status and its
		// account's slots (its rows are numbered from 0 without gaps).
		var st struct {
			Status jobstate.Status `db:"status"`
			Limit  int             `db:"lim"`
			Have   int             `db:"have"`
			Taken  int             `db:"taken"`
		}
		// A job refused for its account's limit is marked parked in the
		// same statement: its delivery is dropped, and the end of one of
		// the account's running jobs wakes it (FinishRun's Waiting).
		err = s.db.GetContext(ctx, &st, `
			WITH st AS MATERIALIZED (
				SELECT j.status, least(t.max_concurrent_runs, $2) AS lim,
					(SELECT coalesce(max(slot) + 1, 0) FROM account_slots WHERE account_id = j.account_id) AS have,
					(SELECT count(*) FROM account_slots WHERE account_id = j.account_id
						AND job_id IS NOT NULL AND slot < t.max_concurrent_runs) AS taken
				FROM jobs j JOIN accounts a ON a.id = j.account_id JOIN tiers t ON t.name = a.tier
				WHERE j.id = $1
			), park AS (
				UPDATE jobs SET parked = true
				WHERE id = $1 AND status = 'queued' AND NOT parked
					AND EXISTS (SELECT 1 FROM st WHERE st.status = 'queued' AND st.lim > 0 AND st.taken >= st.lim)
			)
			SELECT * FROM st`, id, maxSlots)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return Job{}, ErrJobGone
		case err != nil:
			return Job{}, wrapDB(err, "read job status")
		case st.Status.Terminal():
			return Job{}, ErrJobTerminal
		case st.Status != jobstate.Queued || st.Limit <= 0:
			return Job{}, ErrJobBusy
		case st.Taken >= st.Limit:
			return Job{}, ErrAccountAtLimit
		case try >= claimTries:
			return Job{}, ErrJobBusy
		case st.Have < st.Limit && st.Taken >= st.Have:
			// Every row is taken: make more, up to twice as many (at
			// least slotChunk), never past the limit.
			if err := s.makeSlotRows(ctx, id, st.Have, min(st.Have+max(st.Have, slotChunk), st.Limit)); err != nil {
				return Job{}, err
			}
		}
	}
}

// slotChunk is the fewest slot rows a claim makes at once (never past the
// limit); an account starts with this many (migration 00015).
const slotChunk = 16

// makeSlotRows makes the slot rows of job id's account from have up to to
// (not included); rows that concurrent claims made are kept.
func (s *Store) makeSlotRows(ctx context.Context, id uuid.UUID, have, to int) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO account_slots (account_id, slot)
		SELECT (SELECT account_id FROM jobs WHERE id = $1), g FROM generate_series($2::integer, $3::integer) AS g
		ON CONFLICT DO NOTHING`, id, have, to-1)
	return wrapDB(err, "make account slots")
}

// MaxErrorMessage bounds the error message stored with a job (in bytes).
const MaxErrorMessage = 4096

// FinishJob writes a terminal outcome for the given attempt by workerID as
// the job's result, with its "job.finished" row ("job.cancelled" when the
// status is cancelled). It reports false (and changes nothing) if the job is
// no longer running that attempt on that worker: a terminal job is never
// overwritten. The error code and message are stored through CleanText. The
// artifacts themselves are stored before, with SaveArtifacts.
func (s *Store) FinishJob(ctx context.Context, id uuid.UUID, attempt int, workerID string, r jobstate.Outcome) (bool, error) {
	f, err := s.FinishRun(ctx, id, attempt, workerID, r)
	return f.Done, err
}

// Finished is the outcome of FinishRun.
type Finished struct {
	// Done: the result was written (FinishJob's bool).
	Done bool
	// Waiting, when the finished job held a concurrency slot, is the
	// account's oldest parked job in its queue, if any: a job refused a
	// start for want of a slot (ErrAccountAtLimit), whose delivery was
	// dropped and which the caller queues again. It is no longer parked:
	// concurrent and later ends each wake another one. Queued jobs that
	// were never refused keep their own deliveries and are not woken
	// (each wake costs a claim).
	Waiting *QueuedRef
}

// FinishRun is FinishJob that also names the job waiting for the slot the
// finished job gave back (Finished.Waiting).
func (s *Store) FinishRun(ctx context.Context, id uuid.UUID, attempt int, workerID string, r jobstate.Outcome) (Finished, error) {
	if !r.Status.Terminal() {
		return Finished{}, fmt.Errorf("finish job: %q is not a terminal status", r.Status)
	}
	// Error texts come from the guest (a trap's stack trace holds its
	// functions' debug names): make them storable.
	r.ErrorCode = CleanText(r.ErrorCode, 64)
	r.ErrorMessage = CleanText(r.ErrorMessage, MaxErrorMessage)
	var ret any
	if r.ReturnValues != nil {
		ret = JSON[[]json.RawMessage]{V: r.ReturnValues}
	}
	var out struct {
		N         int            `db:"n"`
		WaitingID uuid.NullUUID  `db:"waiting_id"`
		Queue     sql.NullString `db:"queue"`
		TimeoutMS sql.NullInt64  `db:"timeout_ms"`
	}
	err := s.getPrepared(ctx, nil, &out, `
		WITH done AS (
			UPDATE jobs SET status = $3, exit_code = $4, stdout = $5, stderr = $6,
				stdout_truncated = $7, stderr_truncated = $8, return_values = $9,
				error_code = NULLIF($10, ''), error_message = NULLIF($11, ''),
				memory_peak_bytes = NULLIF($12, 0), run_ms = $13, finished_at = now(), updated_at = now(),
				artifacts_truncated = $15
			WHERE id = $1 AND status = 'running' AND attempts = $2 AND worker_id = $14
			RETURNING account_id, id, status, error_code, exit_code, attempts, queue, slot
		), ev AS (
			INSERT INTO audit_events (account_id, actor, action, subject_type, subject_id, job_id, data)
			SELECT account_id, 'worker',
				CASE WHEN status = 'cancelled' THEN 'job.cancelled' ELSE 'job.finished' END, 'job', id::text, id,
				jsonb_strip_nulls(jsonb_build_object('attempt', attempts, 'status', status,
					'error_code', error_code, 'exit_code', exit_code)) FROM done
		), waiting AS (
			-- Only for a job that held a slot: the account's oldest parked
			-- job (its delivery was dropped at the limit) that no
			-- concurrent end is waking, unmarked. One probe of the partial
			-- index jobs_parked_idx, empty unless the account hit its limit.
			UPDATE jobs q SET parked = false
			FROM done d
			WHERE d.slot IS NOT NULL AND q.id = (SELECT p.id FROM jobs p
				WHERE p.account_id = d.account_id AND p.queue = d.queue AND p.parked AND p.status = 'queued'
				ORDER BY p.id LIMIT 1 FOR UPDATE SKIP LOCKED)
			RETURNING q.id, q.queue, q.timeout_ms
		)
		SELECT (SELECT count(*) FROM done) AS n, w.id AS waiting_id, w.queue, w.timeout_ms
		FROM (SELECT 1) AS one LEFT JOIN waiting w ON true`,
		id, attempt, r.Status, r.ExitCode, nonNil(r.Stdout), nonNil(r.Stderr), r.StdoutTruncated, r.StderrTruncated,
		ret, r.ErrorCode, r.ErrorMessage, r.MemoryPeakBytes, int(r.RunTime.Milliseconds()), workerID, r.ArtifactsTruncated)
	if err != nil {
		return Finished{}, wrapDB(err, "finish job")
	}
	f := Finished{Done: out.N == 1}
	if f.Done && out.WaitingID.Valid {
		f.Waiting = &QueuedRef{ID: out.WaitingID.UUID, Queue: out.Queue.String, TimeoutMS: int(out.TimeoutMS.Int64)}
	}
	return f, nil
}

// ReleaseJob hands a running attempt back to the queue (the worker is
// shutting down): the job becomes queued again and the next delivery claims
// it at once.
func (s *Store) ReleaseJob(ctx context.Context, id uuid.UUID, attempt int, workerID string) (bool, error) {
	var n int
	err := s.db.GetContext(ctx, &n, `
		WITH back AS (
			UPDATE jobs SET status = 'queued', worker_id = NULL, updated_at = now()
			WHERE id = $1 AND status = 'running' AND attempts = $2 AND worker_id = $3
			RETURNING account_id, id, attempts
		), ev AS (
			INSERT INTO audit_events (account_id, actor, action, subject_type, subject_id, job_id, data)
			SELECT account_id, 'worker', 'job.requeued', 'job', id::text, id,
				jsonb_build_object('attempt', attempts) FROM back
		)
		SELECT count(*) FROM back`, id, attempt, workerID)
	if err != nil {
		return false, wrapDB(err, "release job")
	}
	return n == 1, nil
}

// CancelJob cancels one of the account's jobs. A queued job becomes
// cancelled at once ("job.cancelled"); a running job is marked as
// cancel-requested ("job.cancel_requested") and keeps running until its
// worker stops it; the caller then interrupts the run. Both in one
// conditional statement, so a job that a worker claims or finishes meanwhile
// is seen in its new status. A terminal job is a conflict.
func (s *Store) CancelJob(ctx context.Context, actor Actor, accountID, id uuid.UUID) (Job, error) {
	var j Job
	err := s.db.GetContext(ctx, &j, `
		WITH c AS (
			UPDATE jobs SET
				status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
				error_code = CASE WHEN status = 'queued' THEN 'cancelled' ELSE error_code END,
				error_message = CASE WHEN status = 'queued' THEN 'the job was cancelled before it started'
					ELSE error_message END,
				finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END,
				cancel_requested_at = coalesce(cancel_requested_at, now()),
				updated_at = now()
			WHERE id = $1 AND account_id = $2 AND status IN ('queued', 'running')
			RETURNING `+jobViewColumns+`
		), ev AS (
			INSERT INTO audit_events (account_id, actor, action, subject_type, subject_id, job_id, request_id, data)
			SELECT account_id, $3, CASE WHEN status = 'cancelled' THEN 'job.cancelled' ELSE 'job.cancel_requested' END,
				'job', id::text, id, $4, jsonb_build_object('attempt', attempts) FROM c
		)
		SELECT * FROM c`, id, accountID, actor.Name, actor.RequestID)
	if errors.Is(err, sql.ErrNoRows) {
		cur, gerr := s.GetJobView(ctx, accountID, id)
		if gerr != nil {
			return Job{}, gerr
		}
		return cur, apperr.New(apperr.Conflict, "job %s already finished (%s); it cannot be cancelled", id, cur.Status)
	}
	return j, wrapDB(err, "cancel job")
}

// CancelRequested reports whether a client asked to cancel the job.
func (s *Store) CancelRequested(ctx context.Context, id uuid.UUID) (bool, error) {
	var requested bool
	err := s.db.GetContext(ctx, &requested, `SELECT cancel_requested_at IS NOT NULL FROM jobs WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return requested, wrapDB(err, "read cancel request")
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func nonNilStrings(a pq.StringArray) pq.StringArray {
	if a == nil {
		return pq.StringArray{}
	}
	return a
}
