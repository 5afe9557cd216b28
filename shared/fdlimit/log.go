package fdlimit

import "go.uber.org/zap"

// RaiseAndLog raises the limit at a binary's start and logs the result: a
// warning when it could not be raised or stays below Recommended.
func RaiseAndLog(log *zap.Logger) {
	n, err := Raise()
	switch {
	case err != nil:
		log.Warn("could not raise the open file limit", zap.Uint64("open_files_limit", n), zap.Error(err))
	case n < Recommended:
		log.Warn("the open file limit is low: every connection takes one; raise the hard limit (ulimit -Hn, LimitNOFILE, the container runtime's nofile)",
			zap.Uint64("open_files_limit", n), zap.Uint64("recommended", Recommended))
	default:
		log.Info("open file limit", zap.Uint64("open_files_limit", n))
	}
}
