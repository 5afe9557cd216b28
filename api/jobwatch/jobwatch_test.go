package jobwatch_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/api/jobwatch"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
)

// patience bounds every wait for something that must happen.
const patience = 30 * time.Second

type bundle struct {
	url string
	st  *store.Store
	hub *jobwatch.Hub
	job func() store.Job // a watched job

	account, module uuid.UUID
}

func setup(t *testing.T) bundle {
	t.Helper()
	ctx := context.Background()
	url := testenv.DB(t)
	st := testenv.OpenStore(t, url, 4)
	hub := startHub(t, url)
	a, err := st.CreateAccount(ctx, store.Actor{Name: "t"}, "a", "free")
	require.NoError(t, err)
	m := testenv.Module(t, st, a.ID, "hello", fixtures.Bytes(fixtures.Hello))
	return bundle{url: url, st: st, hub: hub, job: func() store.Job {
		j, err := st.CreateJob(ctx, store.Actor{Name: "t"}, store.Job{
			AccountID: a.ID, ModuleID: m.ID, Queue: "q", Function: "_start",
			TimeoutMS: 1000, MemoryLimitMB: 16, MaxOutputBytes: 100, Watched: true,
		})
		require.NoError(t, err)
		return j
	}, account: a.ID, module: m.ID}
}

func startHub(t *testing.T, url string) *jobwatch.Hub {
	t.Helper()
	hub, err := jobwatch.Start(context.Background(), url, 10*time.Second, zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(func() { _ = hub.Close() })
	return hub
}

func fired(t *testing.T, w *jobwatch.Watch) {
	t.Helper()
	select {
	case <-w.C():
	case <-time.After(patience):
		t.Fatal("the watch did not fire")
	}
}

func finish(t *testing.T, st *store.Store, id uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	_, err := st.ClaimJob(ctx, id, "w")
	require.NoError(t, err)
	ok, err := st.FinishJob(ctx, id, 1, "w", jobstate.Outcome{Status: jobstate.Succeeded})
	require.NoError(t, err)
	require.True(t, ok)
}

func TestTerminalJobFiresItsWatchesOnEveryHub(t *testing.T) {
	t.Parallel()
	b := setup(t)
	other := startHub(t, b.url)
	j, unrelated := b.job(), b.job()
	w1, w2, w3 := b.hub.Watch(j.ID), b.hub.Watch(j.ID), other.Watch(j.ID)
	wu := b.hub.Watch(unrelated.ID)
	defer wu.Stop()
	require.Equal(t, 3, b.hub.Waiting())

	finish(t, b.st, j.ID)
	fired(t, w1)
	fired(t, w2)
	fired(t, w3)
	select {
	case <-wu.C():
		t.Fatal("another job's watch fired")
	default:
	}
	w1.Stop()
	w1.Stop()
	require.Equal(t, 1, b.hub.Waiting(), "fired watches are gone")
}

func TestCancelAndModuleDeletionNotifyToo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	j := b.job()
	w := b.hub.Watch(j.ID)
	_, err := b.st.CancelJob(ctx, store.Actor{Name: "t"}, j.AccountID, j.ID)
	require.NoError(t, err)
	fired(t, w)

	j = b.job()
	w = b.hub.Watch(j.ID)
	_, err = b.st.DeleteModule(ctx, store.Actor{Name: "t"}, j.AccountID, j.ModuleID)
	require.NoError(t, err)
	fired(t, w)
}

func TestReconnectFiresEveryWatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := b.hub.Watch(b.job().ID)
	defer w.Stop()
	// Kill the listener's connection; nothing was notified for the job, but
	// a notification may have been lost while it was down.
	var n int
	require.NoError(t, b.st.DB().GetContext(context.Background(), &n, `
		SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%'`))
	require.Equal(t, 1, n)
	fired(t, w)

	// And notifications flow again after the reconnect.
	j := b.job()
	w = b.hub.Watch(j.ID)
	finish(t, b.st, j.ID)
	fired(t, w)
}

func TestCloseFiresEveryWatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := b.hub.Watch(b.job().ID)
	require.False(t, b.hub.Closed())
	require.NoError(t, b.hub.Close())
	fired(t, w)
	require.True(t, b.hub.Closed())
	fired(t, b.hub.Watch(uuid.New()))
	require.NoError(t, b.hub.Close())
}

// Only watched jobs notify: a job nobody long-polls finishes without a
// NOTIFY (notifying commits cannot share a disk flush), and WatchJob turns
// it on for an unfinished job.
func TestOnlyWatchedJobsNotify(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	unwatched := func() store.Job {
		j, err := b.st.CreateJob(ctx, store.Actor{Name: "t"}, store.Job{AccountID: b.account, ModuleID: b.module,
			Queue: "q", Function: "_start", TimeoutMS: 1000, MemoryLimitMB: 16, MaxOutputBytes: 100})
		require.NoError(t, err)
		require.False(t, j.Watched)
		return j
	}
	quiet, late, watched := unwatched(), unwatched(), b.job()
	wq, wl, ww := b.hub.Watch(quiet.ID), b.hub.Watch(late.ID), b.hub.Watch(watched.ID)
	defer wq.Stop()

	require.NoError(t, b.st.WatchJob(ctx, b.account, late.ID))
	require.NoError(t, b.st.WatchJob(ctx, uuid.New(), late.ID), "another account's job is left alone")
	finish(t, b.st, quiet.ID)
	finish(t, b.st, late.ID)
	finish(t, b.st, watched.ID)
	fired(t, wl)
	fired(t, ww)
	// Notifications arrive in commit order: had the unwatched job notified,
	// its watch would have fired before the others.
	select {
	case <-wq.C():
		t.Fatal("a job nobody watched notified")
	default:
	}
	require.NoError(t, b.st.WatchJob(ctx, b.account, quiet.ID), "a terminal job is left alone")
	j, err := b.st.GetJob(ctx, b.account, quiet.ID)
	require.NoError(t, err)
	require.False(t, j.Watched)
}

// Close ends the hub's goroutines (the notification loop and the pinger).
func TestCloseLeavesNothingRunning(t *testing.T) {
	// Not parallel: it compares the process's goroutines before and after.
	url := testenv.DB(t)
	start := func() {
		hub, err := jobwatch.Start(context.Background(), url, 10*time.Second, zap.NewNop())
		require.NoError(t, err)
		require.NoError(t, hub.Close())
	}
	start() // what the process keeps for good is set up by now
	before := testenv.Goroutines()
	start()
	testenv.NoGoroutinesLeft(t, before)
}
