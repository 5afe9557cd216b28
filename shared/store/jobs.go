package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
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
	// MaxUnfinished, when positive, is the account's concurrency limit:
	// the insert is refused (quota_exceeded) if the account already has
	// that many queued or running jobs. Not stored.
	MaxUnfinished int `db:"-"`
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
// sees the job (and fails it) or makes this insert fail. With MaxUnfinished
// set, the job takes one of the account's slots (else quota_exceeded).
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
	if err := s.prepareOutside(ctx, insertJobQueries[boolIndex(min(j.MaxUnfinished, maxSlots) > 0)]); err != nil {
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

// slotChunk is the fewest slot rows a submit that finds none free makes at
// once (never past the limit). It makes as many as the account already has
// when that is more, so that at least half of the rows are free right after
// (the search for a free slot walks past taken rows; see
// migrations/00008_hot_account_slots.sql), and an account that needs n slots
// makes its rows in O(log n) rounds.
const slotChunk = 1024

// slotWindow is how many of an account's slot rows, expected, a submit looks
// at for a free one before it makes more rows instead (while the account has
// fewer than its limit): taken rows stay in the index that the search walks,
// so without a bound a submit of an account with many rows and few free
// would walk most of them. Only an account whose rows have all been made
// (limit reached) searches them all (exactWindow), and only after its
// bounded search found none.
const slotWindow = 32

// exactWindow makes the search for a free slot look at every slot row, in
// slot order (the primary key's, which is also the order the rows were
// made in, so the walk reads the heap in order: ≈ 20 ms for 100,000 rows,
// against ≈ 170 ms in pos order).
const exactWindow = 0

// createJob inserts the job, in tx when not nil. A limited job
// (MaxUnfinished > 0) takes a free slot of the account's in the same
// statement (see migrations/00007_fair_admission.sql and
// 00008_hot_account_slots.sql): slots that concurrent
// submits are taking are skipped, not waited for, so an account's submits
// do not queue behind each other, and at most MaxUnfinished jobs hold a
// slot at any time. The job gives its slot back when it ends (trigger).
func (s *Store) createJob(ctx context.Context, tx *sqlx.Tx, actor Actor, j Job) (Job, error) {
	if j.ID == uuid.Nil {
		j.ID = newID()
	}
	limit := min(j.MaxUnfinished, maxSlots)
	last := false
	window := float64(slotWindow)
	// An account with a small limit whose rows all exist searches them
	// all at once: as cheap as the bounded search at that size, and a
	// submit at the limit is refused after one search instead of two.
	exactFirst := limit > 0 && limit <= exactFirstUpTo && s.knownSlotRows(j.AccountID) >= limit
	if exactFirst {
		last, window = true, exactWindow
	}
	for {
		out, err := s.insertJob(ctx, tx, actor, j, limit, window)
		if err == nil && len(j.inputs) > 0 {
			err = insertInputs(ctx, s.ext(tx), out.ID, j.AccountID, j.inputs)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return out, wrapDB(err, "insert job")
		}
		// Either the module is not one of the account's live modules, or
		// no slot was free. After the search of every row, no slot was
		// (when that search came first, the module is checked first).
		if exactFirst {
			if live, err := s.moduleLive(ctx, tx, j); err != nil || !live {
				return Job{}, err
			}
		}
		if last {
			return Job{}, apperr.New(apperr.QuotaExceeded,
				"%d of your jobs are queued or running, and your tier allows %d at once; wait for some to finish", limit, limit)
		}
		// Slot rows are made on demand (see slotChunk), numbered from 0
		// without gaps: the account has the rows below its highest slot + 1
		// (read from the primary key, not counted), read with the module's
		// check in one round trip. Once all limit rows exist, one more try
		// that looks at every row decides (rows made meanwhile by others are
		// then seen).
		var found struct {
			Live bool `db:"live"`
			Have int  `db:"have"`
		}
		if err := sqlx.GetContext(ctx, s.ext(tx), &found, `SELECT
			EXISTS (SELECT 1 FROM modules WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL) AS live,
			(SELECT coalesce(max(slot) + 1, 0) FROM account_slots WHERE account_id = $2) AS have`,
			j.ModuleID, j.AccountID); err != nil {
			return Job{}, wrapDB(err, "find module and account slots")
		}
		if !found.Live || limit <= 0 {
			return Job{}, apperr.New(apperr.NotFound, "module %s not found", j.ModuleID)
		}
		have := found.Have
		if tx == nil {
			s.sawSlotRows(j.AccountID, have)
		}
		if have >= limit {
			last, window = true, exactWindow
			continue
		}
		if err := s.makeSlotRows(ctx, tx, j.AccountID, have, min(have+max(have, slotChunk), limit)); err != nil {
			return Job{}, err
		}
	}
}

// makeSlotRows makes the account's slot rows from have up to to (not
// included). The submits of one process that all found too few free rows
// make them once: the others wait for the one making them (taking turns
// per account), then find them made and go back to their search. Submits
// of other processes whose rows conflict wait for theirs, then find them.
func (s *Store) makeSlotRows(ctx context.Context, tx *sqlx.Tx, account uuid.UUID, have, to int) error {
	if tx == nil {
		mu, _ := s.slotGrowth.LoadOrStore(account, &sync.Mutex{})
		mu.(*sync.Mutex).Lock()
		defer mu.(*sync.Mutex).Unlock()
		if s.knownSlotRows(account) > have {
			return nil // made while this submit waited
		}
	}
	if _, err := s.ext(tx).ExecContext(ctx, `INSERT INTO account_slots (account_id, slot)
		SELECT $1, g FROM generate_series($2::integer, $3::integer) AS g ON CONFLICT DO NOTHING`,
		account, have, to-1); err != nil {
		return wrapDB(err, "make account slots")
	}
	if tx == nil {
		// Made now (by this insert or a concurrent one); in a transaction,
		// only once it commits (see sawSlotRows).
		s.sawSlotRows(account, to)
	}
	return nil
}

// exactFirstUpTo is the largest limit for which a submit searches all of
// the account's slot rows first (once they all exist): a walk of that many
// rows in slot order reads a page or two, as the bounded search does.
const exactFirstUpTo = 4 * slotWindow

// knownSlotRows is how many slot rows the account is known to have (0: not
// known).
func (s *Store) knownSlotRows(account uuid.UUID) int {
	if n, ok := s.slotRows.Load(account); ok {
		return n.(int)
	}
	return 0
}

// sawSlotRows records that the account has at least n slot rows, read or
// made outside any transaction that could still roll them back.
func (s *Store) sawSlotRows(account uuid.UUID, n int) {
	for {
		old, loaded := s.slotRows.LoadOrStore(account, n)
		if !loaded || old.(int) >= n || s.slotRows.CompareAndSwap(account, old, n) {
			return
		}
	}
}

// moduleLive reports whether the job's module is one of its account's live
// modules; a NotFound error when it is not.
func (s *Store) moduleLive(ctx context.Context, tx *sqlx.Tx, j Job) (bool, error) {
	var live bool
	if err := sqlx.GetContext(ctx, s.ext(tx), &live, `SELECT EXISTS (SELECT 1 FROM modules
		WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL)`, j.ModuleID, j.AccountID); err != nil {
		return false, wrapDB(err, "find module")
	}
	if !live {
		return false, apperr.New(apperr.NotFound, "module %s not found", j.ModuleID)
	}
	return true, nil
}

// ext is tx when not nil, else the pool.
func (s *Store) ext(tx *sqlx.Tx) sqlx.ExtContext {
	if tx != nil {
		return tx
	}
	return s.db
}

// insertJobSQL is insertJob's statement, for an account with a
// concurrency limit (it takes a slot) or without.
func insertJobSQL(limited, exact bool) string {
	// The module is locked (see CreateJob) only once a slot is found, and
	// the slot is taken only if the module is live: a submit refused for
	// want of a free slot writes nothing, so it costs no WAL and no
	// durable commit (an account at its limit may be refused many times a
	// second).
	// The file fields' parameters follow the variant's own (see insertJob).
	files := fileParams(19)
	const module = `
		m AS (
			SELECT id, sha256, asset_count FROM modules
			WHERE id = $3 AND account_id = $2 AND deleted_at IS NULL %s
			FOR SHARE
		),`
	const take = `
		took AS (
			UPDATE account_slots s SET job_id = $1 FROM slot, m
			WHERE s.account_id = slot.account_id AND s.slot = slot.slot
			RETURNING s.slot
		),`
	ctes, took := fmt.Sprintf(module, ""), "NULL FROM m"
	switch {
	case exact:
		ctes = `
		slot AS (
			SELECT account_id, slot FROM account_slots
			WHERE account_id = $2 AND slot < $19 AND job_id IS NULL
			ORDER BY slot LIMIT 1
			FOR UPDATE SKIP LOCKED
		),` + fmt.Sprintf(module, "AND EXISTS (SELECT 1 FROM slot)") + take
		took = `took.slot FROM m, took`
		files = fileParams(20)
	case limited:
		// The search looks at the rows whose pos is in [lo, lo + w), where
		// w is $21 / (the account's rows): about $21 rows (slotWindow; see
		// exactWindow for the search of all of them), and lo is the random
		// $20 scaled into [0, 1 - w), so that the window never passes 1
		// (a window cut there looked at fewer rows, found none free more
		// often, and made the account's rows double for nothing; a
		// wrap-around the planner served with a scan of the whole table).
		// Taken rows are in the index it walks and are skipped (see
		// migrations/00008_hot_account_slots.sql).
		ctes = `
		w AS MATERIALIZED (
			SELECT $21::float8 / (SELECT max(slot) + 1 FROM account_slots WHERE account_id = $2) AS w
		), win AS (
			SELECT $20::float8 * greatest(1 - w, 0) AS lo, $20::float8 * greatest(1 - w, 0) + w AS hi FROM w
		), slot AS (
			SELECT account_id, slot FROM account_slots
			WHERE account_id = $2 AND pos >= (SELECT lo FROM win) AND pos < (SELECT hi FROM win)
				AND job_id IS NULL AND slot < $19
			ORDER BY pos LIMIT 1
			FOR UPDATE SKIP LOCKED
		),` + fmt.Sprintf(module, "AND EXISTS (SELECT 1 FROM slot)") + take
		took = `took.slot FROM m, took`
		files = fileParams(22)
	}
	return `
		WITH` + ctes + ` job AS (
			INSERT INTO jobs (id, account_id, module_id, module_sha256, queue, function, args, env, stdin, params,
				timeout_ms, memory_limit_mb, max_output_bytes, deterministic, webhook_url, metadata, watched,
				preopens, collect, max_fs_bytes, max_artifact_bytes, input_count, traceparent, asset_count, slot)
			SELECT $1, $2, m.id, m.sha256, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $18,
				` + files + `, m.asset_count, ` + took + `
			RETURNING ` + jobColumns + `
		), ev AS (
			INSERT INTO audit_events (account_id, actor, action, subject_type, subject_id, job_id, request_id, data)
			SELECT account_id, $16, 'job.created', 'job', id::text, id, $17,
				jsonb_build_object('module_id', module_id, 'function', function) FROM job
		)
		SELECT * FROM job`
}

// insertJobQueries are insertJobSQL's two statements, prepared when the
// Store opens (see warm).
var insertJobQueries = [2]string{insertJobSQL(false, false), insertJobSQL(true, false)}

// insertJobExactSQL is insertJobSQL for the search of every slot row: run
// by an account at its limit, and first by an account with a small limit
// (see exactFirstUpTo).
var insertJobExactSQL = insertJobSQL(true, true)

// insertJob is createJob's statement: sql.ErrNoRows when the module is not
// the account's or no free slot was found among the rows that window lets it
// look at (slotWindow, exactWindow).
func (s *Store) insertJob(ctx context.Context, tx *sqlx.Tx, actor Actor, j Job, limit int, window float64) (Job, error) {
	args := []any{j.ID, j.AccountID, j.ModuleID, j.Queue, j.Function, j.Args, j.Env, nonNil(j.Stdin), j.Params,
		j.TimeoutMS, j.MemoryLimitMB, j.MaxOutputBytes, j.Deterministic, j.WebhookURL, j.Metadata,
		actor.Name, actor.RequestID, j.Watched}
	files := []any{nonNilStrings(j.Preopens), nonNilStrings(j.Collect), j.MaxFSBytes, j.MaxArtifactBytes, len(j.Files), j.Traceparent}
	var out Job
	var err error
	switch {
	case limit > 0 && window == exactWindow:
		args = append(append(args, limit), files...)
		err = s.getPrepared(ctx, tx, &out, insertJobExactSQL, args...)
	case limit > 0:
		// The search for a free slot starts at a random place (see pos in
		// the migration).
		args = append(args, limit, rand.Float64(), window) //nolint:gosec // spreads load, not a secret
		args = append(args, files...)
		err = s.getPrepared(ctx, tx, &out, insertJobQueries[1], args...)
	default:
		args = append(args, files...)
		err = s.getPrepared(ctx, tx, &out, insertJobQueries[0], args...)
	}
	if err != nil {
		return Job{}, err
	}
	return out, nil
}

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
)

// ClaimGrace is how long past its own timeout a running job's claim is
// honoured before another delivery may take it over (its worker is presumed
// dead). It covers compilation (WIZARD_COMPILE_TIMEOUT, default 60 s) and the
// result write, like the reconciler's WIZARD_RECONCILE_RUNNING_GRACE.
const ClaimGrace = 2 * time.Minute

// ClaimJob moves a job to running for a new attempt by workerID and writes
// its "job.started" row. A queued job is claimed; so is a running job whose
// previous attempt is past its deadline plus ClaimGrace (its worker died).
// Otherwise ErrJobGone, ErrJobTerminal or ErrJobBusy says why not.
func (s *Store) ClaimJob(ctx context.Context, id uuid.UUID, workerID string) (Job, error) {
	return s.claimJob(ctx, id, workerID, "$1")
}

// ClaimFairJob is ClaimJob for a delivery of job id that may run another
// job of the same queue instead, the fairest one (pick_fair_job, migration
// 00007): id itself if its claim expired; else the oldest queued job of
// the account with the fewest running jobs, among those nobody is claiming;
// else id. A delivery is thus a turn of its tier's queue rather than one
// job's: every queued job still has a delivery, since a job whose delivery
// ran another one takes over that one's. The claimed job's ID may differ
// from id. The errors are ClaimJob's and describe id.
func (s *Store) ClaimFairJob(ctx context.Context, id uuid.UUID, workerID string) (Job, error) {
	return s.claimJob(ctx, id, workerID, "(SELECT pick_fair_job($1, $3))")
}

func (s *Store) claimJob(ctx context.Context, id uuid.UUID, workerID, target string) (Job, error) {
	var j Job
	err := s.getPrepared(ctx, nil, &j, `
		WITH claimed AS (
			UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = now(),
				updated_at = now(), worker_id = $2
			WHERE id = `+target+` AND (status = 'queued' OR (status = 'running' AND
				started_at < now() - make_interval(secs => timeout_ms / 1000.0 + $3)))
			RETURNING `+jobColumns+`
		), ev AS (
			INSERT INTO audit_events (account_id, actor, action, subject_type, subject_id, job_id, data)
			SELECT account_id, 'worker', 'job.started', 'job', id::text, id,
				jsonb_build_object('attempt', attempts) FROM claimed
		)
		SELECT * FROM claimed`, id, workerID, ClaimGrace.Seconds())
	if err == nil {
		return j, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Job{}, wrapDB(err, "claim job")
	}
	var status jobstate.Status
	err = s.db.GetContext(ctx, &status, `SELECT status FROM jobs WHERE id = $1`, id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Job{}, ErrJobGone
	case err != nil:
		return Job{}, wrapDB(err, "read job status")
	case status.Terminal():
		return Job{}, ErrJobTerminal
	default:
		return Job{}, ErrJobBusy
	}
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
	if !r.Status.Terminal() {
		return false, fmt.Errorf("finish job: %q is not a terminal status", r.Status)
	}
	// Error texts come from the guest (a trap's stack trace holds its
	// functions' debug names): make them storable.
	r.ErrorCode = CleanText(r.ErrorCode, 64)
	r.ErrorMessage = CleanText(r.ErrorMessage, MaxErrorMessage)
	var ret any
	if r.ReturnValues != nil {
		ret = JSON[[]json.RawMessage]{V: r.ReturnValues}
	}
	var n int
	err := s.getPrepared(ctx, nil, &n, `
		WITH done AS (
			UPDATE jobs SET status = $3, exit_code = $4, stdout = $5, stderr = $6,
				stdout_truncated = $7, stderr_truncated = $8, return_values = $9,
				error_code = NULLIF($10, ''), error_message = NULLIF($11, ''),
				memory_peak_bytes = NULLIF($12, 0), run_ms = $13, finished_at = now(), updated_at = now(),
				artifacts_truncated = $15
			WHERE id = $1 AND status = 'running' AND attempts = $2 AND worker_id = $14
			RETURNING account_id, id, status, error_code, exit_code, attempts
		), ev AS (
			INSERT INTO audit_events (account_id, actor, action, subject_type, subject_id, job_id, data)
			SELECT account_id, 'worker',
				CASE WHEN status = 'cancelled' THEN 'job.cancelled' ELSE 'job.finished' END, 'job', id::text, id,
				jsonb_strip_nulls(jsonb_build_object('attempt', attempts, 'status', status,
					'error_code', error_code, 'exit_code', exit_code)) FROM done
		)
		SELECT count(*) FROM done`,
		id, attempt, r.Status, r.ExitCode, nonNil(r.Stdout), nonNil(r.Stderr), r.StdoutTruncated, r.StderrTruncated,
		ret, r.ErrorCode, r.ErrorMessage, r.MemoryPeakBytes, int(r.RunTime.Milliseconds()), workerID, r.ArtifactsTruncated)
	if err != nil {
		return false, wrapDB(err, "finish job")
	}
	return n == 1, nil
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

// fileParams is the parameter list of a job's file fields and its
// traceparent, from $first.
func fileParams(first int) string {
	return fmt.Sprintf("$%d, $%d, $%d, $%d, $%d, $%d", first, first+1, first+2, first+3, first+4, first+5)
}

func nonNilStrings(a pq.StringArray) pq.StringArray {
	if a == nil {
		return pq.StringArray{}
	}
	return a
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}
