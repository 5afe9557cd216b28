// Command wasmwizard-api serves the HTTP API and bootstraps the platform
// (migrations, accounts, keys).
package main

import (
	"github.com/wasmwizard/wasmwizard/api/app"
	"github.com/wasmwizard/wasmwizard/shared/boot"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

func main() {
	// An upload-check child of the API (started with its own
	// environment) validates one module under a memory limit.
	boot.Main(wasmmeta.IsCheckChild, wasmmeta.CheckChildMain, app.Run)
}
