package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// The fair claim with many accounts waiting in one queue: each step
// submits a job for a random one of 50 accounts (20 jobs queued each),
// claims the fairest job with the new job's delivery, and finishes it, so
// the queue stays as deep. What pick_fair_job costs per claim grows with
// the accounts it ranks (docs/BENCHMARKS.md, "Postgres execution time by
// statement").
//
//	go test -run '^$' -bench 'FairClaim' -count 6 ./shared/store/
func BenchmarkFairClaimManyAccounts(b *testing.B) {
	ctx := context.Background()
	bd := setupB(b)
	bd.setLimit(b, 0) // the pick's cost alone
	accounts := []bundle{bd}
	for i := range 49 {
		accounts = append(accounts, bd.otherAccount(b, fmt.Sprintf("acct%d", i)))
	}
	for _, a := range accounts {
		for range 20 {
			a.create(b)
		}
	}
	zero := 0
	res := jobstate.Outcome{Status: jobstate.Succeeded, ExitCode: &zero, Stdout: []byte("hello, world\n")}
	b.ResetTimer()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			j := accounts[rand.IntN(len(accounts))].create(b) //nolint:gosec // spreads load
			c, err := bd.st.ClaimFairJob(ctx, j.ID, "w")
			if errors.Is(err, store.ErrJobBusy) {
				continue // another client claimed the pick first, as a delivery would find
			}
			if err != nil {
				b.Fatal(err)
			}
			if ok, err := bd.st.FinishJob(ctx, c.ID, c.Attempts, "w", res); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
}
