package app

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/worker/diskcache"
	"github.com/wasmwizard/wasmwizard/worker/modstore"
)

// cacheSweepInterval is the pause between two sweeps of the worker's disk
// caches.
const cacheSweepInterval = time.Minute

// cacheMetrics registers the sizes of the worker's disk caches; it returns
// the compilation cache's gauge, which each sweep sets.
func cacheMetrics(reg prometheus.Registerer, mods *modstore.Store) prometheus.Gauge {
	compiled := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wasmwizard_compile_cache_bytes",
		Help: "Bytes in wazero's on-disk compilation cache after the last sweep (bound: WIZARD_COMPILE_CACHE_BYTES).",
	})
	reg.MustRegister(compiled, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "wasmwizard_module_store_bytes",
		Help: "Bytes of module files in the worker's local store (bound: WIZARD_MODULE_CACHE_BYTES).",
	}, func() float64 { return float64(mods.Bytes()) }))
	return compiled
}

// sweepCaches runs until ctx ends: once at start and then every
// cacheSweepInterval, it removes the local copies of modules that no
// account holds any more (deleted), and trims wazero's compilation cache,
// which the sandbox children fill and which has no bound of its own, to
// compileCacheBytes by least recent use. (The module store keeps its own
// bound as modules come in.)
func sweepCaches(ctx context.Context, mods *modstore.Store, gone modstore.Gone, compileCache string, compileCacheBytes int64,
	compiled prometheus.Gauge, log *zap.Logger,
) {
	t := time.NewTicker(cacheSweepInterval)
	defer t.Stop()
	for {
		if n, err := mods.Sweep(ctx, gone); err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("module store sweep failed", zap.Error(err))
		} else if n > 0 {
			log.Info("removed the local copies of deleted modules", zap.Int("modules", n))
		}
		res, err := diskcache.Trim(compileCache, compileCacheBytes, time.Now())
		if err != nil {
			log.Warn("compilation cache trim failed", zap.Error(err))
		} else {
			compiled.Set(float64(res.Bytes))
		}
		if err == nil && res.Removed > 0 {
			log.Info("compilation cache trimmed", zap.Int("removed", res.Removed), zap.Int64("freed_bytes", res.Freed),
				zap.Int64("bytes", res.Bytes))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
