package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/store"
)

func TestOneRoundTrip(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://u:p@db:5432/app?sslmode=disable": "postgres://u:p@db:5432/app?binary_parameters=yes&sslmode=disable",
		"postgresql://db/app":                        "postgresql://db/app?binary_parameters=yes",
		"host=db dbname=app sslmode=disable":         "host=db dbname=app sslmode=disable binary_parameters=yes",
		"postgres://db/app?binary_parameters=no":     "postgres://db/app?binary_parameters=no",
		"host=db binary_parameters=no":               "host=db binary_parameters=no",
		"":                                           "binary_parameters=yes",
	} {
		require.Equal(t, want, store.OneRoundTrip(in), in)
	}
}

// Every kind of parameter the store sends (bytea as binary, jsonb, arrays,
// uuids, text) survives the one-round-trip protocol: a job written with all
// of them reads back the same.
func TestParametersSurviveOneRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	j := store.Job{
		AccountID: b.account.ID, ModuleID: b.module.ID, ModuleSHA256: b.module.SHA256, Queue: "q",
		Function: "_start", TimeoutMS: 1000, MemoryLimitMB: 16, MaxOutputBytes: 100,
		Stdin:    []byte{0, 1, 2, 0xff, '\\', 'x'},
		Args:     store.JSON[[]string]{V: []string{"a", `b"c`, "{d}"}},
		Env:      store.JSON[map[string]string]{V: map[string]string{"K": "v'\x01"}},
		Metadata: store.JSON[map[string]string]{V: map[string]string{"order": "42"}},
	}
	created, err := b.st.CreateJob(ctx, store.Actor{Name: "test"}, j)
	require.NoError(t, err)
	got, err := b.st.GetJob(ctx, b.account.ID, created.ID)
	require.NoError(t, err)
	require.Equal(t, j.Stdin, got.Stdin)
	require.Equal(t, j.Args.V, got.Args.V)
	require.Equal(t, j.Env.V, got.Env.V)
	require.Equal(t, j.Metadata.V, got.Metadata.V)
	require.Equal(t, b.module.SHA256, got.ModuleSHA256)
}
