//go:build !unix

package fdlimit

// Recommended is the limit below which a binary logs a warning at start.
const Recommended = 65536

// Raise does nothing where there is no RLIMIT_NOFILE; it reports the
// recommended limit so that no warning is logged.
func Raise() (uint64, error) { return Recommended, nil }
