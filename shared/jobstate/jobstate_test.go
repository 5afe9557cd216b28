package jobstate_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/jobstate"
)

func TestStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status          jobstate.Status
		valid, terminal bool
	}{
		{jobstate.Queued, true, false},
		{jobstate.Running, true, false},
		{jobstate.Succeeded, true, true},
		{jobstate.Failed, true, true},
		{jobstate.TimedOut, true, true},
		{jobstate.Cancelled, true, true},
		{"", false, false},
		{"done", false, false},
		{"Succeeded", false, false},
	} {
		require.Equal(t, tc.valid, tc.status.Valid(), "%q", tc.status)
		require.Equal(t, tc.terminal, tc.status.Terminal(), "%q", tc.status)
	}
}
