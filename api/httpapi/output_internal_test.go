package httpapi

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

func TestOutputWeight(t *testing.T) {
	t.Parallel()
	require.EqualValues(t, 4<<20, outputWeight(1<<20))
	require.EqualValues(t, outputBudget, outputWeight(32<<20), "a read larger than the budget takes all of it")
	require.EqualValues(t, outputBudget, outputWeight(1<<40))
}

// While the budget is taken, a large read waits for it and then answers
// 503; reads never hold more than the budget together.
func TestOutputBudgetBoundsReadsInFlight(t *testing.T) {
	t.Parallel()
	s := &Server{outputs: newOutputBudget(), outputWait: 50 * time.Millisecond}
	ctx := context.Background()
	require.NoError(t, s.outputs.Acquire(ctx, outputBudget))
	// A job whose outputs were not read with it (GetJobView of a large job):
	// loadOutputs must get its budget before it touches the store.
	j := store.Job{Status: store.StatusSucceeded, StdoutBytes: 16 << 20, StderrBytes: 16 << 20}
	_, err := s.loadOutputs(ctx, &j)
	require.Equal(t, apperr.Unavailable, apperr.CodeOf(err))
	s.outputs.Release(outputBudget)

	// Many concurrent holders: the weight in flight never passes the budget.
	var inFlight, peak atomic.Int64
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := outputWeight(16 << 20)
			require.NoError(t, s.outputs.Acquire(ctx, w))
			n := inFlight.Add(w)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(time.Millisecond)
			inFlight.Add(-w)
			s.outputs.Release(w)
		}()
	}
	wg.Wait()
	require.LessOrEqual(t, peak.Load(), int64(outputBudget))
	require.Positive(t, peak.Load())
}
