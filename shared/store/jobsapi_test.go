package store_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

func actions(t *testing.T, b bundle, id uuid.UUID) []string {
	t.Helper()
	events, err := b.st.JobEvents(context.Background(), b.account.ID, id)
	require.NoError(t, err)
	var out []string
	for _, e := range events {
		out = append(out, e.Action)
	}
	return out
}

func (b bundle) request() store.Job {
	return store.Job{
		AccountID: b.account.ID, ModuleID: b.module.ID, Queue: "q",
		Function: "_start", TimeoutMS: 1000, MemoryLimitMB: 16, MaxOutputBytes: 100,
		Args: store.JSON[[]string]{V: []string{}}, Env: store.JSON[map[string]string]{V: map[string]string{}},
		Metadata: store.JSON[map[string]string]{V: map[string]string{}},
	}
}

func TestCancelQueuedJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	j := b.job(t)

	c, err := b.st.CancelJob(ctx, store.Actor{Name: "key:x"}, b.account.ID, j.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.Cancelled, c.Status)
	require.Equal(t, "cancelled", *c.ErrorCode)
	require.NotNil(t, c.FinishedAt)
	require.NotNil(t, c.CancelRequestedAt)

	_, err = b.st.ClaimJob(ctx, j.ID, "w")
	require.ErrorIs(t, err, store.ErrJobTerminal, "a cancelled job never runs")
	again, err := b.st.CancelJob(ctx, store.Actor{Name: "key:x"}, b.account.ID, j.ID)
	require.Equal(t, apperr.Conflict, apperr.CodeOf(err))
	require.Equal(t, jobstate.Cancelled, again.Status)
	require.Equal(t, []string{"job.created", "job.cancelled"}, actions(t, b, j.ID))

	_, err = b.st.CancelJob(ctx, store.Actor{Name: "key:x"}, uuid.New(), j.ID)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err), "another account's job is not found")
}

func TestCancelRunningJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	j := b.claimedJob(t, "w")
	requested, err := b.st.CancelRequested(ctx, j.ID)
	require.NoError(t, err)
	require.False(t, requested)

	c, err := b.st.CancelJob(ctx, store.Actor{Name: "key:x"}, b.account.ID, j.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.Running, c.Status, "the worker ends a running job")
	requested, err = b.st.CancelRequested(ctx, j.ID)
	require.NoError(t, err)
	require.True(t, requested)

	ok, err := b.st.FinishJob(ctx, j.ID, 1, "w", jobstate.Outcome{Status: jobstate.Cancelled, ErrorCode: "cancelled"})
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, []string{"job.created", "job.started", "job.cancel_requested", "job.cancelled"}, actions(t, b, j.ID))
}

func TestIdempotencyKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	actor := store.Actor{Name: "key:x"}
	hash := []byte("request-1")

	_, found, err := b.st.IdempotentJob(ctx, b.account.ID, "k1", hash)
	require.NoError(t, err)
	require.False(t, found)

	first, replayed, err := b.st.CreateJobIdempotent(ctx, actor, b.request(), "k1", hash)
	require.NoError(t, err)
	require.False(t, replayed)

	again, found, err := b.st.IdempotentJob(ctx, b.account.ID, "k1", hash)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, first.ID, again.ID)
	again, replayed, err = b.st.CreateJobIdempotent(ctx, actor, b.request(), "k1", hash)
	require.NoError(t, err)
	require.True(t, replayed)
	require.Equal(t, first.ID, again.ID)

	_, _, err = b.st.IdempotentJob(ctx, b.account.ID, "k1", []byte("request-2"))
	require.Equal(t, apperr.IdempotencyKeyReused, apperr.CodeOf(err))
	_, _, err = b.st.CreateJobIdempotent(ctx, actor, b.request(), "k1", []byte("request-2"))
	require.Equal(t, apperr.IdempotencyKeyReused, apperr.CodeOf(err))

	// Keys are per account.
	other, err := b.st.CreateAccount(ctx, actor, "other", "free")
	require.NoError(t, err)
	_, found, err = b.st.IdempotentJob(ctx, other.ID, "k1", []byte("request-2"))
	require.NoError(t, err)
	require.False(t, found)

	// After 24 hours the key is forgotten and the next request replaces it.
	_, err = b.st.DB().ExecContext(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '25 hours'`)
	require.NoError(t, err)
	_, found, err = b.st.IdempotentJob(ctx, b.account.ID, "k1", []byte("request-2"))
	require.NoError(t, err)
	require.False(t, found)
	fresh, replayed, err := b.st.CreateJobIdempotent(ctx, actor, b.request(), "k1", []byte("request-2"))
	require.NoError(t, err)
	require.False(t, replayed)
	require.NotEqual(t, first.ID, fresh.ID)

	// A job withdrawn after a failed enqueue frees its key.
	require.NoError(t, b.st.DeleteQueuedJob(ctx, fresh.ID))
	_, found, err = b.st.IdempotentJob(ctx, b.account.ID, "k1", []byte("request-3"))
	require.NoError(t, err)
	require.False(t, found)
}

func TestConcurrentRequestsWithOneKeyMakeOneJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	const n = 8
	ids := make([]uuid.UUID, n)
	replays := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			j, replayed, err := b.st.CreateJobIdempotent(ctx, store.Actor{Name: "key:x"}, b.request(), "same", []byte("h"))
			require.NoError(t, err)
			ids[i], replays[i] = j.ID, replayed
		})
	}
	wg.Wait()
	created := 0
	for i := range n {
		require.Equal(t, ids[0], ids[i])
		if !replays[i] {
			created++
		}
	}
	require.Equal(t, 1, created)
	var count int
	require.NoError(t, b.st.DB().GetContext(ctx, &count, `SELECT count(*) FROM jobs`))
	require.Equal(t, 1, count)
}

func TestDeleteModule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	actor := store.Actor{Name: "key:x"}
	queued, running := b.job(t), b.job(t)
	_, err := b.st.ClaimJob(ctx, running.ID, "w")
	require.NoError(t, err)

	_, err = b.st.DeleteModule(ctx, actor, uuid.New(), b.module.ID)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err), "another account's module is not found")

	failed, err := b.st.DeleteModule(ctx, actor, b.account.ID, b.module.ID)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{queued.ID}, failed)
	got, err := b.st.GetJob(ctx, b.account.ID, queued.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.Failed, got.Status)
	require.Equal(t, "module_deleted", *got.ErrorCode)
	require.Equal(t, []string{"job.created", "job.finished"}, actions(t, b, queued.ID))
	got, err = b.st.GetJob(ctx, b.account.ID, running.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.Running, got.Status, "a running job finishes")

	_, err = b.st.GetModule(ctx, b.account.ID, b.module.ID)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	_, err = b.st.DeleteModule(ctx, actor, b.account.ID, b.module.ID)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	_, err = b.st.CreateJob(ctx, actor, b.request())
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err), "no job for a deleted module")
}

// TestListFiltersUseTheKeysetIndexes checks the plan of every filter
// combination of GET /v1/jobs: index scans in id order (merged, without a
// status filter; no sort, no sequential scan), whatever the table holds.
func TestListFiltersUseTheKeysetIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	for range 3 {
		b.job(t)
	}
	now := time.Now()
	filters := map[string]store.JobFilter{
		"none":                  {},
		"status":                {Status: "queued"},
		"module":                {ModuleID: b.module.ID},
		"status+module":         {Status: "queued", ModuleID: b.module.ID},
		"created_after":         {CreatedAfter: now.Add(-time.Hour)},
		"created_before":        {CreatedBefore: now},
		"status+created":        {Status: "queued", CreatedAfter: now.Add(-time.Hour), CreatedBefore: now},
		"module+status+created": {Status: "queued", ModuleID: b.module.ID, CreatedAfter: now.Add(-time.Hour)},
	}
	for name, f := range filters {
		plan, err := b.st.ExplainListJobs(ctx, b.account.ID, f, 50)
		require.NoError(t, err, name)
		require.Contains(t, plan, "Index", "%s:\n%s", name, plan)
		require.NotContains(t, plan, "Seq Scan", "%s:\n%s", name, plan)
		require.NotRegexp(t, `(?m)^\s*(->\s+)?(Incremental )?Sort\s+\(`, plan, "%s:\n%s", name, plan)
		require.True(t, strings.Contains(plan, "jobs_account_"), "%s:\n%s", name, plan)
		t.Logf("%s:\n%s", name, plan)
	}
}

// TestListWithoutStatusMergesEveryStatus pages through jobs of every
// status, without a status filter and with the module filter: every job
// once, newest first, each page in id order (the query merges the statuses'
// parts of the index).
func TestListWithoutStatusMergesEveryStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	var want []uuid.UUID
	for i := range 12 {
		j := b.job(t)
		want = append(want, j.ID)
		switch i % 4 {
		case 1:
			_, err := b.st.ClaimJob(ctx, j.ID, "w")
			require.NoError(t, err)
		case 2:
			_, err := b.st.ClaimJob(ctx, j.ID, "w")
			require.NoError(t, err)
			ok, err := b.st.FinishJob(ctx, j.ID, 1, "w", jobstate.Outcome{Status: jobstate.Succeeded})
			require.NoError(t, err)
			require.True(t, ok)
		case 3:
			_, err := b.st.CancelJob(ctx, store.Actor{Name: "test"}, b.account.ID, j.ID)
			require.NoError(t, err)
		}
	}
	slices.SortFunc(want, func(a, b uuid.UUID) int { return bytes.Compare(b[:], a[:]) })
	for _, f := range []store.JobFilter{{}, {ModuleID: b.module.ID}} {
		var got []uuid.UUID
		cursor := ""
		for {
			page, err := b.st.ListJobs(ctx, b.account.ID, f, cursor, 5)
			require.NoError(t, err)
			for _, j := range page.Items {
				got = append(got, j.ID)
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		require.Equal(t, want, got, "filter %+v", f)
	}
}
