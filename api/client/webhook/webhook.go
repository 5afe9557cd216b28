// Package webhook verifies the signed deliveries Wasm Wizard sends to a job's webhook_url.
//
// The signatures are Standard Webhooks (docs/API.md, "Webhooks"): an
// HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<body>" keyed with the
// account's whsec_ secret.
//
//	func hook(w http.ResponseWriter, r *http.Request) {
//		body, _ := io.ReadAll(io.LimitReader(r.Body, 16<<20))
//		if err := webhook.Verify(secret, r.Header, body); err != nil {
//			http.Error(w, "bad signature", http.StatusUnauthorized)
//			return
//		}
//		// deduplicate on r.Header.Get("webhook-id"), then answer 2xx quickly
//	}
//
// It depends on the standard library only.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far a delivery's timestamp may be from the
// receiver's clock (replays older than this are refused).
const DefaultTolerance = 5 * time.Minute

// Errors Verify returns.
var (
	ErrMissingHeaders = errors.New("webhook: webhook-id, webhook-timestamp or webhook-signature missing")
	ErrBadTimestamp   = errors.New("webhook: webhook-timestamp is not Unix seconds")
	ErrTooOld         = errors.New("webhook: timestamp outside the tolerance (a replay, or a wrong clock)")
	ErrNoMatch        = errors.New("webhook: no signature matches")
	ErrBadSecret      = errors.New("webhook: the secret is not whsec_ followed by base64")
)

// Verify checks a delivery's headers and raw body with the account's
// secret, against the current time and DefaultTolerance.
func Verify(secret string, h http.Header, body []byte) error {
	return Verifier{Secrets: []string{secret}}.Verify(h, body)
}

// Verifier checks deliveries with options.
type Verifier struct {
	// Secrets are accepted secrets (a receiver switching secrets after a
	// rotation can accept both).
	Secrets []string
	// Tolerance replaces DefaultTolerance; negative: no timestamp check.
	Tolerance time.Duration
	// Now replaces time.Now.
	Now func() time.Time
}

// Verify checks a delivery: nil when any of its v1 signatures matches any
// secret and its timestamp is within the tolerance.
func (v Verifier) Verify(h http.Header, body []byte) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return ErrMissingHeaders
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	tol := v.Tolerance
	if tol == 0 {
		tol = DefaultTolerance
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if tol > 0 {
		d := now().Sub(time.Unix(unix, 0))
		if d > tol || d < -tol {
			return ErrTooOld
		}
	}
	for _, secret := range v.Secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		if err != nil || !strings.HasPrefix(secret, "whsec_") {
			return ErrBadSecret
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
		want := mac.Sum(nil)
		for _, sig := range strings.Fields(sigs) {
			version, b64, ok := strings.Cut(sig, ",")
			if !ok || version != "v1" {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(b64)
			if err == nil && hmac.Equal(got, want) {
				return nil
			}
		}
	}
	return ErrNoMatch
}

// Sign returns a webhook-signature value for a message, as the platform
// computes it (for tests of receivers).
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadSecret, err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}
