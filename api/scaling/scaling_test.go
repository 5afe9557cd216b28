package scaling_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/scaling"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

func TestDesiredWorkers(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		work  int64
		slots int
		want  int64
	}{
		{0, 4, 1}, // never below one: the reconciler and webhook retries live in workers
		{1, 4, 1},
		{4, 4, 1},
		{5, 4, 2},
		{2000, 4, 500},
		{7, 0, 7}, // a nonsense slot count counts as one
	} {
		require.Equal(t, c.want, scaling.DesiredWorkers(c.work, c.slots), "%+v", c)
	}
}

func TestComputeListsEveryTierQueue(t *testing.T) {
	t.Parallel()
	f := scaling.Compute(store.ScalingLoad{
		Queues:          map[string]store.QueueLoad{"ns-jobs:free": {Queued: 9, Running: 2}, "ns-jobs:gone": {Queued: 1}},
		Tiers:           []string{"free", "pro", "gold"},
		WebhooksPending: 4, LiveWorkers: 2, MinSlots: 0,
	}, "ns-", 3)
	require.Equal(t, map[string]scaling.QueueFigures{
		"ns-jobs:free": {Queued: 9, Running: 2}, "ns-jobs:pro": {}, "ns-jobs:gold": {},
		"ns-jobs:gone": {Queued: 1}, // a queue with jobs but no tier row still counts
	}, f.ByQueue)
	require.Equal(t, int64(10), f.Queued)
	require.Equal(t, int64(2), f.Running)
	require.Equal(t, scaling.SlotsFromConfig, f.SlotsSource)
	require.Equal(t, int64(4), f.DesiredWorkers)
	require.Equal(t, int64(4), f.WebhookDeliveriesPending)
}
