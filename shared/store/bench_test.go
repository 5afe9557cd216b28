package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/store"
)

// Hot paths of every request and every job, against the local Postgres:
//
//	go test -run '^$' -bench . -benchtime 2000x ./shared/store/

func BenchmarkLookupKey(b *testing.B) {
	ctx := context.Background()
	bd := setupB(b)
	_, plain, err := bd.st.CreateKey(ctx, store.Actor{Name: "b"}, bd.account.ID, "bench")
	require.NoError(b, err)
	for b.Loop() {
		if _, err := bd.st.LookupKey(ctx, plain); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCreateJob(b *testing.B) {
	bd := setupB(b)
	for b.Loop() {
		bd.job(b)
	}
}

func BenchmarkClaimAndFinishJob(b *testing.B) {
	ctx := context.Background()
	bd := setupB(b)
	zero := 0
	res := store.Result{Status: store.StatusSucceeded, ExitCode: &zero, Stdout: []byte("hello, world\n")}
	for b.Loop() {
		b.StopTimer()
		j := bd.job(b)
		b.StartTimer()
		if _, err := bd.st.ClaimJob(ctx, j.ID, "w"); err != nil {
			b.Fatal(err)
		}
		if ok, err := bd.st.FinishJob(ctx, j.ID, 1, "w", res); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
