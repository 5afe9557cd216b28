package store_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

// blobAndModuleWriters are the transactions that wrote the account's blob
// of sum and module m.
func blobAndModuleWriters(t *testing.T, st *store.Store, m store.Module) (blob, module string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, st.DB().GetContext(ctx, &blob, `SELECT xmin::text FROM module_blobs WHERE account_id = $1 AND sha256 = $2`,
		m.AccountID, m.SHA256))
	require.NoError(t, st.DB().GetContext(ctx, &module, `SELECT xmin::text FROM modules WHERE id = $1`, m.ID))
	return blob, module
}

// An upload of bytes another account already holds does the writes of a new
// upload: its own transaction inserts the bytes, so that its cost does not
// tell whether they exist elsewhere.
func TestUploadOfBytesAnotherAccountHoldsWritesTheBlob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testenv.Store(t)
	content := []byte("\x00asm\x01\x00\x00\x00 shared by two tenants")
	sum := sha256.Sum256(content)
	for i := range 2 {
		a, err := st.CreateAccount(ctx, store.Actor{Name: "t"}, fmt.Sprint("tenant", i), "free")
		require.NoError(t, err)
		m, created, err := st.CreateModule(ctx, store.Actor{Name: "t"}, a.ID, "m", content, wasmmeta.Meta{})
		require.NoError(t, err)
		require.True(t, created)
		blob, module := blobAndModuleWriters(t, st, m)
		require.Equal(t, module, blob, "upload %d did not write the blob itself", i)
		var rows, bytes int64
		require.NoError(t, st.DB().QueryRowxContext(ctx, `
			SELECT count(*), coalesce(sum(octet_length(content)), 0) FROM module_blobs WHERE sha256 = $1`, sum[:]).Scan(&rows, &bytes))
		require.EqualValues(t, i+1, rows, "one copy per account")
		require.EqualValues(t, (i+1)*len(content), bytes)
	}
	got, err := st.ModuleContent(ctx, sum[:])
	require.NoError(t, err)
	require.Equal(t, content, got)
}

func TestModuleQuota(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, a := testenv.StoreWithAccount(t)
	create := func(content string, q store.ModuleQuota) (store.Module, bool, error) {
		return st.CreateModuleWithin(ctx, store.Actor{Name: "t"}, a.ID, "", []byte(content), wasmmeta.Meta{}, q)
	}
	// Two modules of 10 bytes.
	q := store.ModuleQuota{MaxModules: 2}
	first, created, err := create("0123456789", q)
	require.NoError(t, err)
	require.True(t, created)
	_, _, err = create("abcdefghij", q)
	require.NoError(t, err)
	_, _, err = create("third.....", q)
	require.Equal(t, apperr.QuotaExceeded, apperr.CodeOf(err), "%v", err)
	// Bytes the account already holds cost nothing.
	again, created, err := create("0123456789", q)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first.ID, again.ID)
	// A deleted module gives its place back.
	_, err = st.DeleteModule(ctx, store.Actor{Name: "t"}, a.ID, first.ID)
	require.NoError(t, err)
	_, _, err = create("third.....", q)
	require.NoError(t, err)

	// Bytes: 20 held, 5 more fit in 25, 6 do not.
	bq := store.ModuleQuota{MaxStorageBytes: 25}
	_, _, err = create("sixsix", bq)
	require.Equal(t, apperr.QuotaExceeded, apperr.CodeOf(err), "%v", err)
	_, created, err = create("five5", bq)
	require.NoError(t, err)
	require.True(t, created)

	// GET /v1/account shows what the quota counts.
	u, err := st.AccountUsage(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, 3, u.Modules)
	require.EqualValues(t, 25, u.ModuleBytes)
}

// Concurrent uploads cannot pass the quota together.
func TestModuleQuotaUnderConcurrentUploads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, a := testenv.StoreWithAccount(t)
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		created, denied int
	)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := st.CreateModuleWithin(ctx, store.Actor{Name: "t"}, a.ID, "", []byte(fmt.Sprint("module ", i)),
				wasmmeta.Meta{}, store.ModuleQuota{MaxModules: 3})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && ok:
				created++
			case apperr.CodeOf(err) == apperr.QuotaExceeded:
				denied++
			default:
				t.Errorf("upload %d: created %v, %v", i, ok, err)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 3, created)
	require.Equal(t, 5, denied)
}
