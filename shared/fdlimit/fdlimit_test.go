//go:build unix

package fdlimit_test

import (
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/fdlimit"
)

// A soft limit below the hard one is raised to it. (The only test of this
// package: it lowers the process's own limit first.)
func TestRaiseLiftsTheSoftLimitToTheHardLimit(t *testing.T) {
	var l syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l))
	if l.Max <= 256 {
		t.Skipf("hard limit %d: nothing to lower", l.Max)
	}
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 256, Max: l.Max}))

	n, err := fdlimit.Raise()
	require.NoError(t, err)
	require.Equal(t, l.Max, n)
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l))
	require.Equal(t, l.Max, l.Cur)

	n, err = fdlimit.Raise()
	require.NoError(t, err, "raising an already raised limit changes nothing")
	require.Equal(t, l.Max, n)
}
