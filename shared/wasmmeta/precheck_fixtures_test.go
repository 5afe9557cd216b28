package wasmmeta_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

// Every fixture (clang, Go and wat2wasm outputs) is within the limits.
func TestPrecheckAcceptsFixtures(t *testing.T) {
	t.Parallel()
	for _, name := range fixtures.Names() {
		require.NoError(t, wasmmeta.Precheck(fixtures.Bytes(name)), name)
	}
}
