package platformtest

import (
	"testing"

	"github.com/wasmwizard/wasmwizard/platformtest/testmain"
)

// The workers these tests start spawn sandbox children from the test binary
// itself, and the API its upload-check children; in a child, run the
// child's main instead of the tests.
func TestMain(m *testing.M) { testmain.Main(m) }
