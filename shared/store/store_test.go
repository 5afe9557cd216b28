package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

type bundle struct {
	st      *store.Store
	account store.Account
	module  store.Module
}

func setup(t *testing.T) bundle { return setupB(t) }

func setupB(t testing.TB) bundle {
	t.Helper()
	return bundle{st: testenv.Store(t)}.otherAccount(t, "acct")
}

// otherAccount adds an account with a module to b's database.
func (b bundle) otherAccount(t testing.TB, name string) bundle {
	t.Helper()
	ctx := context.Background()
	a, err := b.st.CreateAccount(ctx, store.Actor{Name: "test"}, name, "free")
	require.NoError(t, err)
	m, created, err := b.st.CreateModule(ctx, store.Actor{Name: "test"}, a.ID, "hello", fixtures.Bytes(fixtures.Hello),
		wasmmeta.Meta{Imports: []wasmmeta.Import{}, Exports: []wasmmeta.Export{{Name: "_start", Kind: "function"}}, WASI: true})
	require.NoError(t, err)
	require.True(t, created)
	return bundle{st: b.st, account: a, module: m}
}

func (b bundle) job(t testing.TB) store.Job {
	t.Helper()
	j, err := b.st.CreateJob(context.Background(), store.Actor{Name: "test"}, store.Job{
		AccountID: b.account.ID, ModuleID: b.module.ID, ModuleSHA256: b.module.SHA256, Queue: "q",
		Function: "_start", TimeoutMS: 1000, MemoryLimitMB: 16, MaxOutputBytes: 100,
		Args: store.JSON[[]string]{V: []string{}}, Env: store.JSON[map[string]string]{V: map[string]string{}},
		Metadata: store.JSON[map[string]string]{V: map[string]string{}},
	})
	require.NoError(t, err)
	require.Equal(t, jobstate.Queued, j.Status)
	return j
}

// claimedJob is a new job of b.job, claimed by worker.
func (b bundle) claimedJob(t testing.TB, worker string) store.Job {
	t.Helper()
	j := b.job(t)
	_, err := b.st.ClaimJob(context.Background(), j.ID, worker)
	require.NoError(t, err)
	return j
}

func TestStatusOnlyMovesForward(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	j := b.job(t)

	claimed, err := b.st.ClaimJob(ctx, j.ID, "w1")
	require.NoError(t, err)
	require.Equal(t, jobstate.Running, claimed.Status)
	require.Equal(t, 1, claimed.Attempts)

	_, err = b.st.ClaimJob(ctx, j.ID, "w2")
	require.ErrorIs(t, err, store.ErrJobBusy, "a live claim is not taken over")

	zero := 0
	ok, err := b.st.FinishJob(ctx, j.ID, 1, "w1", jobstate.Outcome{Status: jobstate.Succeeded, ExitCode: &zero, Stdout: []byte("first")})
	require.NoError(t, err)
	require.True(t, ok)

	ok, err = b.st.FinishJob(ctx, j.ID, 1, "w1", jobstate.Outcome{Status: jobstate.Failed, Stdout: []byte("second")})
	require.NoError(t, err)
	require.False(t, ok, "a terminal job is never overwritten")
	_, err = b.st.ClaimJob(ctx, j.ID, "w2")
	require.ErrorIs(t, err, store.ErrJobTerminal)
	ok, err = b.st.ReleaseJob(ctx, j.ID, 1, "w1")
	require.NoError(t, err)
	require.False(t, ok)

	got, err := b.st.GetJob(ctx, b.account.ID, j.ID)
	require.NoError(t, err)
	require.Equal(t, jobstate.Succeeded, got.Status)
	require.Equal(t, "first", string(got.Stdout))
	require.Equal(t, 1, got.Attempts)

	events, err := b.st.JobEvents(ctx, b.account.ID, j.ID)
	require.NoError(t, err)
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action)
	}
	require.Equal(t, []string{"job.created", "job.started", "job.finished"}, actions)
}

func TestAbandonedAttemptIsTakenOver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	j := b.claimedJob(t, "dead")
	// The first worker died long ago.
	_, err := b.st.DB().ExecContext(ctx, `UPDATE jobs SET started_at = now() - interval '1 hour' WHERE id = $1`, j.ID)
	require.NoError(t, err)

	again, err := b.st.ClaimJob(ctx, j.ID, "alive")
	require.NoError(t, err)
	require.Equal(t, 2, again.Attempts)
	ok, err := b.st.FinishJob(ctx, j.ID, 1, "dead", jobstate.Outcome{Status: jobstate.Succeeded})
	require.NoError(t, err)
	require.False(t, ok, "the stale attempt cannot write")
	ok, err = b.st.FinishJob(ctx, j.ID, 2, "alive", jobstate.Outcome{Status: jobstate.Succeeded})
	require.NoError(t, err)
	require.True(t, ok)
}

func TestReleasedJobIsClaimedAgainAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	j := b.claimedJob(t, "w1")
	ok, err := b.st.ReleaseJob(ctx, j.ID, 1, "w1")
	require.NoError(t, err)
	require.True(t, ok)
	again, err := b.st.ClaimJob(ctx, j.ID, "w2")
	require.NoError(t, err)
	require.Equal(t, 2, again.Attempts)
}

func TestOnlyAnUnstartedJobIsWithdrawn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	queued, started := b.job(t), b.job(t)
	_, err := b.st.ClaimJob(ctx, started.ID, "w")
	require.NoError(t, err)
	require.NoError(t, b.st.DeleteQueuedJob(ctx, queued.ID))
	require.NoError(t, b.st.DeleteQueuedJob(ctx, started.ID))
	_, err = b.st.GetJob(ctx, b.account.ID, queued.ID)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	_, err = b.st.GetJob(ctx, b.account.ID, started.ID)
	require.NoError(t, err)
	_, err = b.st.ClaimJob(ctx, queued.ID, "w")
	require.ErrorIs(t, err, store.ErrJobGone)
}

func TestKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	k, plain, err := b.st.CreateKey(ctx, store.Actor{Name: "test"}, b.account.ID, "ci")
	require.NoError(t, err)
	require.Equal(t, plain[3:11], k.Prefix)

	p, err := b.st.LookupKey(ctx, plain)
	require.NoError(t, err)
	require.Equal(t, b.account.ID, p.AccountID)
	require.Equal(t, "free", p.Tier.Name)
	require.Equal(t, 5000, p.Tier.MaxTimeoutMS)

	last := "x"
	if plain[len(plain)-1] == 'x' {
		last = "y"
	}
	_, err = b.st.LookupKey(ctx, plain[:len(plain)-1]+last)
	require.Equal(t, apperr.Unauthorized, apperr.CodeOf(err))

	_, err = b.st.DB().ExecContext(ctx, `UPDATE api_keys SET revoked_at = now() WHERE id = $1`, k.ID)
	require.NoError(t, err)
	_, err = b.st.LookupKey(ctx, plain)
	require.Equal(t, apperr.Unauthorized, apperr.CodeOf(err), "a revoked key is refused")

	_, _, err = b.st.CreateKey(ctx, store.Actor{Name: "test"}, uuid.New(), "")
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
}

func TestTiersAreSeeded(t *testing.T) {
	t.Parallel()
	st := testenv.Store(t)
	tiers, err := st.ListTiers(context.Background())
	require.NoError(t, err)
	byName := map[string]store.Tier{}
	for _, tr := range tiers {
		byName[tr.Name] = tr
	}
	require.Len(t, byName, 3)
	require.Equal(t, 10, byName["free"].RunsPerMinute)
	require.Equal(t, 10000, byName["basic"].RunsPerDay)
	require.Equal(t, 100, byName["pro"].MaxConcurrentRuns)
	require.Equal(t, 30000, byName["pro"].MaxTimeoutMS)
	require.Equal(t, 256, byName["basic"].MaxMemoryMB)
	require.EqualValues(t, 50<<20, byName["pro"].MaxModuleBytes)
	require.Equal(t, 6, byName["pro"].QueueWeight)

	_, err = st.CreateAccount(context.Background(), store.Actor{Name: "t"}, "x", "gold")
	require.Equal(t, apperr.Invalid, apperr.CodeOf(err))
}

func TestConcurrentUploadsOfOneModule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	content := fixtures.Bytes(fixtures.Echo)
	ids := make([]uuid.UUID, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, _, err := b.st.CreateModule(ctx, store.Actor{Name: "t"}, b.account.ID, "echo", content, wasmmeta.Meta{})
			require.NoError(t, err)
			ids[i] = m.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		require.Equal(t, ids[0], id)
	}
	var blobs int
	require.NoError(t, b.st.DB().GetContext(ctx, &blobs, `SELECT count(*) FROM module_blobs`))
	require.Equal(t, 2, blobs, "hello and echo, each stored once")
}

// A key's use is recorded at most once per KeyUseResolution.
func TestKeyUseIsRecordedOncePerMinute(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	k, plain, err := b.st.CreateKey(ctx, store.Actor{Name: "t"}, b.account.ID, "")
	require.NoError(t, err)
	p, err := b.st.LookupKey(ctx, plain)
	require.NoError(t, err)
	require.Nil(t, p.LastUsedAt, "never used")
	require.NoError(t, b.st.TouchKey(ctx, k.ID))
	p, err = b.st.LookupKey(ctx, plain)
	require.NoError(t, err)
	require.NotNil(t, p.LastUsedAt)
	first := *p.LastUsedAt
	require.NoError(t, b.st.TouchKey(ctx, k.ID))
	p, err = b.st.LookupKey(ctx, plain)
	require.NoError(t, err)
	require.Equal(t, first, *p.LastUsedAt, "not written again within the minute")
}
