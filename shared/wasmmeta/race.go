//go:build race

package wasmmeta

// raceBuild: the race detector's shadow memory does not fit an upload
// check's RLIMIT_DATA, so a race-instrumented (test) binary checks without
// the OS limit. Production binaries are never built with -race.
const raceBuild = true
