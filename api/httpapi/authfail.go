package httpapi

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/store"
)

const (
	// DefaultAuthFailureWindow is the period over which failed
	// authentications of one source address are counted and audited
	// together.
	DefaultAuthFailureWindow = time.Minute
	// authFailureAddresses bounds the addresses counted at once per action;
	// failures from further addresses are counted under otherAddresses.
	authFailureAddresses = 10000
	// authFailurePrefixes bounds the key prefixes counted per address.
	authFailurePrefixes = 16
	otherAddresses      = "other"
	reasonUnknownKey    = "unknown_or_revoked"
	reasonThrottled     = "throttled"
)

// authFailures counts failed authentications per (action, source address)
// and window. The first failure of an address in a window is audited at
// once, as one row like any other; the failures after it are only counted,
// and written as one summary row (data.aggregated, data.count, per reason
// and per key prefix) when the window ends. An address that sends more
// unknown keys in a window than limit is refused further lookups until it
// ends (throttled). Memory is bounded: at most authFailureAddresses entries
// per action and authFailurePrefixes prefixes per entry.
type authFailures struct {
	store  *store.Store
	log    *zap.Logger
	window time.Duration
	limit  int // unknown keys per address and window (0: no limit)

	mu      sync.Mutex
	entries map[authFailureKey]*authFailureEntry
	perAct  map[string]int
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

type authFailureKey struct{ action, ip string }

type authFailureEntry struct {
	start         time.Time
	unknown       int            // unknown or revoked keys in the window, the first failure included
	later         int            // failures after the first, not yet written
	reasons       map[string]int // of the later ones
	prefixes      map[string]int // of the later ones
	otherPrefixes int
}

func newAuthFailures(st *store.Store, log *zap.Logger, window time.Duration, limit int) *authFailures {
	if window <= 0 {
		window = DefaultAuthFailureWindow
	}
	a := &authFailures{store: st, log: log, window: window, limit: limit,
		entries: map[authFailureKey]*authFailureEntry{}, perAct: map[string]int{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go a.flushLoop()
	return a
}

// record counts one failure and audits it when it is its address's first
// in the window. data holds the row's fields (reason, method, path, ...).
func (a *authFailures) record(ctx context.Context, action, ip, reason, prefix, requestID string, data map[string]any) {
	now := time.Now()
	a.mu.Lock()
	k := authFailureKey{action, ip}
	e := a.entries[k]
	var expired *authFailureEntry
	if e != nil && now.Sub(e.start) >= a.window {
		expired, e = e, nil
		a.remove(k)
	}
	if e == nil && a.perAct[action] >= authFailureAddresses {
		k.ip = otherAddresses
		e = a.entries[k]
	}
	first := e == nil
	if first {
		e = &authFailureEntry{start: now}
		a.entries[k] = e
		a.perAct[action]++
	} else {
		e.later++
		if e.reasons == nil {
			e.reasons, e.prefixes = map[string]int{}, map[string]int{}
		}
		e.reasons[reason]++
		if prefix != "" {
			if _, ok := e.prefixes[prefix]; ok || len(e.prefixes) < authFailurePrefixes {
				e.prefixes[prefix]++
			} else {
				e.otherPrefixes++
			}
		}
	}
	if reason == reasonUnknownKey {
		e.unknown++
	}
	a.mu.Unlock()

	if expired != nil {
		a.writeSummary(ctx, k.action, ip, expired)
	}
	if first {
		data["remote_ip"] = k.ip
		if err := a.write(ctx, store.Event{Actor: store.Actor{Name: "anonymous", RequestID: requestID},
			Action: action, SubjectType: "request", Data: data}); err != nil {
			a.log.Warn("could not audit an authentication failure", zap.Error(err))
		}
	}
}

// throttled says whether ip has sent more unknown keys than the limit in
// its current window, and how long until the window ends.
func (a *authFailures) throttled(ip string) (time.Duration, bool) {
	if a.limit <= 0 {
		return 0, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.entries[authFailureKey{"auth.failed", ip}]
	if e == nil || e.unknown < a.limit {
		return 0, false
	}
	left := time.Until(e.start.Add(a.window))
	return left, left > 0
}

func (a *authFailures) remove(k authFailureKey) {
	delete(a.entries, k)
	a.perAct[k.action]--
}

func (a *authFailures) flushLoop() {
	defer close(a.done)
	t := time.NewTicker(max(a.window/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			a.flush(true)
			return
		case <-t.C:
			a.flush(false)
		}
	}
}

// flush writes the summaries of the windows that ended (all of them when
// final) and forgets those entries.
func (a *authFailures) flush(final bool) {
	type pending struct {
		k authFailureKey
		e *authFailureEntry
	}
	var out []pending
	now := time.Now()
	a.mu.Lock()
	for k, e := range a.entries {
		if final || now.Sub(e.start) >= a.window {
			a.remove(k)
			out = append(out, pending{k, e})
		}
	}
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, p := range out {
		a.writeSummary(ctx, p.k.action, p.k.ip, p.e)
	}
}

func (a *authFailures) writeSummary(ctx context.Context, action, ip string, e *authFailureEntry) {
	if e.later == 0 {
		return
	}
	data := map[string]any{"aggregated": true, "remote_ip": ip, "count": e.later, "reasons": e.reasons,
		"window_start": e.start.UTC().Format(time.RFC3339Nano), "window_seconds": a.window.Seconds()}
	if len(e.prefixes) > 0 {
		data["key_prefixes"] = e.prefixes
	}
	if e.otherPrefixes > 0 {
		data["other_key_prefixes"] = e.otherPrefixes
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.write(ctx, store.Event{Actor: store.Actor{Name: "anonymous"}, Action: action,
		SubjectType: "request", Data: data}); err != nil {
		a.log.Warn("could not audit repeated authentication failures", zap.Int("count", e.later), zap.Error(err))
	}
}

func (a *authFailures) write(ctx context.Context, ev store.Event) error {
	if a.store == nil {
		return nil
	}
	return a.store.Audit(ctx, ev)
}

// close writes every pending summary and stops the flusher.
func (a *authFailures) close() {
	a.once.Do(func() { close(a.stop) })
	<-a.done
}
