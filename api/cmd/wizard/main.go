// Command wizard runs WebAssembly on a Wasm Wizard platform (docs/CLI.md).
//
// It also manages modules, jobs and the account.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/wasmwizard/wasmwizard/api/wizardcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := wizardcli.Main(ctx, os.Args[1:], wizardcli.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}
