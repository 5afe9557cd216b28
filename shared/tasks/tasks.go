// Package tasks is the contract between the API and the worker: task types,
// payloads, queues.
//
// They are asynq's task types and payloads and the queue names. The asynq
// task ID of a run is the job ID, so asynq itself refuses to hold two copies
// of one job.
package tasks

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
)

// TypeRunJob runs one job.
const TypeRunJob = "job:run"

// TypeCompileModule compiles an uploaded module ahead of its first run.
const TypeCompileModule = "module:compile"

// TypeDeliverWebhook sends (one attempt of) a webhook delivery.
const TypeDeliverWebhook = "webhook:deliver"

// WebhooksQueue is the base name of the webhook deliveries' own queue, so
// that slow receivers never hold up job execution.
const WebhooksQueue = "webhooks"

// JobsQueue is the base name of the queue jobs run from; a deployment's
// namespace is put in front of it.
const JobsQueue = "jobs"

// MaxRetry is how often asynq redelivers a run whose handler failed for an
// infrastructure reason (database or Redis unreachable). A guest's own
// failure is a result, not a retry.
const MaxRetry = 10

// leaseMargin is added to a job's own timeout to get asynq's task deadline:
// the executor enforces the job's timeout (and the compile timeout, default
// 60 s, before it); asynq's deadline only catches a handler that is stuck
// outside the guest.
const leaseMargin = 2 * time.Minute

// RunJob is the payload of TypeRunJob. Everything else about the job is read
// from Postgres, the source of truth.
type RunJob struct {
	JobID uuid.UUID `json:"job_id"`
	// Traceparent is the W3C trace context of the submit that queued the
	// job, when tracing is on. The worker's spans take the one stored on
	// the job it claims (a delivery may claim another job, and the
	// doorbell's and the reconciler's runs have no such payload); this one
	// serves when the row has none.
	Traceparent string `json:"traceparent,omitempty"`
}

// maxTraceparent bounds a payload's traceparent (a W3C version 00 one is
// 55 characters; later versions may append fields).
const maxTraceparent = 256

// Queue returns the name of the deployment's base queue in a namespace: its
// doorbell and cancel channel are named after it, and pre-compile tasks run
// from it. Jobs run from their tier's queue (TierQueue).
func Queue(namespace string) string { return namespace + JobsQueue }

// TierQueue returns the queue the jobs of a tier run from. Workers weigh
// these queues by the tiers' queue_weight, so a flood of jobs in one tier
// cannot starve another.
func TierQueue(namespace, tier string) string { return namespace + JobsQueue + ":" + tier }

// NewRunJob builds the task that runs job id from queue, whose guest may run
// for timeout; traceparent ("" for none) is the submit's trace context.
func NewRunJob(id uuid.UUID, queue string, timeout time.Duration, traceparent string) (*asynq.Task, error) {
	return runTask(RunJob{JobID: id, Traceparent: traceparent}, id.String(), queue, timeout)
}

// NewRecoveryRun builds the task that runs job id again after its worker was
// lost during attempt. Its task ID names the attempt: the lost worker's task
// may linger in asynq's active set until its lease expires, and must not
// block the new one. Both are safe to deliver, since a job is claimed in
// Postgres by exactly one of them.
func NewRecoveryRun(id uuid.UUID, attempt int, queue string, timeout time.Duration) (*asynq.Task, error) {
	return runTask(RunJob{JobID: id}, fmt.Sprintf("%s:recovery-%d", id, attempt), queue, timeout)
}

// NewWakeRun builds a delivery for job id, queued when job after, which held
// a concurrency slot of the same account, stopped running: deliveries of
// jobs whose account was at its limit are dropped (store.ErrAccountAtLimit),
// and this one takes the slot after freed. Its task ID names after, so that
// it never collides with the job's own task, wherever that is.
func NewWakeRun(id, after uuid.UUID, queue string, timeout time.Duration) (*asynq.Task, error) {
	return runTask(RunJob{JobID: id}, fmt.Sprintf("%s:after-%s", id, after), queue, timeout)
}

// runTask is a TypeRunJob task of payload p under taskID on queue, whose
// guest may run for timeout.
func runTask(p RunJob, taskID, queue string, timeout time.Duration) (*asynq.Task, error) {
	payload, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode run payload: %w", err)
	}
	return asynq.NewTask(TypeRunJob, payload,
		asynq.TaskID(taskID),
		asynq.Queue(queue),
		asynq.MaxRetry(MaxRetry),
		asynq.Timeout(timeout+leaseMargin),
	), nil
}

// ParseRunJob decodes a TypeRunJob payload.
func ParseRunJob(payload []byte) (RunJob, error) {
	var p RunJob
	if err := json.Unmarshal(payload, &p); err != nil {
		return RunJob{}, fmt.Errorf("decode run payload: %w", err)
	}
	if p.JobID == uuid.Nil {
		return RunJob{}, fmt.Errorf("decode run payload: job_id missing")
	}
	if len(p.Traceparent) > maxTraceparent {
		p.Traceparent = "" // not a trace context; the job runs all the same
	}
	return p, nil
}

// CompileModule is the payload of TypeCompileModule.
type CompileModule struct {
	SHA256 string `json:"sha256"` // hex
}

// NewCompileModule builds the task that compiles the module with this
// SHA-256 on some worker. One such task per module can be queued at a time.
func NewCompileModule(sum []byte, queue string) (*asynq.Task, error) {
	h := hex.EncodeToString(sum)
	return newWarmTask(TypeCompileModule, "compile", "compile:"+h, queue, CompileModule{SHA256: h})
}

// newWarmTask builds a task that warms a worker's cache (a compile, a
// prefetch): payload p as JSON, one task with this id queued at a time,
// three retries and five minutes a run. what names the task in an error.
func newWarmTask(typ, what, id, queue string, p any) (*asynq.Task, error) {
	payload, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", what, err)
	}
	return asynq.NewTask(typ, payload,
		asynq.TaskID(id),
		asynq.Queue(queue),
		asynq.MaxRetry(3),
		asynq.Timeout(5*time.Minute),
	), nil
}

// ParseCompileModule decodes a TypeCompileModule payload.
func ParseCompileModule(payload []byte) ([]byte, error) {
	var p CompileModule
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, fmt.Errorf("decode compile payload: %w", err)
	}
	sum, err := hex.DecodeString(p.SHA256)
	if err != nil || len(sum) != 32 {
		return nil, fmt.Errorf("decode compile payload: bad sha256 %q", p.SHA256)
	}
	return sum, nil
}

// TypePrefetchAssets asks a worker to fetch a module's new asset tree
// (the blob of a normalised tar) into its memory ahead of the module's
// next run. Like a pre-compile, it is an optimisation: a job whose tree
// is not cached fetches it itself.
const TypePrefetchAssets = "module:assets"

// PrefetchAssets is the payload of TypePrefetchAssets.
type PrefetchAssets struct {
	SHA256 string `json:"sha256"` // hex, of the tree's tar
}

// NewPrefetchAssets builds the task that brings the asset tree whose tar
// has this SHA-256 (hex) into some worker's cache. One such task per tree
// can be queued at a time.
func NewPrefetchAssets(sum, queue string) (*asynq.Task, error) {
	if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 {
		return nil, fmt.Errorf("encode prefetch payload: bad sha256 %q", sum)
	}
	return newWarmTask(TypePrefetchAssets, "prefetch", "assets:"+sum, queue, PrefetchAssets{SHA256: sum})
}

// ParsePrefetchAssets decodes a TypePrefetchAssets payload and returns the
// SHA-256 (hex).
func ParsePrefetchAssets(payload []byte) (string, error) {
	var p PrefetchAssets
	if err := json.Unmarshal(payload, &p); err != nil {
		return "", fmt.Errorf("decode prefetch payload: %w", err)
	}
	if b, err := hex.DecodeString(p.SHA256); err != nil || len(b) != 32 {
		return "", fmt.Errorf("decode prefetch payload: bad sha256 %q", p.SHA256)
	}
	return p.SHA256, nil
}

// WebhookQueue returns the name of the webhooks queue in a namespace.
func WebhookQueue(namespace string) string { return namespace + WebhooksQueue }

// DeliverWebhook is the payload of TypeDeliverWebhook.
type DeliverWebhook struct {
	DeliveryID uuid.UUID `json:"delivery_id"`
	// AccountID is the delivery's account, so that a task of an account at
	// its limit of deliveries in flight is put back without a database read.
	AccountID uuid.UUID `json:"account_id,omitzero"`
	// Attempt is the number of attempts the delivery had when the task was
	// queued: the task makes attempt Attempt+1. Nil in tasks queued by
	// earlier versions.
	Attempt *int `json:"attempt,omitempty"`
	// Traceparent is the W3C trace context of the job run (or of the
	// attempt before) that queued this attempt, when tracing is on.
	Traceparent string `json:"traceparent,omitempty"`
}

// WebhookAttempts is how many times a delivery is tried: immediately, then
// after each delay of the retry schedule.
const WebhookAttempts = 8

// DeliverWebhookTimeout is asynq's deadline for one delivery task (an
// attempt is limited to 10 s; the rest covers the database).
const DeliverWebhookTimeout = time.Minute

// DeliverWebhookID is the task ID of the send that makes a delivery's
// attempt number attempt+1. There is one task per attempt: whoever queues it
// (the end of the job, the reconciler's sweep, a manual retry, the attempt
// before) gets the same ID, so asynq refuses a second copy while one waits.
func DeliverWebhookID(id uuid.UUID, attempt int) string {
	return "delivery:" + id.String() + ":" + strconv.Itoa(attempt)
}

// NewDeliverWebhook builds the task that makes attempt number attempt+1 of
// a delivery of account accountID (see DeliverWebhookID); traceparent ("" for
// none) is the trace it belongs to.
func NewDeliverWebhook(id, accountID uuid.UUID, attempt int, traceparent, queue string, opts ...asynq.Option) (*asynq.Task, error) {
	payload, err := json.Marshal(DeliverWebhook{DeliveryID: id, AccountID: accountID, Attempt: &attempt, Traceparent: traceparent})
	if err != nil {
		return nil, fmt.Errorf("encode delivery payload: %w", err)
	}
	return asynq.NewTask(TypeDeliverWebhook, payload, append([]asynq.Option{
		asynq.TaskID(DeliverWebhookID(id, attempt)),
		asynq.Queue(queue),
		asynq.MaxRetry(WebhookAttempts - 1), // platform errors; the schedule queues a task per attempt
		asynq.Timeout(DeliverWebhookTimeout),
	}, opts...)...), nil
}

// ParseDeliverWebhook decodes a TypeDeliverWebhook payload.
func ParseDeliverWebhook(payload []byte) (DeliverWebhook, error) {
	var p DeliverWebhook
	if err := json.Unmarshal(payload, &p); err != nil || p.DeliveryID == uuid.Nil {
		return DeliverWebhook{}, fmt.Errorf("decode delivery payload: %w", errors.Join(err, errors.New("delivery_id missing")))
	}
	if p.Attempt != nil && (*p.Attempt < 0 || *p.Attempt > 1<<20) {
		return DeliverWebhook{}, fmt.Errorf("decode delivery payload: attempt %d out of range", *p.Attempt)
	}
	if len(p.Traceparent) > maxTraceparent {
		p.Traceparent = ""
	}
	return p, nil
}

// TaskEnqueuer puts a task on a queue (asynq's Client).
type TaskEnqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// TaskInspector looks at and moves queued tasks (asynq's Inspector).
type TaskInspector interface {
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
	DeleteTask(queue, id string) error
	RunTask(queue, id string) error
}
