// Package ratelimit enforces per-account and per-key limits shared by every
// API replica.
//
// The counters are in Redis, kept with GCRA (go-redis/redis_rate): a limit
// of N per minute admits N at once and then one every 60/N seconds, at any
// rate (no per-second buckets).
package ratelimit

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

// Decision is the outcome of one check, with what the RateLimit headers say.
type Decision struct {
	Allowed    bool
	Limit      int
	Remaining  int
	RetryAfter time.Duration
	ResetAfter time.Duration
	// Code says which limit refused: rate_limited (per minute) or
	// quota_exceeded (per day, concurrency).
	Code   apperr.Code
	Detail string
}

// Limiter checks limits; keys live under prefix in Redis.
type Limiter struct {
	l      *redis_rate.Limiter
	prefix string
}

// New returns a Limiter on rdb whose keys start with prefix.
func New(rdb redis.UniversalClient, prefix string) *Limiter {
	return &Limiter{l: redis_rate.NewLimiter(rdb), prefix: prefix + "ratelimit:"}
}

// Reads checks one read by key against perMinute (0: unlimited).
func (l *Limiter) Reads(ctx context.Context, keyID uuid.UUID, perMinute int) (Decision, error) {
	if perMinute <= 0 {
		return Decision{Allowed: true}, nil
	}
	return l.check(ctx, "reads:"+keyID.String(), redis_rate.PerMinute(perMinute), 1, apperr.RateLimited,
		fmt.Sprintf("more than %d reads per minute with this key", perMinute))
}

// Uploads checks one module upload by an account against perMinute (0:
// unlimited).
func (l *Limiter) Uploads(ctx context.Context, accountID uuid.UUID, perMinute int) (Decision, error) {
	if perMinute <= 0 {
		return Decision{Allowed: true}, nil
	}
	return l.check(ctx, "uploads-min:"+accountID.String(), redis_rate.PerMinute(perMinute), 1, apperr.RateLimited,
		fmt.Sprintf("more than %d module uploads per minute", perMinute))
}

// DeliveryRetries checks one manual webhook retry by an account against
// perMinute (0: unlimited).
func (l *Limiter) DeliveryRetries(ctx context.Context, accountID uuid.UUID, perMinute int) (Decision, error) {
	if perMinute <= 0 {
		return Decision{Allowed: true}, nil
	}
	return l.check(ctx, "delivery-retries:"+accountID.String(), redis_rate.PerMinute(perMinute), 1, apperr.RateLimited,
		fmt.Sprintf("more than %d webhook retries per minute", perMinute))
}

// Runs checks n new runs by an account against its per-minute and per-day
// limits (0: unlimited). The minute limit answers rate_limited, the day
// limit quota_exceeded.
func (l *Limiter) Runs(ctx context.Context, accountID uuid.UUID, perMinute, perDay, n int) (Decision, error) {
	d := Decision{Allowed: true}
	if perMinute > 0 {
		var err error
		d, err = l.check(ctx, "runs-min:"+accountID.String(), redis_rate.PerMinute(perMinute), n, apperr.RateLimited,
			fmt.Sprintf("more than %d runs per minute", perMinute))
		if err != nil || !d.Allowed {
			return d, err
		}
	}
	if perDay > 0 {
		day, err := l.check(ctx, "runs-day:"+accountID.String(),
			redis_rate.Limit{Rate: perDay, Burst: perDay, Period: 24 * time.Hour}, n, apperr.QuotaExceeded,
			fmt.Sprintf("more than %d runs in 24 hours", perDay))
		if err != nil || !day.Allowed {
			return day, err
		}
		if perMinute <= 0 {
			d = day
		}
	}
	return d, nil
}

func (l *Limiter) check(ctx context.Context, key string, limit redis_rate.Limit, n int, code apperr.Code, detail string) (Decision, error) {
	res, err := l.l.AllowN(ctx, l.prefix+key, limit, n)
	if err != nil {
		return Decision{}, fmt.Errorf("rate limit: %w", err)
	}
	return Decision{
		Allowed:    res.Allowed >= n,
		Limit:      limit.Burst,
		Remaining:  res.Remaining,
		RetryAfter: res.RetryAfter,
		ResetAfter: res.ResetAfter,
		Code:       code,
		Detail:     detail,
	}, nil
}

// SetHeaders writes the RateLimit-* headers (and Retry-After when refused).
func SetHeaders(h http.Header, d Decision) {
	if d.Limit == 0 {
		return
	}
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(max(d.Remaining, 0)))
	h.Set("RateLimit-Reset", strconv.Itoa(seconds(d.ResetAfter)))
	if !d.Allowed {
		h.Set("Retry-After", strconv.Itoa(max(seconds(d.RetryAfter), 1)))
	}
}

// Err is the error a refused decision answers with.
func (d Decision) Err() error {
	return apperr.New(d.Code, "%s; retry in %d s", d.Detail, max(seconds(d.RetryAfter), 1))
}

func seconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}
