package wire_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/worker/sandbox/wire"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	req := wire.RunRequest{ModuleKey: "k", ModulePath: "/p", Function: "_start", Stdin: []byte{0, 1, 2},
		MemoryLimitMB: 16, MaxOutputBytes: 10}
	payload, err := json.Marshal(req)
	require.NoError(t, err)
	require.NoError(t, wire.WriteFrame(&buf, wire.Run, payload))
	require.NoError(t, wire.WriteFrame(&buf, wire.Output, nil))

	kind, got, err := wire.ReadFrame(&buf, wire.MaxFrame)
	require.NoError(t, err)
	require.Equal(t, wire.Run, kind)
	decoded, err := wire.DecodeRunRequest(got)
	require.NoError(t, err)
	require.Equal(t, req, decoded)

	kind, got, err = wire.ReadFrame(&buf, wire.MaxFrame)
	require.NoError(t, err)
	require.Equal(t, wire.Output, kind)
	require.Empty(t, got)
	_, _, err = wire.ReadFrame(&buf, wire.MaxFrame)
	require.ErrorIs(t, err, io.EOF)
}

func TestBadFrames(t *testing.T) {
	t.Parallel()
	_, _, err := wire.ReadFrame(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, 2}), wire.MaxFrame)
	require.ErrorIs(t, err, wire.ErrTooLarge)
	_, _, err = wire.ReadFrame(bytes.NewReader([]byte{0, 0, 0, 9, 2, 'x'}), wire.MaxFrame)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	_, _, err = wire.ReadFrame(bytes.NewReader([]byte{0, 0}), wire.MaxFrame)
	require.True(t, errors.Is(err, io.ErrUnexpectedEOF))
	for _, in := range []string{`{}`, `{"module_key":"k","module_path":"p","memory_limit_mb":0}`, `[`, `{"module_key":"k","module_path":"p","memory_limit_mb":5000}`} {
		_, err := wire.DecodeRunRequest([]byte(in))
		require.Error(t, err, in)
	}
}

// FuzzChildDecoder feeds the child's side of the protocol arbitrary bytes:
// it must fail cleanly, never panic or allocate past its limit.
func FuzzChildDecoder(f *testing.F) {
	var seed bytes.Buffer
	_ = wire.WriteFrame(&seed, wire.Run, []byte(`{"module_key":"k","module_path":"p","memory_limit_mb":1,"max_output_bytes":1}`))
	f.Add(seed.Bytes())
	f.Add([]byte{0, 0, 0, 1, 2, '{'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 2})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			kind, payload, err := wire.ReadFrame(r, 1<<16)
			if err != nil {
				return
			}
			if len(payload) > 1<<16 {
				t.Fatalf("frame of %d bytes past the limit", len(payload))
			}
			if kind == wire.Run {
				req, err := wire.DecodeRunRequest(payload)
				if err == nil && (req.ModuleKey == "" || req.ModulePath == "") {
					t.Fatal("accepted a request without a module")
				}
			}
		}
	})
}
