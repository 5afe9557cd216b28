package wasmmeta_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"

	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

// Precheck only bounds counts: it never refuses a module that wazero
// accepts. Checked on the WebAssembly 1.0 and 2.0 spec-test modules and
// the fuzz-found cases shipped with wazero (about 7,000 modules), and on
// the third-party WASI programs of its tests (zig, TinyGo, Rust).
func TestPrecheckRefusesNothingWazeroAccepts(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tetratelabs/wazero").Output()
	require.NoError(t, err)
	root := strings.TrimSpace(string(out))
	var files []string
	for _, pattern := range []string{
		"internal/integration_test/spectest/v1/testdata/*.wasm",
		"internal/integration_test/spectest/v2/testdata/*.wasm",
		"internal/integration_test/fuzzcases/testdata/*.wasm",
		"imports/wasi_snapshot_preview1/testdata/*/wasi.wasm",
	} {
		matches, err := filepath.Glob(filepath.Join(root, pattern))
		require.NoError(t, err)
		require.NotEmpty(t, matches, pattern)
		files = append(files, matches...)
	}
	rt := wazero.NewRuntimeWithConfig(context.Background(), wazero.NewRuntimeConfigInterpreter())
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	for _, f := range files {
		bin, err := os.ReadFile(f)
		require.NoError(t, err)
		perr := wasmmeta.Precheck(bin)
		if perr == nil {
			continue
		}
		cm, err := rt.CompileModule(context.Background(), bin)
		if err == nil {
			_ = cm.Close(context.Background())
			t.Errorf("%s: wazero accepts it, Precheck refuses it: %v", f, perr)
		}
	}
}
