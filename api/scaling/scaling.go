// Package scaling turns the work Postgres says is waiting or running into
// autoscaling figures.
//
// The figures are the queued and running jobs per queue, the slots a worker
// has, and the workers that work needs. GET /v1/admin/scaling (read by the
// chart's KEDA ScaledObject) and the wasmwizard_jobs{state,queue} gauges on
// the API's /metrics are both served from one Cache, so the autoscaler and
// the dashboards see the same numbers.
package scaling

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/tasks"
)

// Defaults of Config.
const (
	DefaultTTL   = time.Second
	DefaultSlots = 2 // WIZARD_WORKER_CONCURRENCY's default
	DefaultLease = 10 * time.Second
	// readTimeout bounds one read of the figures.
	readTimeout = 2 * time.Second
)

// Where Figures.SlotsPerWorker came from.
const (
	SlotsFromWorkers = "workers" // the live workers' heartbeats
	SlotsFromConfig  = "config"  // Config.Slots: no live worker reported its slots
)

// Loader reads the load from Postgres (store.Store.ScalingLoad).
type Loader interface {
	ScalingLoad(ctx context.Context, lease time.Duration) (store.ScalingLoad, error)
}

// Config is what a Cache is built from.
type Config struct {
	Store Loader
	// Namespace is the deployment's queue namespace (WIZARD_QUEUE_NAMESPACE):
	// every tier's queue is tasks.TierQueue(Namespace, tier).
	Namespace string
	// TTL is how long one read is reused by this replica (default
	// DefaultTTL; negative: never reused).
	TTL time.Duration
	// Slots is the slots per worker assumed when no live worker has
	// reported its own (default DefaultSlots).
	Slots int
	// Lease is how old a worker's heartbeat may be for the worker to count
	// as live (WIZARD_WORKER_LEASE, default DefaultLease).
	Lease time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// QueueFigures is one queue's unfinished work.
type QueueFigures struct {
	Queued  int64 `json:"queued"`
	Running int64 `json:"running"`
}

// Figures is the answer of GET /v1/admin/scaling.
type Figures struct {
	// Queued and Running are summed over every job queue.
	Queued  int64 `json:"queued"`
	Running int64 `json:"running"`
	// SlotsPerWorker is how many jobs one worker runs at once.
	SlotsPerWorker int `json:"slots_per_worker"`
	// SlotsSource says where SlotsPerWorker came from (SlotsFromWorkers,
	// SlotsFromConfig).
	SlotsSource string `json:"slots_source"`
	// DesiredWorkers is ceil((Queued+Running)/SlotsPerWorker), at least 1:
	// the reconciler, webhook retries and pre-compiles live in workers.
	DesiredWorkers int64 `json:"desired_workers"`
	// LiveWorkers counts workers with a fresh heartbeat.
	LiveWorkers int `json:"live_workers"`
	// WebhookDeliveriesPending counts deliveries not yet delivered or
	// given up; they are sent by the workers' webhook servers and do not
	// take job slots, so they are not part of DesiredWorkers.
	WebhookDeliveriesPending int64 `json:"webhook_deliveries_pending"`
	// ByQueue holds every tier's queue (created tiers included), with
	// zeros for an idle one.
	ByQueue map[string]QueueFigures `json:"by_queue"`
	// At is when the figures were read from Postgres.
	At time.Time `json:"read_at"`
}

// Cache reads the figures at most once per TTL per replica; concurrent
// callers share one read.
type Cache struct {
	cfg Config

	mu     sync.Mutex // held during a read: callers queue behind it
	last   Figures
	lastAt time.Time
	have   bool
}

// New returns a Cache.
func New(cfg Config) *Cache {
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Slots <= 0 {
		cfg.Slots = DefaultSlots
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cache{cfg: cfg}
}

// Figures returns the figures, read from Postgres unless this replica read
// them less than TTL ago. A failed read is an error (never stale figures):
// the autoscaler then uses its fallback.
func (c *Cache) Figures(ctx context.Context) (Figures, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	if c.have && c.cfg.TTL > 0 && now.Sub(c.lastAt) < c.cfg.TTL {
		return c.last, nil
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	l, err := c.cfg.Store.ScalingLoad(ctx, c.cfg.Lease)
	if err != nil {
		return Figures{}, err
	}
	c.last, c.lastAt, c.have = Compute(l, c.cfg.Namespace, c.cfg.Slots), now, true
	c.last.At = now.UTC()
	return c.last, nil
}

// Compute makes the figures from a load: every tier's queue is listed, the
// slots come from the live workers (their smallest concurrency, so a fleet
// in the middle of a change is never undersized) or else from slots.
func Compute(l store.ScalingLoad, namespace string, slots int) Figures {
	f := Figures{ByQueue: map[string]QueueFigures{}, LiveWorkers: l.LiveWorkers,
		WebhookDeliveriesPending: l.WebhooksPending, SlotsPerWorker: slots, SlotsSource: SlotsFromConfig}
	for _, t := range l.Tiers {
		f.ByQueue[tasks.TierQueue(namespace, t)] = QueueFigures{}
	}
	for q, v := range l.Queues {
		f.ByQueue[q] = QueueFigures{Queued: v.Queued, Running: v.Running}
		f.Queued += v.Queued
		f.Running += v.Running
	}
	if l.MinSlots > 0 {
		f.SlotsPerWorker, f.SlotsSource = l.MinSlots, SlotsFromWorkers
	}
	f.DesiredWorkers = DesiredWorkers(f.Queued+f.Running, f.SlotsPerWorker)
	return f
}

// DesiredWorkers is ceil(work/slots), at least 1.
func DesiredWorkers(work int64, slots int) int64 {
	if slots <= 0 {
		slots = 1
	}
	n := (work + int64(slots) - 1) / int64(slots)
	return max(n, 1)
}

// collector exports the cached figures as wasmwizard_jobs{state,queue}.
type collector struct {
	c    *Cache
	desc *prometheus.Desc
}

// JobsMetric is the name of the gauge of queued and running jobs.
const JobsMetric = "wasmwizard_jobs"

// Collector is the wasmwizard_jobs{state="queued"|"running",queue} gauges,
// read through the cache at each scrape. A scrape that cannot read
// Postgres exports none of these samples (the rest of /metrics is still
// served; an alert on absent(wasmwizard_jobs) sees it).
func (c *Cache) Collector() prometheus.Collector {
	return &collector{c: c, desc: prometheus.NewDesc(JobsMetric,
		"Jobs queued and running per job queue (one per tier), from Postgres; the figures of GET /v1/admin/scaling.",
		[]string{"state", "queue"}, nil)}
}

func (m *collector) Describe(ch chan<- *prometheus.Desc) { ch <- m.desc }

func (m *collector) Collect(ch chan<- prometheus.Metric) {
	f, err := m.c.Figures(context.Background())
	if err != nil {
		return
	}
	queues := make([]string, 0, len(f.ByQueue))
	for q := range f.ByQueue {
		queues = append(queues, q)
	}
	sort.Strings(queues)
	for _, q := range queues {
		v := f.ByQueue[q]
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.GaugeValue, float64(v.Queued), "queued", q)
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.GaugeValue, float64(v.Running), "running", q)
	}
}
