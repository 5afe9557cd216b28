package httpapi

import (
	"context"
	"net/http"

	"github.com/wasmwizard/wasmwizard/api/ratelimit"
	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// admitRuns decides whether the caller may start n more runs by its tier's
// runs per minute and per day (Redis, shared by every replica). The
// RateLimit headers describe the per-minute limit. If Redis cannot answer,
// runs are refused (fail closed): 503, nothing accepted.
//
// The tier's concurrent runs are not a limit on submits: they bound the
// account's jobs that run at once, and a worker's claim takes one of the
// account's slots in Postgres (store.ClaimJob); jobs past the limit wait,
// queued.
func (s *Server) admitRuns(ctx context.Context, h http.Header, p store.Principal, n int) error {
	t := p.Tier
	if s.limiter == nil {
		return nil
	}
	d, err := s.limiter.Runs(ctx, p.AccountID, t.RunsPerMinute, t.RunsPerDay, n)
	return admit(h, d, err, "rate limits cannot be checked right now; no job was accepted, retry later")
}

// admitUpload decides whether the caller may upload a module now: its tier's
// uploads per minute (Redis, shared by every replica), checked before the
// body is read. Like runs, uploads are refused when Redis cannot answer.
func (s *Server) admitUpload(ctx context.Context, h http.Header, p store.Principal) error {
	if s.limiter == nil {
		return nil
	}
	d, err := s.limiter.Uploads(ctx, p.AccountID, p.Tier.UploadsPerMinute)
	return admit(h, d, err, "rate limits cannot be checked right now; the module was not stored, retry later")
}

// admit answers a rate limit that fails closed: when the limiter could not
// decide (err), Unavailable with the message unavailable; else the
// decision's RateLimit headers, and its error when it refuses.
func admit(h http.Header, d ratelimit.Decision, err error, unavailable string) error {
	if err != nil {
		return apperr.Wrap(err, apperr.Unavailable, unavailable)
	}
	ratelimit.SetHeaders(h, d)
	if !d.Allowed {
		return d.Err()
	}
	return nil
}

// moduleQuota is what the caller's tier lets its account hold.
func moduleQuota(t store.Tier) store.ModuleQuota {
	return store.ModuleQuota{MaxModules: t.MaxModules, MaxStorageBytes: t.MaxModuleStorageBytes}
}
