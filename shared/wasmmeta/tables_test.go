package wasmmeta_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

func tableModule(limits ...byte) []byte {
	m := append([]byte{}, minimal...)
	sec := append([]byte{0x01, 0x70}, limits...)
	return append(append(m, 0x04, byte(len(sec))), sec...)
}

func TestCapTables(t *testing.T) {
	t.Parallel()
	// No table, and a table whose maximum is under the cap: unchanged.
	bin := fixtures.Bytes(fixtures.Hello)
	out, elems, err := wasmmeta.CapTables(bin)
	require.NoError(t, err)
	require.Equal(t, bin, out)
	require.Equal(t, uint64(5), elems)
	out, elems, err = wasmmeta.CapTables(minimal)
	require.NoError(t, err)
	require.Equal(t, minimal, out)
	require.Zero(t, elems)

	// No maximum, or one over the cap: lowered to the cap.
	for _, bin := range [][]byte{tableModule(0x00, 0x01), tableModule(0x01, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f)} {
		out, elems, err := wasmmeta.CapTables(bin)
		require.NoError(t, err)
		require.Equal(t, uint64(wasmmeta.TableElementsCap), elems)
		require.Equal(t, tableModule(0x01, 0x01, 0x80, 0x80, 0x40), out) // max 1<<20
		_, err = wazero.NewRuntime(context.Background()).CompileModule(context.Background(), out)
		require.NoError(t, err)
	}
	// A minimum over the cap stays: the table is what it declares.
	out, elems, err = wasmmeta.CapTables(tableModule(0x00, 0x80, 0x80, 0x80, 0x01))
	require.NoError(t, err)
	require.Equal(t, uint64(1<<21), elems)
	require.Equal(t, tableModule(0x01, 0x80, 0x80, 0x80, 0x01, 0x80, 0x80, 0x80, 0x01), out)
}
