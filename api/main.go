// Command wasmwizard-api serves the HTTP API and bootstraps the platform
// (migrations, accounts, keys).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/wasmwizard/wasmwizard/api/app"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

func main() {
	if wasmmeta.IsCheckChild() {
		// An upload-check child of the API (started with its own
		// environment): validate one module under a memory limit.
		os.Exit(wasmmeta.CheckChildMain(os.Stdin, os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
