// Command wasmwizard-worker takes jobs from the queue and runs them.
package main

import (
	"github.com/wasmwizard/wasmwizard/shared/boot"
	"github.com/wasmwizard/wasmwizard/worker/app"
	"github.com/wasmwizard/wasmwizard/worker/sandbox"
)

func main() {
	// A sandbox child of a worker (started with the hidden "sandbox"
	// argument and its own environment) runs guests until stdin closes.
	boot.Main(sandbox.IsChild, sandbox.ChildMain, app.Run)
}
