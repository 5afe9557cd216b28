// Package redisconn opens the Redis client both binaries share with asynq.
//
// The client is built from a redis:// or rediss:// URL (user name, password,
// database and TLS included), with timeouts short enough that an outage
// surfaces as an error within a second or two rather than a hang.
package redisconn

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Open parses url and returns a client; it does not connect.
func Open(url string) (*redis.Client, error) {
	opt, err := options(url)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opt), nil
}

// OpenPool is Open with a pool of size connections: a client of its own
// for a use that holds connections while it waits (blocking reads), so
// that it cannot starve the shared client's other uses.
func OpenPool(url string, size int) (*redis.Client, error) {
	opt, err := options(url)
	if err != nil {
		return nil, err
	}
	opt.PoolSize = size
	return redis.NewClient(opt), nil
}

func options(url string) (*redis.Options, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("WIZARD_REDIS_URL: %w", err)
	}
	opt.DialTimeout = time.Second
	opt.ReadTimeout = 2 * time.Second
	opt.WriteTimeout = 2 * time.Second
	// One quick retry, not go-redis's default three with backoff: an outage
	// must surface as an error well within a second.
	opt.MaxRetries = 1
	opt.MinRetryBackoff = 8 * time.Millisecond
	opt.MaxRetryBackoff = 64 * time.Millisecond
	return opt, nil
}

// Connect opens a client, checks within 5 s that Redis answers, and checks
// its eviction policy (CheckConfig).
func Connect(ctx context.Context, url string, log *zap.Logger) (*redis.Client, error) {
	rdb, err := Open(url)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("ping redis: %w", err)
	}
	CheckConfig(pctx, rdb, log)
	return rdb, nil
}

// CheckConfig warns loudly when Redis may evict keys: asynq's tasks would
// silently disappear (the reconciler re-enqueues them, but only after a
// delay). A managed Redis that hides CONFIG is reported at info level.
func CheckConfig(ctx context.Context, rdb redis.UniversalClient, log *zap.Logger) {
	res, err := rdb.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		log.Info("could not read Redis maxmemory-policy; make sure it is noeviction", zap.Error(err))
		return
	}
	policy := res["maxmemory-policy"]
	if policy != "" && !strings.EqualFold(policy, "noeviction") {
		log.Warn("REDIS MAY EVICT QUEUED TASKS: maxmemory-policy is not noeviction; set `maxmemory-policy noeviction`",
			zap.String("maxmemory-policy", policy))
	}
}
