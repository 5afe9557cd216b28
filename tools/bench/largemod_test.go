package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strconv"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

// The generated module is valid for the platform's upload check, runs as
// a WASI command, reads its file to the end and prints a checksum that
// depends on its code (the seed) and on the file's size.
func TestGeneratedLargeModule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	run := func(wasm []byte, file []byte) string {
		t.Helper()
		meta, err := wasmmeta.NewInspector(ctx).Inspect(ctx, wasm)
		require.NoError(t, err)
		require.True(t, meta.WASI)
		rt := wazero.NewRuntime(ctx)
		defer func() { _ = rt.Close(ctx) }()
		wasi_snapshot_preview1.MustInstantiate(ctx, rt)
		var out bytes.Buffer
		cfg := wazero.NewModuleConfig().WithStdout(&out).
			WithFSConfig(wazero.NewFSConfig().WithFSMount(fstest.MapFS{largePath: {Data: file}}, "/"))
		_, err = rt.InstantiateWithConfig(ctx, wasm, cfg)
		var exit *sys.ExitError
		if err != nil && (!errors.As(err, &exit) || exit.ExitCode() != 0) {
			t.Fatalf("run: %v", err)
		}
		return out.String()
	}
	line := regexp.MustCompile(`^read (\d+) bytes, checksum (\d+)\n$`)
	file := bytes.Repeat([]byte("x"), 200<<10+3)

	wasm := generateLargeModule(3*workBody, 1<<20, 1)
	require.InDelta(t, 3*workBody+1<<20, len(wasm), 64<<10)
	first := run(wasm, file)
	m := line.FindStringSubmatch(first)
	require.NotNil(t, m, first)
	require.Equal(t, strconv.Itoa(len(file)), m[1])
	require.Equal(t, first, run(wasm, file), "deterministic")
	require.NotEqual(t, first, run(generateLargeModule(3*workBody, 1<<20, 2), file), "the seed changes the code")
	require.NotEqual(t, first, run(wasm, file[:10]), "the checksum depends on the file")

	// Without data, the loads read the read buffer.
	require.Regexp(t, line, run(generateLargeModule(workBody, 0, 1), file))

	// A missing file ends the command with exit code 1.
	rt := wazero.NewRuntime(ctx)
	defer func() { _ = rt.Close(ctx) }()
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	_, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithFSConfig(wazero.NewFSConfig().WithFSMount(fstest.MapFS{}, "/")))
	var exit *sys.ExitError
	require.True(t, errors.As(err, &exit), "%v", err)
	require.Equal(t, uint32(1), exit.ExitCode())
}
