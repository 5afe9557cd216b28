package doorbell_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/doorbell"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
)

func TestEntries(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	at := time.UnixMilli(1_800_000_000_123)
	gotID, gotAt, err := doorbell.ParseEntry(doorbell.Entry(id, at))
	require.NoError(t, err)
	require.Equal(t, id, gotID)
	require.True(t, at.Equal(gotAt))
	for _, bad := range []string{"", "x", id.String(), id.String() + " soon", "nope 123"} {
		_, _, err := doorbell.ParseEntry(bad)
		require.Error(t, err, bad)
	}
	require.NotEqual(t, doorbell.Key("a"), doorbell.Key("b"))
	require.NotEqual(t, doorbell.Key("a"), doorbell.CancelChannel("a"))
}

// A job of a heavier tier rings at the end workers pop first; a
// cancellation is published on the queue's cancel channel.
func TestBellRingsAndCancels(t *testing.T) {
	t.Parallel()
	opt, err := redis.ParseURL(testenv.RedisURL())
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	queue := testenv.Namespace(t) + "jobs"
	ctx := context.Background()
	t.Cleanup(func() {
		_ = rdb.Del(context.Background(), doorbell.Key(queue)).Err()
		_ = rdb.Close()
	})
	bell := doorbell.NewBell(rdb, queue, time.Second)

	light, heavy := uuid.New(), uuid.New()
	require.NoError(t, bell.Ring(ctx, light, 1))
	require.NoError(t, bell.Ring(ctx, heavy, 6))
	ttl, err := rdb.PTTL(ctx, doorbell.Key(queue)).Result()
	require.NoError(t, err)
	require.Positive(t, ttl, "the list expires")
	require.LessOrEqual(t, ttl, doorbell.Expiry)
	for _, want := range []uuid.UUID{heavy, light} {
		res, err := rdb.BRPop(ctx, time.Second, doorbell.Key(queue)).Result()
		require.NoError(t, err)
		id, rung, err := doorbell.ParseEntry(res[1])
		require.NoError(t, err)
		require.Equal(t, want, id)
		require.WithinDuration(t, time.Now(), rung, time.Minute)
	}

	sub := rdb.Subscribe(ctx, doorbell.CancelChannel(queue))
	t.Cleanup(func() { _ = sub.Close() })
	_, err = sub.Receive(ctx) // the subscription is in place
	require.NoError(t, err)
	require.NoError(t, bell.Cancel(ctx, light))
	msg, err := sub.ReceiveMessage(ctx)
	require.NoError(t, err)
	require.Equal(t, light.String(), msg.Payload)
}
