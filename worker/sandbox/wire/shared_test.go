package wire_test

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/worker/sandbox/wire"
)

func sharedRequest(files wire.Files) []byte {
	b, _ := json.Marshal(wire.RunRequest{ModuleKey: "k", ModulePath: "p", MemoryLimitMB: 1, Files: &files})
	return b
}

func TestSharedInputHeaders(t *testing.T) {
	t.Parallel()
	ok := wire.Files{SharedBytes: 10, Inputs: []wire.InputHeader{
		{Path: "/a", Mode: "ro", Size: 4, Shared: true},
		{Path: "/b", Mode: "rw", Size: 3},
		{Path: "/c", Mode: "rw", Size: 6, Shared: true, Offset: 4},
	}}
	req, err := wire.DecodeRunRequest(sharedRequest(ok))
	require.NoError(t, err)
	mem := []byte("0123456789")
	slices, err := wire.SharedSlices(req.Files, mem)
	require.NoError(t, err)
	require.Equal(t, [][]byte{[]byte("0123"), nil, []byte("456789")}, slices)
	require.Equal(t, 4, cap(slices[0]), "a slice cannot be extended over its neighbour")

	// The arena must reach as far as the request says; it may be longer.
	_, err = wire.SharedSlices(req.Files, mem[:9])
	require.Error(t, err)
	slices, err = wire.SharedSlices(req.Files, append(mem, "more"...))
	require.NoError(t, err)
	require.Equal(t, []byte("456789"), slices[2])

	for name, f := range map[string]wire.Files{
		"past the end":            {SharedBytes: 10, Inputs: []wire.InputHeader{{Path: "/a", Mode: "ro", Size: 4, Shared: true, Offset: 7}}},
		"negative offset":         {SharedBytes: 10, Inputs: []wire.InputHeader{{Path: "/a", Mode: "ro", Size: 4, Shared: true, Offset: -1}}},
		"negative size":           {SharedBytes: 10, Inputs: []wire.InputHeader{{Path: "/a", Mode: "ro", Size: -1, Shared: true}}},
		"overflowing offset":      {SharedBytes: 10, Inputs: []wire.InputHeader{{Path: "/a", Mode: "ro", Size: 4, Shared: true, Offset: math.MaxInt64 - 1}}},
		"size past the maximum":   {SharedBytes: wire.MaxSharedBytes + 1, Inputs: []wire.InputHeader{{Path: "/a", Mode: "ro", Size: 4, Shared: true}}},
		"negative shared memory":  {SharedBytes: -1},
		"shared memory, no input": {SharedBytes: 10, Inputs: []wire.InputHeader{{Path: "/a", Mode: "ro", Size: 4}}},
		"shared input, no memory": {Inputs: []wire.InputHeader{{Path: "/a", Mode: "ro", Size: 0, Shared: true}}},
		"offset of a framed one":  {SharedBytes: 10, Inputs: []wire.InputHeader{{Path: "/a", Mode: "ro", Size: 4, Shared: true}, {Path: "/b", Mode: "ro", Size: 1, Offset: 3}}},
		"framed past a frame":     {Inputs: []wire.InputHeader{{Path: "/a", Mode: "ro", Size: wire.MaxFrame + 1}}},
	} {
		_, err := wire.DecodeRunRequest(sharedRequest(f))
		require.Error(t, err, name)
	}
	// A shared input may be larger than a frame.
	_, err = wire.DecodeRunRequest(sharedRequest(wire.Files{SharedBytes: wire.MaxFrame + 1,
		Inputs: []wire.InputHeader{{Path: "/a", Mode: "ro", Size: wire.MaxFrame + 1, Shared: true}}}))
	require.NoError(t, err)
}

// FuzzSharedInputs: whatever a Run payload says about shared inputs and
// whatever the input arena's real size, the child either refuses the
// request or gets slices of the stated sizes within the arena; never a
// panic.
func FuzzSharedInputs(f *testing.F) {
	f.Add(sharedRequest(wire.Files{SharedBytes: 10, Inputs: []wire.InputHeader{
		{Path: "/a", Mode: "ro", Size: 4, Shared: true}, {Path: "/b", Mode: "rw", Size: 6, Shared: true, Offset: 4}}}), uint16(10))
	f.Add(sharedRequest(wire.Files{SharedBytes: 10, Inputs: []wire.InputHeader{
		{Path: "/a", Mode: "ro", Size: 4, Shared: true, Offset: 9}}}), uint16(10))
	f.Add([]byte(`{"module_key":"k","module_path":"p","memory_limit_mb":1,"files":{"shared_bytes":5,"inputs":[{"path":"/a","mode":"ro","size":9223372036854775807,"shared":true,"offset":9223372036854775807}]}}`), uint16(5))
	f.Fuzz(func(t *testing.T, payload []byte, real uint16) {
		req, err := wire.DecodeRunRequest(payload)
		if err != nil || req.Files == nil {
			return
		}
		mem := make([]byte, real)
		slices, err := wire.SharedSlices(req.Files, mem)
		if err != nil {
			return
		}
		if int64(real) < req.Files.SharedBytes {
			t.Fatalf("accepted %d bytes of arena for inputs extending to %d", real, req.Files.SharedBytes)
		}
		for i, s := range slices {
			in := req.Files.Inputs[i]
			if in.Shared != (s != nil) || (s != nil && len(s) != in.Size) {
				t.Fatalf("input %d: %d bytes for %+v", i, len(s), in)
			}
		}
	})
}
