package testenv

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

// Module stores wasm as the module name of the account accountID, with
// empty metadata, and returns it.
func Module(t testing.TB, st *store.Store, accountID uuid.UUID, name string, wasm []byte) store.Module {
	t.Helper()
	m, _, err := st.CreateModule(context.Background(), store.Actor{Name: "t"}, accountID, name, wasm, wasmmeta.Meta{})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return m
}

// StoreWithModule returns StoreWithAccount(t) and the account's module
// "hello", the fixtures.Hello program.
func StoreWithModule(t testing.TB) (*store.Store, store.Account, store.Module) {
	t.Helper()
	st, a := StoreWithAccount(t)
	return st, a, Module(t, st, a.ID, "hello", fixtures.Bytes(fixtures.Hello))
}

// Finish claims the queued job id as worker "w" and ends that first
// attempt with out. A job with a webhook URL then has its delivery.
func Finish(t testing.TB, st *store.Store, id uuid.UUID, out jobstate.Outcome) {
	t.Helper()
	ctx := context.Background()
	if _, err := st.ClaimJob(ctx, id, "w"); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	ok, err := st.FinishJob(ctx, id, 1, "w", out)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if !ok {
		t.Fatalf("testenv: job %s was not finished", id)
	}
}

// FinishedJob stores j as a new job and Finishes it with out; it returns
// the job as created.
func FinishedJob(t testing.TB, st *store.Store, j store.Job, out jobstate.Outcome) store.Job {
	t.Helper()
	j, err := st.CreateJob(context.Background(), store.Actor{Name: "t"}, j)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	Finish(t, st, j.ID, out)
	return j
}
