package delivery

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// ErrAccountBusy is returned for a delivery whose account already has its
// limit of deliveries in flight: asynq puts the task back for a moment
// (RetryDelay) without counting it as a failure (IsFailure), and the slot it
// would have held goes to another account's delivery.
var ErrAccountBusy = errors.New("the account has its limit of webhook deliveries in flight")

// AccountSlots limits how many deliveries of one account are in flight at
// once across every worker (a sorted set per account in Redis, each member a
// send whose score is when its lease ends, so a worker that dies mid-send
// frees its slot after the lease).
type AccountSlots struct {
	rdb    redis.UniversalClient
	prefix string
	limit  int
	lease  time.Duration
}

// SlotLease is how long a slot is held at most: a send is limited to 10 s,
// and its database writes to 10 s more. A worker killed mid-send frees its
// slots when the lease ends.
const SlotLease = 30 * time.Second

// NewAccountSlots returns slots of limit per account, keys under prefix;
// lease must outlast a send (SlotLease).
func NewAccountSlots(rdb redis.UniversalClient, prefix string, limit int, lease time.Duration) *AccountSlots {
	return &AccountSlots{rdb: rdb, prefix: prefix + "webhook-slots:", limit: max(limit, 1), lease: lease}
}

// acquireScript drops expired members, then adds ARGV[3] if there are fewer
// than ARGV[2]. KEYS[1] the set; ARGV[1] now (ms), ARGV[4] the lease end (ms),
// ARGV[5] the key's expiry (ms).
var acquireScript = redis.NewScript(`
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", ARGV[1])
if redis.call("ZCARD", KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call("ZADD", KEYS[1], ARGV[4], ARGV[3])
redis.call("PEXPIRE", KEYS[1], ARGV[5])
return 1`)

// Acquire takes a slot of the account; ok is false when it has none free.
// release gives the slot back.
func (a *AccountSlots) Acquire(ctx context.Context, account uuid.UUID) (release func(), ok bool, err error) {
	key := a.prefix + account.String()
	token := uuid.NewString()
	now := time.Now()
	n, err := acquireScript.Run(ctx, a.rdb, []string{key}, now.UnixMilli(), a.limit, token,
		now.Add(a.lease).UnixMilli(), strconv.FormatInt(a.lease.Milliseconds()*2, 10)).Int()
	if err != nil {
		return nil, false, fmt.Errorf("webhook slots: %w", err)
	}
	if n == 0 {
		return nil, false, nil
	}
	return func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = a.rdb.ZRem(rctx, key, token).Err() // on failure the lease ends it
	}, true, nil
}
