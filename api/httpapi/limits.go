package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/wasmwizard/wasmwizard/api/ratelimit"
	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// admitRuns decides whether the caller may start n more runs: its tier's
// runs per minute and per day (Redis, shared by every replica), and its
// concurrent runs (jobs queued or running, counted in Postgres, so a slot is
// free again the moment its job ends, however it ends). The RateLimit
// headers describe the per-minute limit. If Redis cannot answer, runs are
// refused (fail closed): 503, nothing accepted.
func (s *Server) admitRuns(ctx context.Context, h http.Header, p store.Principal, n int) error {
	t := p.Tier
	if t.MaxConcurrentRuns > 0 {
		inFlight, err := s.store.UnfinishedJobs(ctx, p.AccountID)
		if err != nil {
			return err
		}
		if inFlight+n > t.MaxConcurrentRuns {
			ratelimit.SetHeaders(h, ratelimit.Decision{Limit: t.MaxConcurrentRuns, Remaining: 0,
				RetryAfter: time.Second, ResetAfter: time.Second})
			return apperr.New(apperr.QuotaExceeded,
				"%d of your jobs are queued or running, and the %s tier allows %d at once; wait for some to finish",
				inFlight, t.Name, t.MaxConcurrentRuns)
		}
	}
	if s.limiter == nil {
		return nil
	}
	d, err := s.limiter.Runs(ctx, p.AccountID, t.RunsPerMinute, t.RunsPerDay, n)
	if err != nil {
		return apperr.Wrap(err, apperr.Unavailable, "rate limits cannot be checked right now; no job was accepted, retry later")
	}
	ratelimit.SetHeaders(h, d)
	if !d.Allowed {
		return d.Err()
	}
	return nil
}

// admitUpload decides whether the caller may upload a module now: its tier's
// uploads per minute (Redis, shared by every replica), checked before the
// body is read. Like runs, uploads are refused when Redis cannot answer.
func (s *Server) admitUpload(ctx context.Context, h http.Header, p store.Principal) error {
	if s.limiter == nil {
		return nil
	}
	d, err := s.limiter.Uploads(ctx, p.AccountID, p.Tier.UploadsPerMinute)
	if err != nil {
		return apperr.Wrap(err, apperr.Unavailable, "rate limits cannot be checked right now; the module was not stored, retry later")
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
