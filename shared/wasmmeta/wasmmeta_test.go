package wasmmeta_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

// minimal is the smallest valid module: magic and version.
var minimal = []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}

func TestInspectRefusesGarbage(t *testing.T) {
	t.Parallel()
	in := wasmmeta.NewInspector(context.Background())
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	for name, bin := range map[string][]byte{
		"empty":     nil,
		"text":      []byte("hello world, not wasm"),
		"version 2": {0x00, 0x61, 0x73, 0x6d, 0x02, 0x00, 0x00, 0x00},
		"truncated": append(append([]byte{}, minimal...), 0x01, 0x05),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := in.Inspect(context.Background(), bin)
			var inv *wasmmeta.InvalidError
			require.True(t, errors.As(err, &inv), "want InvalidError, got %v", err)
			require.NotEmpty(t, inv.Reason)
		})
	}
}

func TestInspectMinimal(t *testing.T) {
	t.Parallel()
	in := wasmmeta.NewInspector(context.Background())
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	m, err := in.Inspect(context.Background(), minimal)
	require.NoError(t, err)
	require.Empty(t, m.Imports)
	require.Empty(t, m.Exports)
	require.False(t, m.WASI)
}

// FuzzInspect checks that any bytes are refused or described, and that the
// check stays within its memory budget (inProcessBudget: all it allocates,
// not only its peak) on every input.
func FuzzInspect(f *testing.F) {
	f.Add(minimal)
	f.Add([]byte("not wasm"))
	for _, bin := range [][]byte{
		fixtures.LocalsBomb(1 << 30), fixtures.LocalsBomb(100), fixtures.StraightLine(50),
		fixtures.NestedBlocks(40), fixtures.WideBrTable(4, 40), fixtures.LocalsTimesBlocks(10, 10),
		fixtures.Bytes(fixtures.Hello), fixtures.Bytes(fixtures.Reactor),
	} {
		f.Add(bin)
	}
	in := wasmmeta.NewInspector(context.Background())
	f.Fuzz(func(t *testing.T, bin []byte) {
		var m wasmmeta.Meta
		var err error
		used := allocated(func() { m, err = in.Inspect(context.Background(), bin) })
		if used > inProcessBudget(bin) {
			t.Fatalf("a %d-byte input allocated %d bytes, over its budget of %d", len(bin), used, inProcessBudget(bin))
		}
		if err != nil {
			var inv *wasmmeta.InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("non-validation error: %v", err)
			}
			return
		}
		for _, imp := range m.Imports {
			if imp.Module != wasmmeta.WASIModule {
				t.Fatalf("accepted import from %q", imp.Module)
			}
		}
	})
}

// BenchmarkInspectLarge validates the 2.2 MB Go-built fixture: the cost of
// upload validation per MB (interpreter decoding, no native code).
func BenchmarkInspectLarge(b *testing.B) {
	in := wasmmeta.NewInspector(context.Background())
	bin := fixtures.Bytes(fixtures.GoHello)
	for b.Loop() {
		if _, err := in.Inspect(context.Background(), bin); err != nil {
			b.Fatal(err)
		}
	}
}

func TestImportsOfEveryKindAreChecked(t *testing.T) {
	t.Parallel()
	in := wasmmeta.NewInspector(context.Background())
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	// (module (import "env" "g" (global i32)))
	global := append(append([]byte{}, minimal...), 0x02, 0x0a, 0x01, 0x03, 'e', 'n', 'v', 0x01, 'g', 0x03, 0x7f, 0x00)
	// (module (import "env" "t" (table 1 funcref)))
	table := append(append([]byte{}, minimal...), 0x02, 0x0b, 0x01, 0x03, 'e', 'n', 'v', 0x01, 't', 0x01, 0x70, 0x00, 0x01)
	for name, bin := range map[string][]byte{"global": global, "table": table} {
		_, err := in.Inspect(context.Background(), bin)
		var inv *wasmmeta.InvalidError
		require.True(t, errors.As(err, &inv), "%s: %v", name, err)
		require.Contains(t, inv.Reason, `imports `+name+` "`, name)
	}
	m, err := in.Inspect(context.Background(), fixtures.Bytes(fixtures.Hello))
	require.NoError(t, err)
	require.NotEmpty(t, m.Imports)
	for _, imp := range m.Imports {
		require.Equal(t, wasmmeta.WASIModule, imp.Module)
		require.Equal(t, "function", imp.Kind)
	}
}
