package tasks_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
)

func TestDuplicateEnqueueIsRefused(t *testing.T) {
	t.Parallel()
	opt, err := asynq.ParseRedisURI(testenv.RedisURL())
	require.NoError(t, err)
	client := asynq.NewClient(opt)
	t.Cleanup(func() { _ = client.Close() })
	queue := tasks.Queue(testenv.Namespace(t))

	id := uuid.New()
	task, err := tasks.NewRunJob(id, queue, time.Second, "")
	require.NoError(t, err)
	info, err := client.EnqueueContext(context.Background(), task)
	require.NoError(t, err)
	require.Equal(t, id.String(), info.ID, "the task ID is the job ID")
	require.Equal(t, queue, info.Queue)

	_, err = client.EnqueueContext(context.Background(), task)
	require.ErrorIs(t, err, asynq.ErrTaskIDConflict)

	p, err := tasks.ParseRunJob(task.Payload())
	require.NoError(t, err)
	require.Equal(t, id, p.JobID)
}

func TestParseRunJobRefusesGarbage(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "{}", `{"job_id":"x"}`, `[]`, `{"job_id":"00000000-0000-0000-0000-000000000000"}`} {
		_, err := tasks.ParseRunJob([]byte(in))
		require.Error(t, err, in)
	}
}

func FuzzParseRunJob(f *testing.F) {
	f.Add([]byte(`{"job_id":"0190b0a0-0000-7000-8000-000000000000"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := tasks.ParseRunJob(b)
		if err == nil && p.JobID == uuid.Nil {
			t.Fatal("accepted a payload without a job ID")
		}
	})
}

// BenchmarkRunPayload: the task payload's encode and decode, once per job.
func BenchmarkRunPayload(b *testing.B) {
	id := uuid.New()
	for b.Loop() {
		task, err := tasks.NewRunJob(id, "q", time.Second, "")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tasks.ParseRunJob(task.Payload()); err != nil {
			b.Fatal(err)
		}
	}
}
