// Package oslimit holds the OS limits child processes put on themselves
// before untrusted bytes.
//
// The children are the worker's sandbox children and the API's upload-check
// children.
package oslimit

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// LimitMemory caps this process's private writable memory (heap, anonymous
// mappings) at mb MiB: past it allocations fail and the Go runtime dies
// with "out of memory" instead of exhausting the machine. It uses
// RLIMIT_DATA rather than RLIMIT_AS because the Go runtime reserves over a
// GiB of address space it never uses. mb <= 0 sets nothing.
func LimitMemory(mb int) error {
	if mb <= 0 {
		return nil
	}
	lim := uint64(mb) << 20
	if err := unix.Setrlimit(unix.RLIMIT_DATA, &unix.Rlimit{Cur: lim, Max: lim}); err != nil {
		return fmt.Errorf("setrlimit RLIMIT_DATA %d MiB: %w", mb, err)
	}
	return nil
}

// NotDumpable keeps other processes of the same user from reading this
// one's memory or environment through /proc or ptrace.
func NotDumpable() { _ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0) }

// PreferOOMKill makes this process the first the kernel's OOM killer
// chooses (oom_score_adj 1000), so that when a container's memory runs out
// it takes this child rather than the service that started it. Raising
// one's own score needs no privilege; failure is ignored.
func PreferOOMKill() { _ = os.WriteFile("/proc/self/oom_score_adj", []byte("1000"), 0) }
