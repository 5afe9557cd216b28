package platformtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/shared/config"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// hookReceiver is a loopback webhook receiver with its own Standard Webhooks
// verification. It can be switched off (its port closed) and on again.
type hookReceiver struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	srv  *http.Server
	got  []hookMessage
}

type hookMessage struct {
	id, ts, sig string
	body        []byte
}

func newHookReceiver(t *testing.T) *hookReceiver {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r := &hookReceiver{t: t, addr: l.Addr().String()}
	r.serve(l)
	t.Cleanup(r.stop)
	return r
}

func (r *hookReceiver) serve(l net.Listener) {
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, hookMessage{id: req.Header.Get("webhook-id"), ts: req.Header.Get("webhook-timestamp"),
			sig: req.Header.Get("webhook-signature"), body: body})
		r.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}), ReadHeaderTimeout: time.Second}
	srv := r.srv // the goroutine must not read the field a restart rewrites
	go func() { _ = srv.Serve(l) }()
}

func (r *hookReceiver) stop() { _ = r.srv.Close() }

func (r *hookReceiver) start() {
	l, err := net.Listen("tcp", r.addr)
	require.NoError(r.t, err)
	r.serve(l)
}

func (r *hookReceiver) url() string { return "http://" + r.addr + "/hook" }

func (r *hookReceiver) messages() []hookMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookMessage(nil), r.got...)
}

func (r *hookReceiver) wait(n int) []hookMessage {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := r.messages(); len(m) >= n {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatalf("the receiver got %d messages, want %d", len(r.messages()), n)
	return nil
}

// verify checks a message against a secret, independently of the platform.
func verify(secret string, m hookMessage) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(m.id + "." + m.ts + "."))
	mac.Write(m.body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Split(m.sig, " ") {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

// startWebhookPlatform starts a platform that delivers webhooks to plain
// HTTP receivers on this machine.
func startWebhookPlatform(t *testing.T) *platform {
	t.Helper()
	return startPlatformWith(t, func(c *config.Common) { c.WebhookAllowPrivate, c.WebhookAllowHTTP = true, true })
}

// webhookAccount creates a pro account named name through the admin API and
// returns a key for it and its webhook signing secret.
func (p *platform) webhookAccount(name string) (key, secret string) {
	p.t.Helper()
	res := p.postJSON("/v1/admin/accounts", adminToken, map[string]string{"name": name, "tier": "pro"})
	acct := decode[client.AdminAccount](p.t, res)
	key = decode[client.Key](p.t, p.postJSON("/v1/admin/accounts/"+acct.ID+"/keys", adminToken, map[string]string{})).Key
	return key, acct.WebhookSecret
}

func TestWebhooks(t *testing.T) {
	t.Parallel()
	p := startWebhookPlatform(t)
	key, secret := p.webhookAccount("hooks")

	t.Run("a finished job's event arrives signed", func(t *testing.T) {
		t.Parallel()
		r := newHookReceiver(t)
		job := p.run(key, fixtures.Exit3, map[string]any{"webhook_url": r.url()})
		m := r.wait(1)[0]
		require.True(t, verify(secret, m), "the signature verifies")
		var event struct {
			Type string     `json:"type"`
			Data client.Job `json:"data"`
		}
		require.NoError(t, json.Unmarshal(m.body, &event), "%s", m.body)
		require.Equal(t, "job.failed", event.Type)
		require.Equal(t, job.ID, event.Data.ID)
		require.Equal(t, "exit_nonzero", errorCode(event.Data))

		id := job.ID
		var ds []client.Delivery
		require.Eventually(t, func() bool {
			ds = decode[client.Page[client.Delivery]](t, p.do(http.MethodGet, "/v1/jobs/"+id+"/deliveries", key, "", nil)).Data
			return len(ds) == 1 && ds[0].Status == "delivered"
		}, 10*time.Second, 20*time.Millisecond)
		attempts := ds[0].Attempts
		require.Len(t, attempts, 1)
		require.Equal(t, new(200), attempts[0].StatusCode)

		// A manual retry sends the same message again.
		res := p.postJSON("/v1/jobs/"+id+"/deliveries/retry", key, nil)
		require.Equal(t, http.StatusAccepted, res.Status, "%s", res.Body)
		again := r.wait(2)[1]
		require.Equal(t, m.id, again.id, "the same webhook-id")
		require.Equal(t, m.body, again.body)
	})

	t.Run("a receiver that is down gets the event once it is back", func(t *testing.T) {
		t.Parallel()
		r := newHookReceiver(t)
		r.stop()
		job := p.run(key, fixtures.Hello, map[string]any{"webhook_url": r.url()})
		id := job.ID
		require.Eventually(t, func() bool {
			ds := decode[client.Page[client.Delivery]](t, p.do(http.MethodGet, "/v1/jobs/"+id+"/deliveries", key, "", nil)).Data
			return len(ds) == 1 && len(ds[0].Attempts) >= 1
		}, 10*time.Second, 20*time.Millisecond, "the first attempt failed")
		r.start()
		m := r.wait(1)[0] // the retry 5 s later
		require.True(t, verify(secret, m))
	})

	t.Run("jobs without a webhook have no deliveries", func(t *testing.T) {
		t.Parallel()
		job := p.run(key, fixtures.Hello, nil)
		res := p.do(http.MethodGet, "/v1/jobs/"+job.ID+"/deliveries", key, "", nil)
		require.Equal(t, http.StatusOK, res.Status)
		require.Empty(t, decode[client.Page[client.Delivery]](t, res).Data)
		require.Equal(t, http.StatusNotFound, p.postJSON("/v1/jobs/"+job.ID+"/deliveries/retry", key, nil).Status)
	})
}

func TestWebhookSecretRotation(t *testing.T) {
	t.Parallel()
	p := startWebhookPlatform(t)
	key, old := p.webhookAccount("rot")

	res := p.postJSON("/v1/account/webhook-secret/rotate", key, nil)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	fresh := decode[client.SecretRotation](t, res).WebhookSecret
	require.NotEqual(t, old, fresh)
	require.Equal(t, fresh, decode[client.Account](t, p.do(http.MethodGet, "/v1/account", key, "", nil)).WebhookSecret)

	r := newHookReceiver(t)
	p.run(key, fixtures.Hello, map[string]any{"webhook_url": r.url()})
	m := r.wait(1)[0]
	require.Len(t, strings.Split(m.sig, " "), 2, "both secrets sign during the overlap")
	require.True(t, verify(fresh, m))
	require.True(t, verify(old, m))
}

func TestWebhookTargetsAreChecked(t *testing.T) {
	t.Parallel()
	strict := startPlatform(t) // no private targets, https only
	key := strict.account("free")
	hello := strict.upload(key, fixtures.Hello)
	for _, u := range []string{"http://127.0.0.1/h", "https://127.0.0.1/h", "https://[::1]/h", "https://169.254.169.254/latest",
		"https://10.0.0.1/h", "https://localhost/h", "ftp://example.com/", "not a url"} {
		res := strict.postJSON("/v1/jobs", key, map[string]any{"module_id": hello, "webhook_url": u})
		require.Equal(t, http.StatusBadRequest, res.Status, "%s: %s", u, res.Body)
		require.Contains(t, string(res.Body), "webhook_url", u)
	}
}
