package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

// Concurrent submits with one Idempotency-Key, more of them than the pool
// has connections, on a Store that has not prepared the job insert yet: the
// transaction holding the key must not need a second connection (to prepare
// the insert) while the others hold every connection waiting for its key.
// Before, this hung until the deadline.
func TestIdempotentSubmitsDoNotDeadlockASmallPool(t *testing.T) {
	t.Parallel()
	url := testenv.DB(t)
	ctx := context.Background()
	setupStore, err := store.Open(ctx, url, 4)
	require.NoError(t, err)
	a, err := setupStore.CreateAccount(ctx, store.Actor{Name: "test"}, "acct", "free")
	require.NoError(t, err)
	m, _, err := setupStore.CreateModule(ctx, store.Actor{Name: "test"}, a.ID, "hello", fixtures.Bytes(fixtures.Hello),
		wasmmeta.Meta{Imports: []wasmmeta.Import{}, Exports: []wasmmeta.Export{{Name: "_start", Kind: "function"}}, WASI: true})
	require.NoError(t, err)
	require.NoError(t, setupStore.Close())

	for _, limit := range []int{0, 5} {
		st, err := store.Open(ctx, url, 3) // cold: nothing prepared
		require.NoError(t, err)
		b := bundle{st: st, account: a, module: m}
		b.setLimit(t, limit)
		j := b.request()
		// A hang is the failure: the deadline only ends the test.
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		var wg sync.WaitGroup
		ids := make([]string, 8)
		errs := make([]error, 8)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, _, err := st.CreateJobIdempotent(dctx, store.Actor{Name: "test"}, j, "same-key-"+string(rune('a'+limit)), []byte("h"))
				ids[i], errs[i] = got.ID.String(), err
			}()
		}
		wg.Wait()
		cancel()
		for i := range ids {
			require.NoError(t, errs[i], "submit %d (limit %d)", i, limit)
			require.Equal(t, ids[0], ids[i], "every submit answers the one job")
		}
		require.NoError(t, st.Close())
	}
}
