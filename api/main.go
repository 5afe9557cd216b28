// Command wasmwizard-api serves the HTTP API and bootstraps the platform
// (migrations, accounts, keys).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/wasmwizard/wasmwizard/api/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
