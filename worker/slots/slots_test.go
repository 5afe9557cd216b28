package slots_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/doorbell"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/worker/slots"
)

const patience = 30 * time.Second

var _ doorbell.Slots = (*slots.Slots)(nil)

func task() *asynq.Task { return asynq.NewTask(tasks.TypeRunJob, nil) }

// A delivery that finds every slot busy for SlotWait is handed back with
// ErrNoSlot (not a failure) before asynq's deadline can fail it.
func TestDeliveryWithoutASlotIsHandedBack(t *testing.T) {
	t.Parallel()
	s := slots.New(slots.Config{Slots: 1, SlotWait: 50 * time.Millisecond})
	require.True(t, s.TakeForBell(), "a doorbell run holds the only slot")

	ran := false
	h := s.Track(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { ran = true; return nil }))
	err := h.ProcessTask(context.Background(), task())
	require.ErrorIs(t, err, slots.ErrNoSlot)
	require.False(t, ran)

	// Once the doorbell run lets go of the slot, deliveries run.
	s.Release()
	require.NoError(t, h.ProcessTask(context.Background(), task()))
	require.True(t, ran)
}

// A delivery whose context ends while it waits for a slot fails with its
// context's error: that is asynq's deadline, not a hand-back.
func TestDeliveryWaitingPastItsDeadlineFails(t *testing.T) {
	t.Parallel()
	s := slots.New(slots.Config{Slots: 1})
	require.True(t, s.TakeForBell())
	h := s.Track(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := h.ProcessTask(ctx, task())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, slots.ErrNoSlot)
}

// A slot that one of asynq's runs frees is kept for asynq's next delivery
// for the handoff, so that under load asynq, not the doorbell, runs the
// jobs; once the handoff lapses, the doorbell may take the slot.
func TestAFreedSlotIsHandedToAsynqFirst(t *testing.T) {
	t.Parallel()
	const handoff = 2 * time.Second // far longer than any pause between the two deliveries below
	s := slots.New(slots.Config{Slots: 1, Handoff: handoff})
	runs := 0
	h := s.Track(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { runs++; return nil }))

	require.NoError(t, h.ProcessTask(context.Background(), task()))
	freed := time.Now()
	require.False(t, s.TakeForBell(), "the freed slot is kept for asynq")
	// asynq's next delivery gets the slot at once, handoff or not.
	require.NoError(t, h.ProcessTask(context.Background(), task()))
	require.Equal(t, 2, runs)

	// The doorbell waits out the handoff the second run left.
	require.True(t, s.WaitForBell(nil))
	require.GreaterOrEqual(t, time.Since(freed), handoff, "the doorbell was offered a slot kept for asynq")
	require.True(t, s.TakeForBell())
	s.Release()
}

// The doorbell waits while asynq's runs hold every slot, and is woken when
// one ends and its handoff lapses.
func TestTheDoorbellWaitsForABusySlot(t *testing.T) {
	t.Parallel()
	s := slots.New(slots.Config{Slots: 1, Handoff: time.Millisecond})
	inside, leave := make(chan struct{}), make(chan struct{})
	h := s.Track(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		close(inside)
		<-leave
		return nil
	}))
	done := make(chan error, 1)
	go func() { done <- h.ProcessTask(context.Background(), task()) }()
	<-inside
	require.False(t, s.TakeForBell())

	woken := make(chan bool, 1)
	go func() { woken <- s.WaitForBell(nil) }()
	close(leave)
	require.NoError(t, <-done)
	select {
	case ok := <-woken:
		require.True(t, ok)
	case <-time.After(patience):
		t.Fatal("the doorbell was not woken")
	}
}

// Close hands back the deliveries waiting for a slot and ends the
// doorbell's waits; a wait also ends with its stop channel.
func TestCloseEndsTheWaits(t *testing.T) {
	t.Parallel()
	s := slots.New(slots.Config{Slots: 1, SlotWait: time.Hour})
	require.True(t, s.TakeForBell())

	stop := make(chan struct{})
	close(stop)
	require.False(t, s.WaitForBell(stop))

	h := s.Track(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
	delivered := make(chan error, 1)
	go func() { delivered <- h.ProcessTask(context.Background(), task()) }()
	waited := make(chan bool, 1)
	go func() { waited <- s.WaitForBell(nil) }()
	s.Close()
	for range 2 {
		select {
		case err := <-delivered:
			require.ErrorIs(t, err, slots.ErrNoSlot)
		case ok := <-waited:
			require.False(t, ok)
		case <-time.After(patience):
			t.Fatal("a wait outlived Close")
		}
	}
}
