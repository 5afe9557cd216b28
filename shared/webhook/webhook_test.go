package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/webhook"
)

// fakeDNS answers every name with 127.0.0.1, like a rebinding attacker's
// resolver would.
func fakeDNS(t *testing.T) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			q := buf[:n]
			// Answer: copy the query, set response flags, one A record.
			resp := append([]byte{}, q...)
			resp[2], resp[3] = 0x81, 0x80
			resp[6], resp[7] = 0, 1 // ANCOUNT
			qtype := q[n-4 : n-2]
			if qtype[0] == 0 && qtype[1] == 1 { // A
				resp = append(resp, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1)
			} else {
				resp[6], resp[7] = 0, 0
			}
			_, _ = pc.WriteTo(resp, addr)
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

func TestSubmitTimeChecks(t *testing.T) {
	t.Parallel()
	strict := webhook.Policy{AllowHTTP: true, Resolver: fakeDNS(t)}
	for _, u := range []string{
		"http://127.0.0.1/hook", "http://[::1]/hook", "http://169.254.169.254/latest/meta-data",
		"http://10.0.0.1/", "http://192.168.1.1/", "http://172.16.0.1/", "http://0.0.0.0/", "http://[fd00:ec2::254]/",
		"http://rebind.example/hook", // resolves to 127.0.0.1
		"ftp://example.com/", "/relative", "http://user:pw@8.8.8.8/",
	} {
		err := strict.CheckURL(context.Background(), u)
		require.ErrorIs(t, err, webhook.ErrForbidden, u)
	}
	require.NoError(t, strict.CheckURL(context.Background(), "https://8.8.8.8/hook"))
	httpsOnly := webhook.Policy{}
	require.ErrorIs(t, httpsOnly.CheckURL(context.Background(), "http://8.8.8.8/"), webhook.ErrForbidden)
	dev := webhook.Policy{AllowPrivate: true, AllowHTTP: true}
	require.NoError(t, dev.CheckURL(context.Background(), "http://127.0.0.1:8080/hook"))
}

func TestConnectTimeChecks(t *testing.T) {
	t.Parallel()
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	t.Cleanup(target.Close)
	// A public-looking redirect to loopback is not followed, and a direct
	// connection to loopback is refused on the dialled address.
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	t.Cleanup(redirect.Close)

	strict := webhook.Policy{AllowHTTP: true}.Client()
	_, err := strict.Post(target.URL, "application/json", strings.NewReader("{}"))
	require.True(t, errors.Is(err, webhook.ErrForbidden), "%v", err)

	dev := webhook.Policy{AllowHTTP: true, AllowPrivate: true}.Client()
	res, err := dev.Post(redirect.URL, "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusFound, res.StatusCode, "redirects are answers, not followed")
}

func TestSignatureMatchesTheStandard(t *testing.T) {
	t.Parallel()
	// The example of the Standard Webhooks specification.
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	id := "msg_p5jXN8AQM9LWM0D4loKWxJek"
	ts := time.Unix(1614265330, 0)
	body := []byte(`{"test": 2432232314}`)
	sig, err := webhook.Sign([]string{secret}, id, ts, body)
	require.NoError(t, err)
	require.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", sig)

	// An independent computation.
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + ".1614265330." + string(body)))
	require.Equal(t, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)), sig)

	two, err := webhook.Sign([]string{secret, "whsec_" + base64.StdEncoding.EncodeToString([]byte("another secret"))}, id, ts, body)
	require.NoError(t, err)
	require.Len(t, strings.Split(two, " "), 2)
}
