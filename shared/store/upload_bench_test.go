package store_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

// The cost of storing a new 8 MiB module when no account has its bytes
// ("new") and when another account already has them ("held"): the two must
// not differ (an upload's timing must not tell whether another tenant holds
// a module; docs/SECURITY.md). The two kinds alternate, each upload by a
// fresh account and of fresh random bytes, so that drift in the machine's
// load falls on both alike; the medians are reported.
//
//	go test -run '^$' -bench CreateModule8MiB -benchtime 40x ./shared/store/
func BenchmarkCreateModule8MiB(b *testing.B) {
	ctx := context.Background()
	st := testenv.Store(b)
	content := make([]byte, 8<<20)
	n := 0
	account := func() store.Account {
		n++
		a, err := st.CreateAccount(ctx, store.Actor{Name: "b"}, fmt.Sprint("acct", n), "free")
		require.NoError(b, err)
		return a
	}
	var times [2][]time.Duration
	b.ResetTimer()
	for i := range b.N {
		held := i%2 == 1
		b.StopTimer()
		_, _ = rand.Read(content)
		if held {
			_, _, err := st.CreateModule(ctx, store.Actor{Name: "b"}, account().ID, "", content, wasmmeta.Meta{})
			require.NoError(b, err)
		}
		a := account()
		b.StartTimer()
		start := time.Now()
		_, created, err := st.CreateModule(ctx, store.Actor{Name: "b"}, a.ID, "", content, wasmmeta.Meta{})
		if err != nil || !created {
			b.Fatal(created, err)
		}
		k := 0
		if held {
			k = 1
		}
		times[k] = append(times[k], time.Since(start))
	}
	for k, name := range []string{"new-median-ms", "held-median-ms"} {
		if len(times[k]) > 0 {
			slices.Sort(times[k])
			b.ReportMetric(float64(times[k][len(times[k])/2].Microseconds())/1000, name)
		}
	}
}
