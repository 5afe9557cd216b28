// Package clienttest starts the real platform for the tests of the Go SDK and CLI.
//
// It runs the API and a worker in process, on their own Postgres database
// and Redis namespace. It is for tests only: it imports the server
// packages, which the SDK itself never does.
package clienttest

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/api/app"
	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/platformtest/testmain"
	"github.com/wasmwizard/wasmwizard/shared/config"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	workerapp "github.com/wasmwizard/wasmwizard/worker/app"
)

// AdminToken is the platform's admin token.
const AdminToken = "clienttest-admin-token-0123456789"

// Platform is a running API and worker.
type Platform struct {
	URL   string
	Admin *client.Admin
	n     atomic.Int64
}

// ChildMain runs the child processes the platform spawns from the test
// binary (sandbox children, upload checks); call it first in TestMain:
//
//	if code, ok := clienttest.ChildMain(); ok { os.Exit(code) }
func ChildMain() (code int, ok bool) { return testmain.ChildMain() }

// Start starts the platform for tb (a *testing.T, or a testenv.Scope in
// TestMain); it stops when tb's cleanups run. Rate limits of the built-in
// tiers are lifted: tests of limits make tiers of their own.
func Start(tb testing.TB) *Platform {
	tb.Helper()
	ctx := context.Background()
	common := config.Common{
		DatabaseURL: testenv.DB(tb), RedisURL: testenv.RedisURL(), QueueNamespace: testenv.Namespace(tb),
		LogLevel: "warn", LogFormat: "json", DBMaxOpenConns: 6,
	}
	api, err := app.Start(ctx, config.API{Common: common, HTTPAddr: "127.0.0.1:0", AdminToken: AdminToken,
		ShutdownTimeout: 5 * time.Second, EnqueueTimeout: 2 * time.Second}, zap.NewNop())
	if err != nil {
		tb.Fatalf("start api: %v", err)
	}
	w, err := workerapp.Start(ctx, config.Worker{Common: common, HTTPAddr: "127.0.0.1:0", Concurrency: 2,
		DataDir: tb.TempDir(), PollInterval: 10 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
		SandboxMemoryMB: 2048}, zap.NewNop())
	if err != nil {
		_ = api.Shutdown(ctx)
		tb.Fatalf("start worker: %v", err)
	}
	tb.Cleanup(func() {
		w.Shutdown()
		_ = api.Shutdown(context.Background())
	})
	p := &Platform{URL: "http://" + api.Addr()}
	p.Admin, err = client.NewAdmin(p.URL, AdminToken)
	if err != nil {
		tb.Fatalf("admin client: %v", err)
	}
	for _, tier := range []string{"free", "basic", "pro"} {
		if _, err := p.Admin.UpdateTier(ctx, tier, client.Tier{"runs_per_minute": 1000000, "runs_per_day": 1000000,
			"max_concurrent_runs": 100000, "reads_per_minute": 1000000, "uploads_per_minute": 0,
			"max_modules": 0, "max_module_storage_bytes": 0}); err != nil {
			tb.Fatalf("lift the limits of tier %s: %v", tier, err)
		}
	}
	return p
}

// Key creates an account on tier and returns an API key of it.
func (p *Platform) Key(tb testing.TB, tier string) string {
	tb.Helper()
	ctx := context.Background()
	acct, err := p.Admin.CreateAccount(ctx, fmt.Sprintf("%s %d", tb.Name(), p.n.Add(1)), tier)
	if err != nil {
		tb.Fatalf("create account: %v", err)
	}
	k, err := p.Admin.CreateKey(ctx, acct.ID, "test")
	if err != nil {
		tb.Fatalf("create key: %v", err)
	}
	return k.Key
}

// Client returns a Client of a new account on tier.
func (p *Platform) Client(tb testing.TB, tier string, opts ...client.Option) *client.Client {
	tb.Helper()
	c, err := client.New(p.URL, p.Key(tb, tier), opts...)
	if err != nil {
		tb.Fatalf("client: %v", err)
	}
	return c
}

// Transport lets a test's client reach the platform through a function
// that may fail requests or break answers.
type Transport func(*http.Request) (*http.Response, error)

// RoundTrip implements http.RoundTripper.
func (f Transport) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
