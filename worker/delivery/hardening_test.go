package delivery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/deliveryqueue"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/shared/webhook"
	"github.com/wasmwizard/wasmwizard/worker/delivery"
)

// finished makes a terminal job of account a with a webhook_url and the
// given output, and returns its delivery.
func finished(t *testing.T, st *store.Store, a store.Account, url string, stdout, stderr []byte) store.Delivery {
	t.Helper()
	ctx := context.Background()
	m := testenv.Module(t, st, a.ID, "hello", fixtures.Bytes(fixtures.Hello))
	zero := 0
	j := testenv.FinishedJob(t, st, store.Job{AccountID: a.ID, ModuleID: m.ID, ModuleSHA256: m.SHA256,
		Queue: "q", Function: "_start", TimeoutMS: 1000, MemoryLimitMB: 16, MaxOutputBytes: 32 << 20, WebhookURL: &url},
		jobstate.Outcome{Status: jobstate.Succeeded, ExitCode: &zero, Stdout: stdout, Stderr: stderr})
	d, err := st.DeliveryForJob(ctx, a.ID, j.ID)
	require.NoError(t, err)
	return d
}

func TestBigOutputMakesABoundedPayload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, a := testenv.StoreWithAccount(t)
	r := newReceiver(t, a.WebhookSecret)
	// 4 MiB of '<' (six bytes each when HTML-escaped) and 4 MiB of a
	// two-byte character whose excerpt is cut in the middle of a character.
	out := bytes.Repeat([]byte("<"), 4<<20)
	errOut := append([]byte("x"), bytes.Repeat([]byte("é"), 2<<20)...)
	d := finished(t, st, a, r.srv.URL, out, errOut)
	sender := delivery.New(delivery.Config{Store: st, Policy: webhook.Policy{AllowPrivate: true, AllowHTTP: true}})
	task, err := tasks.NewDeliverWebhook(d.ID, a.ID, 0, "", "q")
	require.NoError(t, err)
	require.NoError(t, sender.ProcessTask(ctx, task))

	require.Len(t, r.got, 1)
	body := r.got[0].body
	require.Less(t, len(body), 1<<20, "the body is bounded, whatever the output")
	require.True(t, r.got[0].validOK)
	var ev struct {
		Type  string `json:"type"`
		Links struct {
			Job string `json:"job"`
		} `json:"links"`
		Data map[string]any `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &ev))
	require.Equal(t, "job.succeeded", ev.Type)
	require.Equal(t, "/v1/jobs/"+d.JobID.String(), ev.Links.Job)
	require.Equal(t, strings.Repeat("<", delivery.ExcerptBytes), ev.Data["stdout"])
	require.Contains(t, string(body), `"stdout":"<<<`, "no HTML escaping")
	require.Equal(t, true, ev.Data["stdout_excerpt"])
	require.Equal(t, float64(4<<20), ev.Data["stdout_bytes"])
	stderr, ok := ev.Data["stderr"].(string)
	require.True(t, ok, "text cut mid-character stays text: %v", ev.Data["stderr_base64"])
	require.Equal(t, delivery.ExcerptBytes-1, len(stderr), "the split character is dropped")
	require.Equal(t, true, ev.Data["stderr_excerpt"])
	require.Equal(t, float64(len(errOut)), ev.Data["stderr_bytes"])
	require.Equal(t, false, ev.Data["stdout_truncated"], "the job's own flags are unchanged")

	// The list's read never loads the body.
	listed, err := st.DeliveryForJob(ctx, a.ID, d.JobID)
	require.NoError(t, err)
	require.Nil(t, listed.Payload)
	require.EqualValues(t, len(body), *listed.PayloadBytes)
}

func TestHugeStoredPayloadIsRebuilt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, a := testenv.StoreWithAccount(t)
	r := newReceiver(t, a.WebhookSecret, status(500))
	d := finished(t, st, a, r.srv.URL, []byte("hi"), nil)
	// A body stored before bodies were bounded.
	_, err := st.DB().Exec(`UPDATE webhook_deliveries SET payload = $2 WHERE id = $1`, d.ID,
		[]byte(`{"data":{"stdout":"`+strings.Repeat(`\u003c`, store.MaxPayloadBytes/6+1)+`"}}`))
	require.NoError(t, err)
	got, err := st.GetDelivery(ctx, d.ID)
	require.NoError(t, err)
	require.Nil(t, got.Payload, "too large to be read")

	sender := delivery.New(delivery.Config{Store: st, Policy: webhook.Policy{AllowPrivate: true, AllowHTTP: true}})
	task, err := tasks.NewDeliverWebhook(d.ID, a.ID, 0, "", "q")
	require.NoError(t, err)
	require.Error(t, sender.ProcessTask(ctx, task)) // 500: retried
	require.Len(t, r.got, 1)
	require.Less(t, len(r.got[0].body), 4096)
	require.Contains(t, string(r.got[0].body), `"stdout":"hi"`)
	got, err = st.GetDelivery(ctx, d.ID)
	require.NoError(t, err)
	require.Equal(t, r.got[0].body, got.Payload, "the rebuilt body is stored and sent from now on")
}

func TestAnswerWithNULIsRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t, "http://placeholder")
	answer := func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("bad\x00news \xff\xfe" + strings.Repeat("\x00", 4000)))
	}
	r := newReceiver(t, b.acct.WebhookSecret, answer, answer)
	b.retarget(t, r.srv.URL)
	require.Error(t, b.send(t))
	require.Error(t, b.send(t))
	d, attempts := b.delivery(t)
	require.Equal(t, 2, d.Attempts, "every attempt counts")
	require.Len(t, attempts, 2)
	require.Equal(t, "badnews \uFFFD", *attempts[0].ResponseExcerpt)
	require.Equal(t, 500, *attempts[1].StatusCode)
}

func TestAnAttemptIsMadeOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, "http://placeholder")
	r := newReceiver(t, b.acct.WebhookSecret, status(500))
	b.retarget(t, r.srv.URL)
	task, err := tasks.NewDeliverWebhook(b.d.ID, b.acct.ID, 0, "", "q")
	require.NoError(t, err)
	require.Error(t, b.sender.ProcessTask(context.Background(), task))
	// A second copy of the first attempt's task (asynq redelivering it, or
	// one queued before the attempt) does not send again.
	require.NoError(t, b.sender.ProcessTask(context.Background(), task))
	require.Len(t, r.got, 1)
	d, _ := b.delivery(t)
	require.Equal(t, 1, d.Attempts)
}

// isolation is a store and a real webhook queue with two accounts, an
// attacker's and a victim's, for the tests of slow receivers.
type isolation struct {
	st               *store.Store
	ns, queue        string
	rdb              *redis.Client
	hooks            deliveryqueue.Queue
	attacker, victim store.Account
}

func newIsolation(t *testing.T) isolation {
	t.Helper()
	ctx := context.Background()
	st := testenv.Store(t)
	ns := testenv.Namespace(t)
	queue := tasks.WebhookQueue(ns)
	opt, err := redis.ParseURL(testenv.RedisURL())
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	hooks := deliveryqueue.Queue{Client: asynq.NewClientFromRedisClient(rdb), Inspector: asynq.NewInspectorFromRedisClient(rdb),
		Name: queue}
	attacker, err := st.CreateAccount(ctx, store.Actor{Name: "t"}, "attacker", "free")
	require.NoError(t, err)
	victim, err := st.CreateAccount(ctx, store.Actor{Name: "t"}, "victim", "free")
	require.NoError(t, err)
	return isolation{st: st, ns: ns, queue: queue, rdb: rdb, hooks: hooks, attacker: attacker, victim: victim}
}

// server returns a webhooks server of iso's queue, not started, whose
// sender sends to any target and at most perAccount deliveries of an
// account at once (a slot held for lease at the most). cfg gives the
// server's concurrency and check intervals.
func (iso isolation) server(perAccount int, lease time.Duration, cfg asynq.Config) (*asynq.Server, *asynq.ServeMux) {
	sender := delivery.New(delivery.Config{Store: iso.st, Policy: webhook.Policy{AllowPrivate: true, AllowHTTP: true},
		Log: zap.NewNop(), Tasks: &iso.hooks,
		Slots: delivery.NewAccountSlots(iso.rdb, iso.ns, perAccount, lease)})
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeDeliverWebhook, sender)
	cfg.Queues = map[string]int{iso.queue: 1}
	cfg.RetryDelayFunc, cfg.IsFailure = delivery.RetryDelay, delivery.IsFailure
	cfg.LogLevel, cfg.ShutdownTimeout = asynq.FatalLevel, time.Second
	return asynq.NewServerFromRedisClient(iso.rdb, cfg), mux
}

// TestSlowReceiversDelayOnlyTheirAccount runs a webhooks server of two slots
// on a real queue. An attacker account has four receivers that never answer;
// a victim account's delivery must go out while they all still hang.
func TestSlowReceiversDelayOnlyTheirAccount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	iso := newIsolation(t)
	st, hooks, attacker, victim := iso.st, iso.hooks, iso.attacker, iso.victim

	hang := make(chan struct{})
	var hanging atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hanging.Add(1)
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	var once sync.Once
	release := func() { once.Do(func() { close(hang) }) }
	t.Cleanup(func() { release(); slow.Close() })
	victimGot := make(chan struct{}, 1)
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		select {
		case victimGot <- struct{}{}:
		default:
		}
	}))
	t.Cleanup(fast.Close)

	var attackerDeliveries []store.Delivery
	for range 4 {
		attackerDeliveries = append(attackerDeliveries, finished(t, st, attacker, slow.URL, []byte("x"), nil))
	}
	victimDelivery := finished(t, st, victim, fast.URL, []byte("y"), nil)

	srv, mux := iso.server(1, time.Minute, asynq.Config{Concurrency: 2,
		TaskCheckInterval: 50 * time.Millisecond, DelayedTaskCheckInterval: 200 * time.Millisecond})
	// The attacker's deliveries are queued first, the victim's last.
	for _, d := range attackerDeliveries {
		_, err := hooks.Ensure(ctx, d, time.Time{}, false)
		require.NoError(t, err)
	}
	_, err := hooks.Ensure(ctx, victimDelivery, time.Time{}, false)
	require.NoError(t, err)
	require.NoError(t, srv.Start(mux))
	t.Cleanup(srv.Shutdown)
	t.Cleanup(release) // runs before Shutdown: the hanging sends end

	select {
	case <-victimGot:
	case <-time.After(time.Minute):
		t.Fatal("the victim's delivery did not go out")
	}
	// Every attacker attempt so far is still hanging: none ended (by the
	// attempt timeout) to free a slot for the victim's delivery.
	var ended int
	require.NoError(t, st.DB().Get(&ended, `SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
		WHERE d.account_id = $1`, attacker.ID))
	require.Zero(t, ended, "the victim's delivery went out while the attacker's receivers hung")
	require.LessOrEqual(t, hanging.Load(), int32(1), "the attacker has at most one delivery in flight, its limit")
	require.Eventually(t, func() bool { return hanging.Load() == 1 }, 10*time.Second, 10*time.Millisecond,
		"the attacker's deliveries are sent too, one at a time")
	require.Eventually(t, func() bool {
		d, err := st.GetDelivery(ctx, victimDelivery.ID)
		return err == nil && d.Status == store.DeliveryDelivered
	}, 10*time.Second, 20*time.Millisecond)

	// Once the receivers answer, the attacker's deliveries go out too.
	release()
	require.Eventually(t, func() bool {
		var left int
		require.NoError(t, st.DB().Get(&left, `SELECT count(*) FROM webhook_deliveries WHERE account_id = $1 AND status <> 'delivered'`, attacker.ID))
		return left == 0
	}, time.Minute, 50*time.Millisecond)
}

func TestListedAttemptsAreBounded(t *testing.T) {
	t.Parallel()
	b := setup(t, "http://placeholder")
	ctx := context.Background()
	for range store.MaxListedAttempts + 5 {
		require.NoError(t, b.st.RecordAttempt(ctx, b.d.ID, store.Attempt{}, store.DeliveryPending, time.Now()))
	}
	attempts, err := b.st.Attempts(ctx, b.d.ID)
	require.NoError(t, err)
	require.Len(t, attempts, store.MaxListedAttempts)
	require.Equal(t, 6, attempts[0].Attempt, "the most recent, oldest first")
	require.Equal(t, store.MaxListedAttempts+5, attempts[len(attempts)-1].Attempt)
}

func TestAccountSlots(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opt, err := redis.ParseURL(testenv.RedisURL())
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	slots := delivery.NewAccountSlots(rdb, testenv.Namespace(t), 2, 300*time.Millisecond)
	a, b := uuid.New(), uuid.New()
	r1, ok, err := slots.Acquire(ctx, a)
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = slots.Acquire(ctx, a)
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = slots.Acquire(ctx, a)
	require.NoError(t, err)
	require.False(t, ok, "the account is at its limit")
	_, ok, err = slots.Acquire(ctx, b)
	require.NoError(t, err)
	require.True(t, ok, "another account is not")
	r1()
	_, ok, err = slots.Acquire(ctx, a)
	require.NoError(t, err)
	require.True(t, ok, "a released slot is free again")
	require.Eventually(t, func() bool {
		_, ok, err := slots.Acquire(ctx, a)
		return err == nil && ok
	}, 5*time.Second, 50*time.Millisecond, "slots whose lease ended are free (a worker killed mid-send)")
}
