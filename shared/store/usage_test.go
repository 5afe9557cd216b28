package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// HourlyUsage puts each job in the hour it was created, splits the
// outcomes by error code, has an entry for every hour of the window, and
// counts only the caller's jobs.
func TestHourlyUsage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	other := b.otherAccount(t, "other")
	finish := func(j store.Job, r jobstate.Outcome) {
		t.Helper()
		_, err := b.st.ClaimJob(ctx, j.ID, "w")
		require.NoError(t, err)
		ok, err := b.st.FinishJob(ctx, j.ID, 1, "w", r)
		require.NoError(t, err)
		require.True(t, ok)
	}
	one, three := 1, 3
	finish(b.job(t), jobstate.Outcome{Status: jobstate.Succeeded})
	finish(b.job(t), jobstate.Outcome{Status: jobstate.Failed, ExitCode: &three, ErrorCode: "exit_nonzero"})
	finish(b.job(t), jobstate.Outcome{Status: jobstate.Failed, ExitCode: &one, ErrorCode: "exit_nonzero"})
	finish(b.job(t), jobstate.Outcome{Status: jobstate.TimedOut, ErrorCode: "timeout"})
	b.job(t) // still queued
	old := b.job(t)
	_, err := b.st.DB().Exec(`UPDATE jobs SET created_at = created_at - interval '2 hours' WHERE id = $1`, old.ID)
	require.NoError(t, err)
	ancient := b.job(t)
	_, err = b.st.DB().Exec(`UPDATE jobs SET created_at = created_at - interval '30 hours' WHERE id = $1`, ancient.ID)
	require.NoError(t, err)
	other.job(t)

	hours, err := b.st.HourlyUsage(ctx, b.account.ID, 24)
	require.NoError(t, err)
	require.Len(t, hours, 24)
	for i := 1; i < len(hours); i++ {
		require.Equal(t, time.Hour, hours[i].Hour.Sub(hours[i-1].Hour), "consecutive hours, oldest first")
	}
	now := hours[23]
	require.Equal(t, 5, now.Runs)
	require.Equal(t, 1, now.Succeeded)
	require.Equal(t, map[string]int{"exit_nonzero": 2, "timeout": 1}, now.Failures)
	require.Equal(t, 1, hours[21].Runs, "the job created two hours ago")
	total := 0
	for _, h := range hours {
		total += h.Runs
	}
	require.Equal(t, 6, total, "the job of 30 hours ago and the other account's are not counted")

	hours, err = b.st.HourlyUsage(ctx, b.account.ID, 1)
	require.NoError(t, err)
	require.Len(t, hours, 1)
	require.Equal(t, 5, hours[0].Runs)
}
