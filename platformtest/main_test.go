package platformtest

import (
	"os"
	"testing"

	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
	"github.com/wasmwizard/wasmwizard/worker/sandbox"
)

// The workers these tests start spawn sandbox children from the test binary
// itself, and the API its upload-check children; in a child, run the
// child's main instead of the tests.
func TestMain(m *testing.M) {
	if wasmmeta.IsCheckChild() {
		os.Exit(wasmmeta.CheckChildMain(os.Stdin, os.Stdout, os.Stderr))
	}
	if sandbox.IsChild() {
		os.Exit(sandbox.ChildMain(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
