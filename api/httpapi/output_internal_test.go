package httpapi

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// Answers carrying large outputs share the output budget: once it is taken,
// the next waits for its share and then answers 503; answers with small
// outputs (read with their job) do not need a share.
func TestOutputBudgetBoundsAnswersInFlight(t *testing.T) {
	t.Parallel()
	s := &Server{outputBudget: newOutputBudget(), outputWait: 50 * time.Millisecond}
	ctx := context.Background()
	large := store.Job{Status: jobstate.Succeeded, StdoutBytes: 16 << 20, StderrBytes: 16 << 20}
	var releases []func()
	for range outputBudget / outputCost {
		release, err := s.reserveOutput(ctx, large)
		require.NoError(t, err)
		releases = append(releases, release)
	}
	_, err := s.reserveOutput(ctx, large)
	require.Equal(t, apperr.Unavailable, apperr.CodeOf(err), "the budget is taken")

	small := store.Job{Status: jobstate.Succeeded, Stdout: []byte("hi"), StdoutBytes: 2}
	release, err := s.reserveOutput(ctx, small)
	require.NoError(t, err, "small outputs need no share")
	release()

	releases[0]()
	release, err = s.reserveOutput(ctx, large)
	require.NoError(t, err, "a share given back is taken again")
	release()
}
