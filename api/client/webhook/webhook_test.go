package webhook_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/client/webhook"
	platform "github.com/wasmwizard/wasmwizard/shared/webhook"
)

// The example of the Standard Webhooks specification.
const (
	specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTS     = 1614265330
	specBody   = `{"test": 2432232314}`
	specSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func headers(id string, ts int64, sig string) http.Header {
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	h.Set("webhook-signature", sig)
	return h
}

func at(ts int64) func() time.Time { return func() time.Time { return time.Unix(ts, 0) } }

func TestVerifyAgreesWithThePlatformsSigning(t *testing.T) {
	t.Parallel()
	now := time.Now()
	body := []byte(`{"type":"job.succeeded","timestamp":"…","data":{"id":"x"}}`)
	secret := "whsec_4wTnw7HcqMe0LQVClMVBHzEaywij5mq4lzsv0SVRcfg="
	old := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	for _, secrets := range [][]string{{secret}, {secret, old}, {old, secret}} {
		sig, err := platform.Sign(secrets, "delivery-1", now, body)
		require.NoError(t, err)
		h := headers("delivery-1", now.Unix(), sig)
		platform.Headers(h, "delivery-1", now, sig)
		require.NoError(t, webhook.Verify(secret, h, body), "%v", secrets)

		mine, err := webhook.Sign(secret, "delivery-1", now, body)
		require.NoError(t, err)
		require.Contains(t, sig, mine)

		require.ErrorIs(t, webhook.Verify(secret, h, append(body, ' ')), webhook.ErrNoMatch)
		require.ErrorIs(t, webhook.Verify("whsec_"+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", h, body), webhook.ErrNoMatch)
	}
}

func TestVerifyTheSpecificationsExample(t *testing.T) {
	t.Parallel()
	v := webhook.Verifier{Secrets: []string{specSecret}, Now: at(specTS)}
	require.NoError(t, v.Verify(headers(specID, specTS, specSig), []byte(specBody)))
	require.NoError(t, v.Verify(headers(specID, specTS, "v1,bm90IGl0 "+specSig), []byte(specBody)))
	sig, err := webhook.Sign(specSecret, specID, time.Unix(specTS, 0), []byte(specBody))
	require.NoError(t, err)
	require.Equal(t, specSig, sig)
}

func TestVerifyRefusals(t *testing.T) {
	t.Parallel()
	v := webhook.Verifier{Secrets: []string{specSecret}, Now: at(specTS)}
	for name, tc := range map[string]struct {
		h    http.Header
		want error
	}{
		"no id":            {headers("", specTS, specSig), webhook.ErrMissingHeaders},
		"no signature":     {headers(specID, specTS, ""), webhook.ErrMissingHeaders},
		"bad timestamp":    {func() http.Header { h := headers(specID, 0, specSig); h.Set("webhook-timestamp", "x1"); return h }(), webhook.ErrBadTimestamp},
		"old":              {headers(specID, specTS-301, specSig), webhook.ErrTooOld},
		"future":           {headers(specID, specTS+301, specSig), webhook.ErrTooOld},
		"wrong id":         {headers(specID+"x", specTS, specSig), webhook.ErrNoMatch},
		"other version":    {headers(specID, specTS, "v2,"+specSig[3:]), webhook.ErrNoMatch},
		"not base64":       {headers(specID, specTS, "v1,@@@"), webhook.ErrNoMatch},
		"signature prefix": {headers(specID, specTS, specSig[:20]), webhook.ErrNoMatch},
	} {
		require.ErrorIs(t, v.Verify(tc.h, []byte(specBody)), tc.want, name)
	}
	bad := webhook.Verifier{Secrets: []string{"nope"}, Now: at(specTS)}
	require.ErrorIs(t, bad.Verify(headers(specID, specTS, specSig), []byte(specBody)), webhook.ErrBadSecret)
	// The timestamp check can be turned off (for replaying a saved delivery).
	off := webhook.Verifier{Secrets: []string{specSecret}, Tolerance: -1}
	require.NoError(t, off.Verify(headers(specID, specTS, specSig), []byte(specBody)))
}

func ExampleVerifier() {
	v := webhook.Verifier{Secrets: []string{specSecret}, Now: at(specTS)}
	h := http.Header{}
	h.Set("webhook-id", specID)
	h.Set("webhook-timestamp", strconv.Itoa(specTS))
	h.Set("webhook-signature", specSig)
	fmt.Println(v.Verify(h, []byte(specBody)))
	fmt.Println(v.Verify(h, []byte(`{"test": 1}`)))
	// Output:
	// <nil>
	// webhook: no signature matches
}

func FuzzVerify(f *testing.F) {
	f.Add(specID, "1614265330", specSig, []byte(specBody))
	f.Add("", "x", "v1,", []byte{})
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", sig)
		v := webhook.Verifier{Secrets: []string{specSecret}, Tolerance: -1}
		if v.Verify(h, body) != nil {
			return
		}
		// Only a signature of exactly this message verifies.
		unix, err := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
		require.NoError(t, err)
		if strconv.FormatInt(unix, 10) != h.Get("webhook-timestamp") {
			return // Sign writes the canonical form only
		}
		want, err := webhook.Sign(specSecret, h.Get("webhook-id"), time.Unix(unix, 0), body)
		require.NoError(t, err)
		require.Contains(t, strings.Fields(h.Get("webhook-signature")), want)
	})
}
