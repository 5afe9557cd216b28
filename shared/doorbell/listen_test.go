package doorbell_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/doorbell"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
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

// slots is the worker's slot accounting reduced to a count of free slots
// (worker/slots adds asynq's deliveries and handoffs to it).
type slots struct {
	mu    sync.Mutex
	free  int
	freed chan struct{} // closed (and replaced) whenever a slot frees
	waits chan struct{} // receives when the listener waits for a slot
}

func newSlots(n int) *slots {
	return &slots{free: n, freed: make(chan struct{}), waits: make(chan struct{}, 1)}
}

func (s *slots) TakeForBell() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.free == 0 {
		return false
	}
	s.free--
	return true
}

func (s *slots) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.free++
	close(s.freed)
	s.freed = make(chan struct{})
}

func (s *slots) WaitForBell(stop <-chan struct{}) bool {
	for {
		s.mu.Lock()
		free, ch := s.free > 0, s.freed
		s.mu.Unlock()
		if free {
			return true
		}
		select {
		case s.waits <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-stop:
			return false
		}
	}
}

type bundle struct {
	rdb   redis.UniversalClient
	queue string
	run   *runner
	slots *slots
	bell  *doorbell.Listener
}

func setup(t *testing.T, n int) bundle {
	t.Helper()
	return setupWith(t, n, func(*doorbell.Config) {})
}

// setupWith starts a listener with n slots on its own queue, with what
// adjust changes in its configuration.
func setupWith(t *testing.T, n int, adjust func(*doorbell.Config)) bundle {
	t.Helper()
	opt, err := redis.ParseURL(testenv.RedisURL())
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	queue := testenv.Namespace(t) + "jobs"
	r := newRunner()
	s := newSlots(n)
	cfg := doorbell.Config{Redis: rdb, Queue: queue, Slots: s, Runner: r, Log: zap.NewNop(), Block: time.Second}
	adjust(&cfg)
	bell := doorbell.Listen(cfg)
	t.Cleanup(func() {
		bell.Shutdown(0)
		_ = rdb.Del(context.Background(), doorbell.Key(queue)).Err()
		_ = rdb.Close()
	})
	return bundle{rdb: rdb, queue: queue, run: r, slots: s, bell: bell}
}

func (b bundle) ring(t *testing.T, id uuid.UUID, at time.Time) {
	t.Helper()
	require.NoError(t, b.rdb.LPush(context.Background(), doorbell.Key(b.queue), doorbell.Entry(id, at)).Err())
}

// cancel names job id on the cancel channel, once the listener is
// subscribed to it.
func (b bundle) cancel(t *testing.T, id uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	ch := doorbell.CancelChannel(b.queue)
	require.Eventually(t, func() bool {
		n, err := b.rdb.PubSubNumSub(ctx, ch).Result()
		return err == nil && n[ch] > 0
	}, patience, 10*time.Millisecond, "the listener never subscribed to its cancel channel")
	require.NoError(t, b.rdb.Publish(ctx, ch, id.String()).Err())
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
	key := doorbell.Key(b.queue)
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
	// Another run (one of asynq's) holds the only slot: once its read under
	// way ends, the listener waits for a slot instead of reading.
	require.True(t, b.slots.TakeForBell())
	select {
	case <-b.slots.waits:
	case <-time.After(patience):
		t.Fatal("the listener did not wait for a slot")
	}

	id := uuid.New()
	b.ring(t, id, time.Now())
	n, err := b.rdb.LLen(ctx, doorbell.Key(b.queue)).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "the entry is left for a worker with a free slot")

	b.slots.Release()
	require.Equal(t, id, started(t, b.run))
	close(b.run.release)
}

func TestCancelReachesADoorbellRun(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	id := uuid.New()
	b.ring(t, id, time.Now())
	require.Equal(t, id, started(t, b.run))
	b.cancel(t, id)
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
	b := setupWith(t, 1, func(c *doorbell.Config) { c.Runner = cr })
	b.run = cr.runner
	id := uuid.New()
	b.ring(t, id, time.Now())
	require.Equal(t, id, started(t, b.run))
	for _, want := range []uuid.UUID{uuid.New(), id} { // another job's run, then this one's
		b.cancel(t, want)
		select {
		case got := <-cr.cancelled:
			require.Equal(t, want, got)
		case <-time.After(patience):
			t.Fatal("the runner was not asked to cancel")
		}
	}
	select {
	case err := <-b.run.ended:
		t.Fatalf("the doorbell run was interrupted by the doorbell itself: %v", err)
	default:
	}
	close(cr.release)
	require.NoError(t, <-b.run.ended)
}
