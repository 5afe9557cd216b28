package delivery_test

// Measurements for docs/SECURITY.md ("Webhooks"), skipped unless asked for:
//
//	WIZARD_MEASURE=payload go test -count=1 -run TestMeasureBigOutputDelivery -v ./worker/delivery/
//	WIZARD_MEASURE=isolation go test -count=1 -run TestMeasureSlowReceivers -v ./worker/delivery/
//
// Each runs alone in its test process, so the process's peak RSS is what the
// measured step cost.

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/shared/webhook"
	"github.com/wasmwizard/wasmwizard/worker/delivery"
)

func peakRSSMiB(t *testing.T) float64 {
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return float64(ru.Maxrss) / 1024 // KiB on Linux
}

// TestMeasureBigOutputDelivery delivers the webhook of a job that wrote
// 16 MiB of '<' to stdout and to stderr, then lists its delivery.
func TestMeasureBigOutputDelivery(t *testing.T) {
	if os.Getenv("WIZARD_MEASURE") != "payload" {
		t.Skip("a measurement: WIZARD_MEASURE=payload")
	}
	ctx := context.Background()
	st := testenv.Store(t)
	a, err := st.CreateAccount(ctx, store.Actor{Name: "t"}, "a", "pro")
	require.NoError(t, err)
	var received atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		received.Store(n)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rcv.Close)
	d := finished(t, st, a, rcv.URL, []byte("x"), nil)
	// The output is written by Postgres itself, so that making it costs
	// this process nothing.
	_, err = st.DB().Exec(`UPDATE jobs SET stdout = convert_to(repeat('<', 16 << 20), 'UTF8'),
		stderr = convert_to(repeat('<', 16 << 20), 'UTF8') WHERE id = $1`, d.JobID)
	require.NoError(t, err)
	runtime.GC()
	debug.FreeOSMemory()
	before := peakRSSMiB(t)

	sender := delivery.New(delivery.Config{Store: st, Policy: webhook.Policy{AllowPrivate: true, AllowHTTP: true}})
	task, err := tasks.NewDeliverWebhook(d.ID, a.ID, 0, "", "q")
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, sender.ProcessTask(ctx, task))
	t.Logf("delivery: %v, body %d bytes; peak RSS %.0f MiB before, %.0f MiB after", time.Since(start).Round(time.Millisecond),
		received.Load(), before, peakRSSMiB(t))
	_, err = st.DeliveryForJob(ctx, a.ID, d.JobID)
	require.NoError(t, err)
	t.Logf("after listing the delivery: peak RSS %.0f MiB", peakRSSMiB(t))

	// A 200 MiB body stored before bodies were bounded: listed, then sent
	// again (a manual retry).
	_, err = st.DB().Exec(`UPDATE webhook_deliveries SET status = 'pending', payload = convert_to(repeat('<', 200 << 20), 'UTF8')
		WHERE id = $1`, d.ID)
	require.NoError(t, err)
	_, err = st.DeliveryForJob(ctx, a.ID, d.JobID)
	require.NoError(t, err)
	t.Logf("after listing a delivery with a 200 MiB stored body: peak RSS %.0f MiB", peakRSSMiB(t))
	task, err = tasks.NewDeliverWebhook(d.ID, a.ID, 1, "", "q")
	require.NoError(t, err)
	require.NoError(t, sender.ProcessTask(ctx, task))
	t.Logf("after sending it: body %d bytes; peak RSS %.0f MiB", received.Load(), peakRSSMiB(t))
}

// TestMeasureSlowReceivers: one attacker account keeps 40 deliveries to
// receivers that never answer queued on a worker with the default 10
// delivery slots; a victim account's delivery is queued every 500 ms for
// 20 s. It reports how long the victim's deliveries took to arrive (2 min
// for one that did not).
func TestMeasureSlowReceivers(t *testing.T) {
	if os.Getenv("WIZARD_MEASURE") != "isolation" {
		t.Skip("a measurement: WIZARD_MEASURE=isolation")
	}
	ctx := context.Background()
	iso := newIsolation(t)
	st, hooks, attacker, victim := iso.st, iso.hooks, iso.attacker, iso.victim
	stop := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if _, ok := arrived[r.Header.Get("webhook-id")]; !ok {
			arrived[r.Header.Get("webhook-id")] = time.Now()
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(func() { close(stop); slow.Close(); fast.Close() })

	srv, mux := iso.server(3, delivery.SlotLease, asynq.Config{Concurrency: 10, TaskCheckInterval: 100 * time.Millisecond})
	for range 40 {
		d := finished(t, st, attacker, slow.URL, []byte("x"), nil)
		_, err := hooks.Ensure(ctx, d, time.Time{}, false)
		require.NoError(t, err)
	}
	require.NoError(t, srv.Start(mux))
	t.Cleanup(srv.Shutdown)
	time.Sleep(time.Second) // the attacker's sends hold their slots
	sent := map[string]time.Time{}
	for range 40 {
		d := finished(t, st, victim, fast.URL, []byte("y"), nil)
		sent[d.ID.String()] = time.Now()
		_, err := hooks.Ensure(ctx, d, time.Time{}, false)
		require.NoError(t, err)
		time.Sleep(500 * time.Millisecond)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		mu.Lock()
		n := len(arrived)
		mu.Unlock()
		if n == len(sent) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var delays []time.Duration
	mu.Lock()
	for id, at := range sent {
		if got, ok := arrived[id]; ok {
			delays = append(delays, got.Sub(at))
		} else {
			delays = append(delays, 2*time.Minute)
		}
	}
	mu.Unlock()
	slices.Sort(delays)
	t.Logf("victim deliveries: %d, p50 %v, max %v", len(delays), delays[len(delays)/2].Round(time.Millisecond),
		delays[len(delays)-1].Round(time.Millisecond))
}
