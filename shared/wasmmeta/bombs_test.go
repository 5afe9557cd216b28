package wasmmeta_test

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/platformtest/testmain"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
)

// The test binary doubles as the upload-check child.
func TestMain(m *testing.M) { testmain.Main(m) }

// inProcessBudget is what validating bin in this process may allocate in
// all (not only at its peak): the budget of an isolated check, whose
// constant also covers the runtime that the child starts.
func inProcessBudget(bin []byte) uint64 {
	return uint64(wasmmeta.MemoryPerByte*len(bin)) + 32<<20
}

// allocated returns the bytes f allocated in all.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func requireInvalid(t *testing.T, err error, contains string) {
	t.Helper()
	var inv *wasmmeta.InvalidError
	require.True(t, errors.As(err, &inv), "want InvalidError, got %v", err)
	require.Contains(t, inv.Reason, contains)
}

// Modules whose counts would make wazero allocate far more than their size
// are refused before wazero decodes them, with a reason that names the
// count, within the memory budget. LocalsBomb(1<<30) is the review's
// 30-byte module plus an export: it made the API allocate 23.7 GB.
// Not parallel: it measures the process's allocations.
func TestInspectRefusesCountBombs(t *testing.T) {
	in := wasmmeta.NewInspector(context.Background())
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	for name, c := range map[string]struct {
		bin  []byte
		want string
	}{
		"2^30 locals":       {fixtures.LocalsBomb(1 << 30), "locals, more than the limit of 50000"},
		"1M locals":         {fixtures.LocalsBomb(1 << 20), "locals, more than the limit"},
		"deep nesting":      {fixtures.NestedBlocks(wasmmeta.MaxNestingDepth + 1), "nested more than"},
		"wide br_table":     {fixtures.WideBrTable(10, 1<<20), "br_table targets, more than the limit"},
		"locals in all":     {manyFunctionsWithLocals(10, 40_000), "locals in all"},
		"types with params": {typeWithParams(5000), "parameters, more than the limit"},
	} {
		var err error
		used := allocated(func() { _, err = in.Inspect(context.Background(), c.bin) })
		requireInvalid(t, err, c.want)
		require.LessOrEqual(t, used, inProcessBudget(c.bin), name)
	}
}

// Every generated shape within the limits is validated in this process
// within the memory budget when it is small enough to be checked here.
// Not parallel: it measures the process's allocations.
func TestInspectShapesWithinBudget(t *testing.T) {
	in := wasmmeta.NewInspector(context.Background())
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	for name, bin := range map[string][]byte{
		"straight line":   fixtures.StraightLine(wasmmeta.InProcessMax / 3),
		"nesting":         fixtures.NestedBlocks(wasmmeta.MaxNestingDepth),
		"br_table":        fixtures.WideBrTable(100, wasmmeta.MaxBrTableTargets),
		"locals x blocks": fixtures.LocalsTimesBlocks(1000, 5000),
		"locals":          fixtures.LocalsBomb(wasmmeta.MaxTotalLocalsBase),
		// The most locals a small module may declare, in several functions.
		"locals in all": manyFunctionsWithLocals(5, wasmmeta.MaxTotalLocalsBase/5),
	} {
		var err error
		used := allocated(func() { _, err = in.Inspect(context.Background(), bin) })
		require.NoError(t, err, name)
		require.LessOrEqual(t, used, inProcessBudget(bin), "%s: %d bytes allocated for a %d-byte module", name, used, len(bin))
	}
}

// A large module is validated in a child: a valid one gives the same
// description as in this process.
func TestIsolatedInspectDescribes(t *testing.T) {
	t.Parallel()
	in := testmain.IsolatedInspector(t)
	local := wasmmeta.NewInspector(context.Background())
	t.Cleanup(func() { _ = local.Close(context.Background()) })
	bin := fixtures.Bytes(fixtures.GoHello)
	want, err := local.Inspect(context.Background(), bin)
	require.NoError(t, err)
	got, err := in.Inspect(context.Background(), bin)
	require.NoError(t, err)
	require.Equal(t, want, got)

	_, err = in.Inspect(context.Background(), append(fixtures.StraightLine(100_000), 0x0b))
	requireInvalid(t, err, "invalid WebAssembly module")
}

// A 7 MiB function of `i32.const 0; drop` needs ~250 times its size in
// wazero's interpreter (1.17 GB in the review). Isolated, it costs this
// process little whatever the child needs, and the answer is a validation
// result, not a crash.
// Not parallel: it measures the process's allocations.
func TestIsolatedInspectStraightLine(t *testing.T) {
	if raceEnabled {
		t.Skip("a race-instrumented check child runs without its OS memory limit")
	}
	in := testmain.IsolatedInspector(t)
	bin := fixtures.StraightLine(7 << 20 / 3)
	var err error
	used := allocated(func() { _, err = in.Inspect(context.Background(), bin) })
	t.Logf("%d bytes: %v", len(bin), err)
	if err != nil {
		requireInvalid(t, err, "too complex to validate within its budget")
	}
	require.Less(t, used, uint64(len(bin)), "the caller allocated %d bytes", used)
}

// manyFunctionsWithLocals is n functions that declare locals each.
func manyFunctionsWithLocals(n int, locals uint32) []byte {
	decl := append(append([]byte{0x01}, fixtures.AppendULEB(nil, locals)...), 0x7f, 0x0b) // 1 declaration; i32; end
	body := append(fixtures.AppendULEB(nil, uint32(len(decl))), decl...)
	m := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00}
	funcs := append(fixtures.AppendULEB(nil, uint32(n)), make([]byte, n)...)
	m = append(append(append(m, 0x03), fixtures.AppendULEB(nil, uint32(len(funcs)))...), funcs...)
	code := fixtures.AppendULEB(nil, uint32(n))
	for range n {
		code = append(code, body...)
	}
	return append(append(append(m, 0x0a), fixtures.AppendULEB(nil, uint32(len(code)))...), code...)
}

// typeWithParams is a module with one function type of n i32 parameters.
func typeWithParams(n int) []byte {
	t := append([]byte{0x01, 0x60}, fixtures.AppendULEB(nil, uint32(n))...)
	for range n {
		t = append(t, 0x7f)
	}
	t = append(t, 0x00)
	m := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01}
	return append(append(m, fixtures.AppendULEB(nil, uint32(len(t)))...), t...)
}

// FuzzShapes generates the expensive shapes at fuzzed sizes (small enough
// to be checked in this process) and asserts that the check neither fails
// nor exceeds its memory budget.
func FuzzShapes(f *testing.F) {
	for kind := range uint8(5) {
		f.Add(kind, uint32(1000), uint32(100))
	}
	f.Add(uint8(0), uint32(1<<30), uint32(0))
	f.Add(uint8(2), uint32(wasmmeta.MaxNestingDepth+1), uint32(0))
	f.Add(uint8(3), uint32(64), uint32(wasmmeta.MaxBrTableTargets+1))
	in := wasmmeta.NewInspector(context.Background())
	f.Fuzz(func(t *testing.T, kind uint8, n, m uint32) {
		var bin []byte
		switch kind % 5 {
		case 0:
			bin = fixtures.LocalsBomb(n)
		case 1:
			bin = fixtures.StraightLine(int(n % (wasmmeta.InProcessMax / 3)))
		case 2:
			bin = fixtures.NestedBlocks(int(n % (2 * wasmmeta.MaxNestingDepth)))
		case 3:
			bin = fixtures.WideBrTable(int(n%1000), int(m%(2*wasmmeta.MaxBrTableTargets)))
		case 4:
			bin = fixtures.LocalsTimesBlocks(int(n%(2*wasmmeta.MaxFunctionLocals)), int(m%3000))
		}
		var err error
		used := allocated(func() { _, err = in.Inspect(context.Background(), bin) })
		if used > inProcessBudget(bin) {
			t.Fatalf("shape %d (%d, %d), %d bytes: allocated %d, over its budget of %d", kind%5, n, m, len(bin), used, inProcessBudget(bin))
		}
		var inv *wasmmeta.InvalidError
		if err != nil && !errors.As(err, &inv) {
			t.Fatalf("non-validation error: %v", err)
		}
	})
}
