package doorbell_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/worker/doorbell"
)

const patience = 30 * time.Second

// runner records the jobs it is given and holds each until released (or its
// context ends).
type runner struct {
	started chan uuid.UUID
	ended   chan error
	release chan struct{}
}

func newRunner() *runner {
	return &runner{started: make(chan uuid.UUID, 16), ended: make(chan error, 16), release: make(chan struct{})}
}

func (r *runner) Run(ctx context.Context, id uuid.UUID) error {
	r.started <- id
	select {
	case <-r.release:
		r.ended <- nil
	case <-ctx.Done():
		r.ended <- ctx.Err()
	}
	return nil
}

type bundle struct {
	rdb   redis.UniversalClient
	queue string
	run   *runner
	bell  *doorbell.Doorbell
}

func setup(t *testing.T, slots int) bundle {
	t.Helper()
	return setupWith(t, func(c *doorbell.Config) { c.Slots = slots })
}

// setupWith starts a doorbell of one slot on its own queue, with what adjust
// changes in its configuration.
func setupWith(t *testing.T, adjust func(*doorbell.Config)) bundle {
	t.Helper()
	opt, err := redis.ParseURL(testenv.RedisURL())
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	queue := testenv.Namespace(t) + "jobs"
	r := newRunner()
	cfg := doorbell.Config{Redis: rdb, Queue: queue, Slots: 1, Runner: r, Log: zap.NewNop(), Block: time.Second}
	adjust(&cfg)
	bell := doorbell.Start(cfg)
	t.Cleanup(func() {
		bell.Shutdown(0)
		_ = rdb.Del(context.Background(), tasks.DoorbellKey(queue)).Err()
		_ = rdb.Close()
	})
	return bundle{rdb: rdb, queue: queue, run: r, bell: bell}
}

func (b bundle) ring(t *testing.T, id uuid.UUID, at time.Time) {
	t.Helper()
	require.NoError(t, b.rdb.LPush(context.Background(), tasks.DoorbellKey(b.queue), tasks.DoorbellEntry(id, at)).Err())
}

func started(t *testing.T, r *runner) uuid.UUID {
	t.Helper()
	select {
	case id := <-r.started:
		return id
	case <-time.After(patience):
		t.Fatal("no job was started")
		return uuid.Nil
	}
}

func TestRungJobsRun(t *testing.T) {
	t.Parallel()
	b := setup(t, 2)
	ids := []uuid.UUID{uuid.New(), uuid.New()}
	for _, id := range ids {
		b.ring(t, id, time.Now())
	}
	got := []uuid.UUID{started(t, b.run), started(t, b.run)}
	require.ElementsMatch(t, ids, got)
	close(b.run.release)
}

func TestStaleAndMalformedEntriesAreDropped(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	ctx := context.Background()
	key := tasks.DoorbellKey(b.queue)
	require.NoError(t, b.rdb.LPush(ctx, key, "not an entry").Err())
	b.ring(t, uuid.New(), time.Now().Add(-time.Minute))
	fresh := uuid.New()
	b.ring(t, fresh, time.Now())
	require.Equal(t, fresh, started(t, b.run), "only the fresh entry runs")
	close(b.run.release)
}

func TestABusyWorkerLeavesTheDoorbell(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	ctx := context.Background()
	// asynq runs a job in the only slot.
	inside, leave := make(chan struct{}), make(chan struct{})
	h := b.bell.Track(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		close(inside)
		<-leave
		return nil
	}))
	done := make(chan error, 1)
	go func() { done <- h.ProcessTask(ctx, asynq.NewTask(tasks.TypeRunJob, nil)) }()
	<-inside

	id := uuid.New()
	b.ring(t, id, time.Now())
	time.Sleep(500 * time.Millisecond) // ample time for a pop, were one to happen
	n, err := b.rdb.LLen(ctx, tasks.DoorbellKey(b.queue)).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "the entry is left for a worker with a free slot")

	close(leave)
	require.NoError(t, <-done)
	b.ring(t, id, time.Now()) // the first entry may have gone stale meanwhile
	require.Equal(t, id, started(t, b.run))

	// Now the doorbell holds the slot: asynq's delivery waits for it, and
	// gives up when its context ends.
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	require.Error(t, h.ProcessTask(tctx, asynq.NewTask(tasks.TypeRunJob, nil)))
	close(b.run.release)
}

func TestCancelReachesADoorbellRun(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	id := uuid.New()
	b.ring(t, id, time.Now())
	require.Equal(t, id, started(t, b.run))
	// Publish until the run sees it (the subscription may still be starting).
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				_ = b.rdb.Publish(context.Background(), tasks.CancelChannel(b.queue), id.String()).Err()
			}
		}
	}()
	select {
	case err := <-b.run.ended:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(patience):
		t.Fatal("the run was not cancelled")
	}
}

func TestShutdownInterruptsRunsAfterTheGrace(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	b.ring(t, uuid.New(), time.Now())
	started(t, b.run)
	b.bell.Shutdown(50 * time.Millisecond)
	require.ErrorIs(t, <-b.run.ended, context.Canceled, "the run is handed back")
}

// A delivery that finds every slot busy for SlotWait is handed back with
// ErrNoSlot (not a failure) before asynq's deadline can fail it.
func TestDeliveryWithoutASlotIsHandedBack(t *testing.T) {
	t.Parallel()
	b := setupWith(t, func(c *doorbell.Config) { c.SlotWait = 50 * time.Millisecond })
	r := b.run
	b.ring(t, uuid.New(), time.Now())
	started(t, r)

	ran := false
	h := b.bell.Track(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { ran = true; return nil }))
	err := h.ProcessTask(context.Background(), asynq.NewTask(tasks.TypeRunJob, nil))
	require.ErrorIs(t, err, doorbell.ErrNoSlot)
	require.False(t, ran)

	close(r.release)
	require.NoError(t, <-r.ended)
	// Once the doorbell run lets go of the slot, deliveries run.
	require.Eventually(t, func() bool {
		return h.ProcessTask(context.Background(), asynq.NewTask(tasks.TypeRunJob, nil)) == nil
	}, patience, 10*time.Millisecond)
	require.True(t, ran)
}

// A slot that one of asynq's runs frees is kept for asynq's next delivery
// for the handoff, so that under load asynq, not the doorbell, runs the
// jobs (a doorbell run costs a second delivery of the job's task); once the
// handoff lapses, the doorbell takes the slot.
func TestAFreedSlotIsHandedToAsynqFirst(t *testing.T) {
	t.Parallel()
	const handoff = 2 * time.Second // far longer than any pause between the two deliveries below
	b := setupWith(t, func(c *doorbell.Config) {
		c.Handoff, c.MaxAge = handoff, time.Minute // the entry must outlive the handoff
	})
	r := b.run
	ctx := context.Background()
	var runs int
	h := b.bell.Track(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { runs++; return nil }))

	require.NoError(t, h.ProcessTask(ctx, asynq.NewTask(tasks.TypeRunJob, nil)))
	freed := time.Now()
	id := uuid.New()
	b.ring(t, id, time.Now())
	// asynq's next delivery gets the slot at once, handoff or not.
	require.NoError(t, h.ProcessTask(ctx, asynq.NewTask(tasks.TypeRunJob, nil)))
	require.Equal(t, 2, runs)
	// The doorbell waits out the handoff the second run left, then runs its job.
	require.Equal(t, id, started(t, r))
	require.GreaterOrEqual(t, time.Since(freed), handoff, "the doorbell took a slot kept for asynq")
	close(r.release)
}

// cancellingRunner is a Canceller: it records the IDs it is asked to cancel.
type cancellingRunner struct {
	*runner
	cancelled chan uuid.UUID
}

func (r cancellingRunner) Cancel(id uuid.UUID) { r.cancelled <- id }

// With a Canceller runner, the cancel channel goes to the runner (which
// knows the job each run claimed, whatever delivery started it), not to the
// doorbell run that was handed that ID.
func TestCancelGoesToACancellerRunner(t *testing.T) {
	t.Parallel()
	cr := cancellingRunner{runner: newRunner(), cancelled: make(chan uuid.UUID, 64)}
	b := setupWith(t, func(c *doorbell.Config) { c.Runner = cr })
	b.run = cr.runner
	id := uuid.New()
	b.ring(t, id, time.Now())
	require.Equal(t, id, started(t, b.run))
	other := uuid.New()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				_ = b.rdb.Publish(context.Background(), tasks.CancelChannel(b.queue), other.String()).Err()
			}
		}
	}()
	select {
	case got := <-cr.cancelled:
		require.Equal(t, other, got)
	case <-time.After(patience):
		t.Fatal("the runner was not asked to cancel")
	}
	_ = b.rdb.Publish(context.Background(), tasks.CancelChannel(b.queue), id.String()).Err()
	require.Eventually(t, func() bool {
		for {
			select {
			case got := <-cr.cancelled:
				if got == id {
					return true
				}
			default:
				return false
			}
		}
	}, patience, 10*time.Millisecond)
	select {
	case err := <-b.run.ended:
		t.Fatalf("the doorbell run was interrupted by the doorbell itself: %v", err)
	default:
	}
	close(cr.release)
	require.NoError(t, <-b.run.ended)
}
