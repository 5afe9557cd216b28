//go:build unix

// Package fdlimit raises the process's limit on open files (RLIMIT_NOFILE)
// at start.
//
// Every client connection of the API and every connection, pipe and file of
// the worker is a descriptor, and a process that reaches the limit can no
// longer accept connections, its health checks included.
package fdlimit

import "syscall"

// Recommended is the limit below which a binary logs a warning at start.
const Recommended = 65536

// Raise lifts the soft limit on open files to the hard limit, which only
// the environment can raise (ulimit -Hn, systemd's LimitNOFILE, the
// container runtime), and returns the limit in force afterwards.
func Raise() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur >= l.Max {
		return l.Cur, nil
	}
	raised := syscall.Rlimit{Cur: l.Max, Max: l.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
		return l.Cur, err
	}
	return raised.Cur, nil
}
