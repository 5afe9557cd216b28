package app_test

import (
	"os"
	"testing"

	"github.com/wasmwizard/wasmwizard/worker/sandbox"
)

// The workers these tests start spawn sandbox children from the test binary
// itself; in a child, run the sandbox instead of the tests.
func TestMain(m *testing.M) {
	if sandbox.IsChild() {
		os.Exit(sandbox.ChildMain(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
