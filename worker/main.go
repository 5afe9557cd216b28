// Command wasmwizard-worker takes jobs from the queue and runs them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/wasmwizard/wasmwizard/worker/app"
	"github.com/wasmwizard/wasmwizard/worker/sandbox"
)

func main() {
	if sandbox.IsChild() {
		// A sandbox child of a worker (started with the hidden "sandbox"
		// argument and its own environment): run guests until stdin closes.
		os.Exit(sandbox.ChildMain(os.Stdin, os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
