package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/webhook"
	"github.com/wasmwizard/wasmwizard/shared/webhook/webhooktest"
)

// fakeDNS answers every name with 127.0.0.1, like a rebinding attacker's
// resolver would.
func fakeDNS(t *testing.T) *net.Resolver {
	t.Helper()
	res, _ := webhooktest.DNS(t, 0, [4]byte{127, 0, 0, 1})
	return res
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

func TestSpecialPurposeAddresses(t *testing.T) {
	t.Parallel()
	refused := []string{
		// The review's addresses, accepted and dialled before.
		"64:ff9b::7f00:1", "::127.0.0.1", "2002:7f00:1::", "2001::1", "2001:db8::1", "192.0.0.1", "192.88.99.1",
		// IPv4 special-purpose registry.
		"0.0.0.0", "0.1.2.3", "10.1.2.3", "100.64.0.1", "127.0.0.1", "169.254.169.254", "172.16.0.1", "192.0.0.9",
		"192.0.0.170", "192.0.2.1", "192.31.196.1", "192.52.193.1", "192.168.1.1", "192.175.48.1", "198.18.0.1",
		"198.51.100.1", "203.0.113.1", "224.0.0.1", "240.0.0.1", "255.255.255.255", "100.100.100.200",
		// IPv6 special-purpose registry and non-global space.
		"::", "::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:0:10.0.0.1", "::8.8.8.8", "64:ff9b:1::8.8.8.8",
		"64:ff9b::10.0.0.1", "64:ff9b::a9fe:a9fe", "100::1", "100:0:0:1::1", "2001:1::1", "2001:2::1",
		"2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:10::1", "2001:20::1", "2620:4f:8000::1", "3fff::1", "5f00::1",
		"fc00::1", "fd00:ec2::254", "fe80::1", "fe80::1%eth0", "fec0::1", "ff02::1", "4000::1", "1::1",
		"2002:a00:1::", "2002:c0a8:101::1", "2002:a9fe:a9fe::",
	}
	for _, s := range refused {
		ip := netip.MustParseAddr(s)
		require.False(t, webhook.Allowed(ip), "%s must be refused", s)
	}
	allowed := []string{"8.8.8.8", "1.1.1.1", "93.184.216.34", "::ffff:8.8.8.8", "64:ff9b::808:808",
		"2002:808:808::1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"}
	for _, s := range allowed {
		require.True(t, webhook.Allowed(netip.MustParseAddr(s)), "%s must be allowed", s)
	}
}

func TestSubmitRefusalsNameNoAddress(t *testing.T) {
	t.Parallel()
	strict := webhook.Policy{AllowHTTP: true, Resolver: fakeDNS(t)}
	for _, u := range []string{"http://[64:ff9b::7f00:1]/", "http://[::127.0.0.1]/", "http://[2002:7f00:1::]/",
		"http://[2001::1]/", "http://[2001:db8::1]/", "http://192.0.0.1/", "http://192.88.99.1/"} {
		require.ErrorIs(t, strict.CheckURL(context.Background(), u), webhook.ErrForbidden, u)
	}
	err := strict.CheckURL(context.Background(), "http://internal.example/hook") // resolves to 127.0.0.1
	require.ErrorIs(t, err, webhook.ErrForbidden)
	require.Contains(t, err.Error(), `host "internal.example" is not allowed`)
	require.NotContains(t, err.Error(), "127.0.0.1", "the resolved address is not disclosed")
	require.NotContains(t, err.Error(), "loopback", "nor what kind of address it is")
	// A name that does not resolve gets the same answer as one that resolves
	// inside: a tenant cannot tell which internal names exist.
	silent := webhook.Policy{AllowHTTP: true, Resolver: &net.Resolver{PreferGo: true,
		Dial: func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("no DNS") }}}
	err2 := silent.CheckURL(context.Background(), "http://internal.example/hook")
	require.ErrorIs(t, err2, webhook.ErrForbidden)
	require.Equal(t, err.Error(), err2.Error())
}

func TestDeliveryErrorsNameNoAddress(t *testing.T) {
	t.Parallel()
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	t.Cleanup(target.Close)
	_, err := webhook.Policy{AllowHTTP: true}.Client().Post(target.URL, "application/json", strings.NewReader("{}"))
	require.Error(t, err)
	msg := webhook.DescribeError(err)
	require.Contains(t, msg, "not allowed")
	require.NotContains(t, msg, "127.0.0.1")

	closed := httptest.NewServer(http.NotFoundHandler())
	addr := closed.URL
	closed.Close()
	_, err = webhook.Policy{AllowHTTP: true, AllowPrivate: true}.Client().Post(addr, "application/json", strings.NewReader("{}"))
	require.Error(t, err)
	msg = webhook.DescribeError(err)
	require.Equal(t, "the connection was refused", msg)
}

func TestBatchResolvesEachHostOnceConcurrently(t *testing.T) {
	t.Parallel()
	// Each answer takes 400 ms: resolved one after another, 20 hosts would
	// take 8 s, past the 3 s deadline, and most would be refused.
	res, count := webhooktest.DNS(t, 400*time.Millisecond, [4]byte{93, 184, 216, 34})
	p := webhook.Policy{Resolver: res}
	var urls []string
	for i := range 100 {
		urls = append(urls, fmt.Sprintf("https://h%d.example/hook/%d", i%20, i))
	}
	urls = append(urls, "https://127.0.0.1/x", "ftp://h1.example/")
	got := p.CheckURLs(context.Background(), urls)
	require.Len(t, got, len(urls))
	for _, u := range urls[:100] {
		require.NoError(t, got[u], u)
	}
	require.ErrorIs(t, got["https://127.0.0.1/x"], webhook.ErrForbidden)
	require.ErrorIs(t, got["ftp://h1.example/"], webhook.ErrForbidden)
	for i := range 20 {
		require.Equal(t, 1, count(fmt.Sprintf("h%d.example", i)), "h%d.example is resolved once", i)
	}
}

func FuzzAllowed(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::", "::ffff:8.8.8.8", "8.8.8.8", "fe80::1%eth0"} {
		f.Add(netip.MustParseAddr(s).AsSlice())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ip, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		allowed := webhook.Allowed(ip)
		if allowed && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsMulticast() ||
			ip.IsUnspecified() || ip.Unmap().IsLoopback() || ip.Unmap().IsPrivate()) {
			t.Fatalf("%s is allowed", ip)
		}
		if ip.Is6() && !ip.Is4In6() {
			// The embedded IPv4 address of NAT64 and 6to4 decides.
			a := ip.As16()
			if a[0] == 0x20 && a[1] == 0x02 && allowed != webhook.Allowed(netip.AddrFrom4([4]byte(a[2:6]))) {
				t.Fatalf("%s: 6to4 answer differs from its IPv4 address's", ip)
			}
		}
	})
}
