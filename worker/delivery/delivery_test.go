package delivery_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/shared/webhook"
	"github.com/wasmwizard/wasmwizard/worker/delivery"
)

// receiver is a real HTTP receiver on loopback that verifies signatures with
// its own implementation of the Standard Webhooks algorithm.
type receiver struct {
	mu      sync.Mutex
	secret  string
	answers []func(w http.ResponseWriter)
	got     []received
	srv     *httptest.Server
}

type received struct {
	id, ts  string
	body    []byte
	validOK bool
}

func newReceiver(t *testing.T, secret string, answers ...func(w http.ResponseWriter)) *receiver {
	r := &receiver{secret: secret, answers: answers}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		id, ts := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
		key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.secret, "whsec_"))
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "." + string(body)))
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		ok := false
		for _, sig := range strings.Split(req.Header.Get("webhook-signature"), " ") {
			ok = ok || hmac.Equal([]byte(sig), []byte(want))
		}
		r.mu.Lock()
		n := len(r.got)
		r.got = append(r.got, received{id: id, ts: ts, body: body, validOK: ok})
		r.mu.Unlock()
		if n < len(r.answers) {
			r.answers[n](w)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func status(code int) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) { w.WriteHeader(code) }
}

type bundle struct {
	st     *store.Store
	sender *delivery.Sender
	acct   store.Account
	job    store.Job
	d      store.Delivery
}

// setup makes a finished job with a webhook_url and returns its delivery.
func setup(t *testing.T, url string) bundle {
	t.Helper()
	ctx := context.Background()
	st, a, m := testenv.StoreWithModule(t)
	zero := 0
	j := testenv.FinishedJob(t, st, store.Job{AccountID: a.ID, ModuleID: m.ID, ModuleSHA256: m.SHA256,
		Queue: "q", Function: "_start", TimeoutMS: 1000, MemoryLimitMB: 16, MaxOutputBytes: 100, WebhookURL: &url},
		jobstate.Outcome{Status: jobstate.Succeeded, ExitCode: &zero, Stdout: []byte("hi")})
	d, err := st.DeliveryForJob(ctx, a.ID, j.ID)
	require.NoError(t, err, "finishing the job created its delivery")
	sender := delivery.New(delivery.Config{Store: st, Policy: webhook.Policy{AllowPrivate: true, AllowHTTP: true}, Log: zap.NewNop()})
	return bundle{st: st, sender: sender, acct: a, job: j, d: d}
}

// send runs the task of the delivery's next attempt.
// retarget points the bundle's delivery at url.
func (b bundle) retarget(t *testing.T, url string) {
	t.Helper()
	_, err := b.st.DB().Exec(`UPDATE webhook_deliveries SET url = $1 WHERE id = $2`, url, b.d.ID)
	require.NoError(t, err)
}

func (b bundle) send(t *testing.T) error {
	t.Helper()
	d, _ := b.delivery(t)
	task, err := tasks.NewDeliverWebhook(b.d.ID, b.acct.ID, d.Attempts, "", "q")
	require.NoError(t, err)
	return b.sender.ProcessTask(context.Background(), task)
}

func (b bundle) delivery(t *testing.T) (store.Delivery, []store.Attempt) {
	t.Helper()
	d, err := b.st.GetDelivery(context.Background(), b.d.ID)
	require.NoError(t, err)
	as, err := b.st.Attempts(context.Background(), b.d.ID)
	require.NoError(t, err)
	return d, as
}

func TestDeliveredAndVerified(t *testing.T) {
	t.Parallel()
	b := setup(t, "http://placeholder")
	r := newReceiver(t, b.acct.WebhookSecret)
	b.retarget(t, r.srv.URL)

	require.NoError(t, b.send(t))
	d, attempts := b.delivery(t)
	require.Equal(t, store.DeliveryDelivered, d.Status)
	require.Len(t, attempts, 1)
	require.Equal(t, 204, *attempts[0].StatusCode)
	require.Len(t, r.got, 1)
	require.True(t, r.got[0].validOK, "the signature verifies")
	require.Equal(t, b.d.ID.String(), r.got[0].id)
	var event map[string]any
	require.NoError(t, json.Unmarshal(r.got[0].body, &event))
	require.Equal(t, "job.succeeded", event["type"])
	require.Equal(t, b.job.ID.String(), event["data"].(map[string]any)["id"])
	require.Equal(t, "hi", event["data"].(map[string]any)["stdout"])

	// A delivered delivery is not sent again.
	require.NoError(t, b.send(t))
	require.Len(t, r.got, 1)
}

func TestRetriesKeepTheIDAndBody(t *testing.T) {
	t.Parallel()
	b := setup(t, "http://placeholder")
	r := newReceiver(t, b.acct.WebhookSecret, status(500), func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", "600")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	b.retarget(t, r.srv.URL)

	err := b.send(t)
	require.Error(t, err)
	require.InDelta(t, 5*time.Second, delivery.RetryDelay(0, err, nil), float64(600*time.Millisecond), "5 s ± 10 %")
	err = b.send(t)
	require.Error(t, err)
	require.Equal(t, 600*time.Second, delivery.RetryDelay(1, err, nil), "Retry-After later than the schedule's 5 min wins")
	require.Len(t, r.got, 2)
	require.Equal(t, r.got[0].id, r.got[1].id, "the same webhook-id on every attempt")
	require.Equal(t, r.got[0].body, r.got[1].body, "the same body on every attempt")
	require.True(t, r.got[1].validOK)
	d, attempts := b.delivery(t)
	require.Equal(t, store.DeliveryPending, d.Status)
	require.Len(t, attempts, 2)
	require.Equal(t, 503, *attempts[1].StatusCode)
}

func TestGoneStopsAndClosedPortRetries(t *testing.T) {
	t.Parallel()
	b := setup(t, "http://127.0.0.1:1/closed")
	err := b.send(t)
	var re interface{ Error() string }
	require.True(t, errors.As(err, &re))
	d, attempts := b.delivery(t)
	require.Equal(t, store.DeliveryPending, d.Status)
	require.Len(t, attempts, 1)
	require.Nil(t, attempts[0].StatusCode)
	require.NotNil(t, attempts[0].Error)

	r := newReceiver(t, b.acct.WebhookSecret, status(http.StatusGone))
	b.retarget(t, r.srv.URL)
	require.NoError(t, b.send(t), "410 is final: no retry")
	d, attempts = b.delivery(t)
	require.Equal(t, store.DeliveryFailed, d.Status)
	require.Len(t, attempts, 2)
}

func TestPrivateTargetsAreRefusedOnConnect(t *testing.T) {
	t.Parallel()
	b := setup(t, "http://placeholder")
	r := newReceiver(t, b.acct.WebhookSecret)
	b.retarget(t, r.srv.URL)
	strict := delivery.New(delivery.Config{Store: b.st, Policy: webhook.Policy{AllowHTTP: true}})
	task, err := tasks.NewDeliverWebhook(b.d.ID, b.acct.ID, 0, "", "q")
	require.NoError(t, err)
	require.Error(t, strict.ProcessTask(context.Background(), task))
	require.Empty(t, r.got, "nothing reached the loopback receiver")
	_, attempts := b.delivery(t)
	require.Contains(t, *attempts[0].Error, "not allowed")
	require.NotContains(t, *attempts[0].Error, "127.0.0.1", "the dialled address is not shown")
}
