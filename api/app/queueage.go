package app

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
)

// queueAgeTTL is how long the API reuses its reading of the queues' oldest
// jobs: however often (and by however many Prometheus servers) the API is
// scraped, Postgres answers the query at most once per TTL per replica.
const queueAgeTTL = 5 * time.Second

// queueAge is the gauge wasmwizard_queue_oldest_job_age_seconds{queue}:
// every tier's queue (0 when it holds no queued job, so a tier created
// through the admin API shows at once), read from Postgres, the source of
// truth, not from Redis.
type queueAge struct {
	store     *store.Store
	namespace string
	log       *zap.Logger
	desc      *prometheus.Desc

	mu   sync.Mutex
	at   time.Time
	last map[string]float64
}

func newQueueAge(st *store.Store, namespace string, log *zap.Logger) *queueAge {
	return &queueAge{store: st, namespace: namespace, log: log, desc: prometheus.NewDesc(
		"wasmwizard_queue_oldest_job_age_seconds",
		"Seconds since the oldest queued job of each tier's queue was submitted (0: none queued), jobs parked at their account's concurrency limit left out, from Postgres, read at most every 5 s.",
		[]string{"queue"}, nil)}
}

func (q *queueAge) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

func (q *queueAge) Collect(ch chan<- prometheus.Metric) {
	ages, ok := q.read()
	if !ok {
		return // no sample rather than a wrong one; wasmwizard_dependency_up says why
	}
	for queue, age := range ages {
		ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, age, queue)
	}
}

func (q *queueAge) read() (map[string]float64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.last != nil && time.Since(q.at) < queueAgeTTL {
		return q.last, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	tiers, err := q.store.ListTiers(ctx)
	var ages []store.QueueAge
	if err == nil {
		ages, err = q.store.OldestQueued(ctx)
	}
	if err != nil {
		q.log.Debug("queue ages not read", zap.Error(err))
		return nil, false
	}
	m := make(map[string]float64, len(tiers)+len(ages))
	for _, t := range tiers {
		m[tasks.TierQueue(q.namespace, t.Name)] = 0
	}
	for _, a := range ages {
		m[a.Queue] = a.Seconds
	}
	q.last, q.at = m, time.Now()
	return m, true
}
