package app

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/worker/diskcache"
	"github.com/wasmwizard/wasmwizard/worker/modstore"
)

// cacheSweepInterval is the pause between two sweeps of the worker's disk
// caches.
const cacheSweepInterval = time.Minute

// sweepCaches runs until ctx ends: once at start and then every
// cacheSweepInterval, it removes the local copies of modules that no
// account holds any more (deleted), and trims wazero's compilation cache,
// which the sandbox children fill and which has no bound of its own, to
// compileCacheBytes by least recent use. (The module store keeps its own
// bound as modules come in.)
func sweepCaches(ctx context.Context, mods *modstore.Store, gone modstore.Gone, compileCache string, compileCacheBytes int64, log *zap.Logger) {
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
		} else if res.Removed > 0 {
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
