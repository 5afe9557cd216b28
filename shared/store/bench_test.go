package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/jobstate"
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
	res := jobstate.Outcome{Status: jobstate.Succeeded, ExitCode: &zero, Stdout: []byte("hello, world\n")}
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

// The submit and the whole lifecycle from 32 concurrent clients of one
// account, without and with a concurrency limit: the limit is taken at the
// claim (a slot taken and given back per job), so a limited account's
// submit costs what an unlimited one's does (issue: ≥ 0.9× the rate).
//
//	go test -run '^$' -bench 'Parallel' -count 6 ./shared/store/
func BenchmarkCreateJobParallel(b *testing.B) {
	for _, limit := range []int{0, 100_000} {
		b.Run(limitName(limit), func(b *testing.B) {
			bd := setupB(b)
			bd.setLimit(b, limit)
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					bd.create(b)
				}
			})
		})
	}
}

func BenchmarkJobLifecycleParallel(b *testing.B) {
	ctx := context.Background()
	zero := 0
	res := jobstate.Outcome{Status: jobstate.Succeeded, ExitCode: &zero, Stdout: []byte("hello, world\n")}
	for _, limit := range []int{0, 100_000} {
		b.Run(limitName(limit), func(b *testing.B) {
			bd := setupB(b)
			bd.setLimit(b, limit)
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					j := bd.create(b)
					if _, err := bd.st.ClaimJob(ctx, j.ID, "w"); err != nil {
						b.Fatal(err)
					}
					if ok, err := bd.st.FinishJob(ctx, j.ID, 1, "w", res); err != nil || !ok {
						b.Fatal(ok, err)
					}
				}
			})
		})
	}
}

func limitName(limit int) string {
	if limit == 0 {
		return "unlimited"
	}
	return "limited"
}

// create is the job of b.request(), created.
func (bd bundle) create(b *testing.B) store.Job {
	j, err := bd.st.CreateJob(context.Background(), store.Actor{Name: "bench"}, bd.request())
	if err != nil {
		b.Fatal(err)
	}
	return j
}
