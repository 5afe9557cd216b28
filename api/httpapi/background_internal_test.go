package httpapi

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
)

// A key's use is recorded in the background; Close waits for the records
// under way, and once closed the server starts no more.
func TestCloseWaitsForKeyUseRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testenv.Store(t)
	s := New(Deps{Store: st, Log: zap.NewNop(), Registry: prometheus.NewRegistry(), Queue: testenv.Namespace(t) + "jobs"})
	acct, err := st.CreateAccount(ctx, store.Actor{Name: "t"}, "a", "free")
	require.NoError(t, err)
	newKey := func() string {
		_, key, err := st.CreateKey(ctx, store.Actor{Name: "t"}, acct.ID, "")
		require.NoError(t, err)
		return key
	}
	lookup := func(key string) store.Principal {
		p, err := st.LookupKey(ctx, key)
		require.NoError(t, err)
		return p
	}

	first := newKey()
	p := lookup(first)
	require.Nil(t, p.LastUsedAt, "a new key was never used")
	s.recordUse(p)
	s.Close()
	require.NotNil(t, lookup(first).LastUsedAt, "Close returned before the key's use was recorded")

	second := newKey()
	s.recordUse(lookup(second))
	require.Nil(t, lookup(second).LastUsedAt, "a closed server recorded a use")
}
