package reconciler_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/deliveryqueue"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/worker/reconciler"
)

// TestSweepNeverDuplicatesAWaitingDelivery: three overdue pending deliveries,
// one whose task waits (put back because its account was at its limit), one
// whose task asynq archived, one whose task was lost. The sweep leaves the
// first alone and queues exactly one task for each of the others.
func TestSweepNeverDuplicatesAWaitingDelivery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var b bundle
	webhooks := ""
	b = setup(t, reconciler.Config{DeliveryLate: time.Second, EnqueueDelivery: func(ctx context.Context, d store.Delivery) (bool, error) {
		return deliveryqueue.Queue{Client: b.client, Inspector: b.inspector, Name: webhooks}.Ensure(ctx, d, time.Time{}, false)
	}})
	webhooks = b.queue + "-webhooks"
	url := "https://hooks.example/x"
	var ds []store.Delivery
	for range 3 {
		j := testenv.FinishedJob(t, b.st, store.Job{AccountID: b.account.ID, ModuleID: b.module.ID,
			ModuleSHA256: b.module.SHA256, Queue: b.queue, Function: "_start", TimeoutMS: 1000, MemoryLimitMB: 16,
			MaxOutputBytes: 100, WebhookURL: &url}, jobstate.Outcome{Status: jobstate.Failed, ErrorCode: "trap"})
		d, err := b.st.DeliveryForJob(ctx, b.account.ID, j.ID)
		require.NoError(t, err)
		ds = append(ds, d)
	}
	waiting, archived, lost := ds[0], ds[1], ds[2]
	for _, d := range []store.Delivery{waiting, archived} {
		task, err := tasks.NewDeliverWebhook(d.ID, d.AccountID, 0, "", webhooks, asynq.ProcessIn(time.Hour))
		require.NoError(t, err)
		_, err = b.client.EnqueueContext(ctx, task)
		require.NoError(t, err)
	}
	require.NoError(t, b.inspector.ArchiveTask(webhooks, tasks.DeliverWebhookID(archived.ID, 0)))
	_, err := b.st.DB().ExecContext(ctx, `UPDATE webhook_deliveries SET next_attempt_at = now() - interval '10 minutes'`)
	require.NoError(t, err)

	for pass := range 3 {
		st, err := b.rec.Pass(ctx)
		require.NoError(t, err)
		if pass == 0 {
			require.Equal(t, 2, st.Deliveries, "the archived and the lost delivery are queued again")
		} else {
			require.Zero(t, st.Deliveries, "nothing is queued twice")
		}
		_, err = b.st.DB().ExecContext(ctx, `UPDATE webhook_deliveries SET next_attempt_at = now() - interval '10 minutes'`)
		require.NoError(t, err)
	}
	count := func(state func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error)) int {
		l, err := state(webhooks)
		require.NoError(t, err)
		return len(l)
	}
	require.Equal(t, 1, count(b.inspector.ListScheduledTasks), "the waiting delivery keeps its one task")
	require.Equal(t, 2, count(b.inspector.ListPendingTasks), "one task each for the archived and the lost delivery")
	require.Zero(t, count(b.inspector.ListArchivedTasks))
	for _, d := range []store.Delivery{archived, lost} {
		info, err := b.inspector.GetTaskInfo(webhooks, tasks.DeliverWebhookID(d.ID, 0))
		require.NoError(t, err)
		require.Equal(t, asynq.TaskStatePending, info.State)
	}
}
