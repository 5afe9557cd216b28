package sandbox

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/wasmwizard/wasmwizard/worker/sandbox/wire"
)

// The input arena from both sides: the worker fills, grows and trims it;
// the child, holding only a read-only descriptor, maps it as large as it
// really is (remapping after a resize) and can neither write nor resize it.
func TestInputArena(t *testing.T) {
	t.Parallel()
	a, ro, err := newArena()
	require.NoError(t, err)
	defer a.release()
	defer func() { _ = ro.Close() }()
	child := &inputArena{fd: int(ro.Fd())} //nolint:gosec // a descriptor
	defer func() {
		if child.mem != nil {
			_ = unix.Munmap(child.mem)
		}
	}()

	// Empty until a job needs it.
	mem, err := child.mapping()
	require.NoError(t, err)
	require.Nil(t, mem)

	files := &wire.Files{SharedBytes: 7, Inputs: []wire.InputHeader{
		{Path: "/a", Mode: "ro", Size: 3, Shared: true},
		{Path: "/small", Mode: "ro", Size: 1},
		{Path: "/b", Mode: "rw", Size: 4, Shared: true, Offset: 3},
	}}
	require.NoError(t, files.Validate())
	require.NoError(t, a.fill([][]byte{[]byte("abc"), []byte("defg")}, 7))
	mem, err = child.mapping()
	require.NoError(t, err)
	require.Len(t, mem, arenaGrain, "the arena grows by whole grains")
	slices, err := wire.SharedSlices(files, mem)
	require.NoError(t, err)
	require.Equal(t, [][]byte{[]byte("abc"), nil, []byte("defg")}, slices)

	// The child's descriptor is read-only: no writable mapping, no resize,
	// no write.
	_, err = unix.Mmap(child.fd, 0, arenaGrain, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	require.ErrorIs(t, err, unix.EACCES)
	require.Error(t, unix.Mprotect(child.mem, unix.PROT_READ|unix.PROT_WRITE))
	require.Error(t, unix.Ftruncate(child.fd, 1<<30))
	_, err = unix.Write(child.fd, []byte("x"))
	require.ErrorIs(t, err, unix.EBADF)

	// The next job's inputs land in the same memory.
	require.NoError(t, a.fill([][]byte{[]byte("xyz"), []byte("uvwt")}, 7))
	again, err := child.mapping()
	require.NoError(t, err)
	require.Equal(t, &mem[0], &again[0], "not remapped")
	require.Equal(t, "xyzuvwt", string(again[:7]))

	// Larger inputs grow it; the child remaps.
	big := bytes.Repeat([]byte("0123456789abcdef"), (3*arenaGrain)/16+1)
	require.NoError(t, a.fill([][]byte{big}, int64(len(big))))
	mem, err = child.mapping()
	require.NoError(t, err)
	require.Len(t, mem, 4*arenaGrain)
	require.Equal(t, big, mem[:len(big)])

	// After the job it is trimmed back to what is kept.
	require.NoError(t, a.trim(2*arenaGrain+5))
	mem, err = child.mapping()
	require.NoError(t, err)
	require.Len(t, mem, 2*arenaGrain)
	require.Equal(t, big[:2*arenaGrain], mem)
	require.NoError(t, a.trim(-1))
	mem, err = child.mapping()
	require.NoError(t, err)
	require.Empty(t, mem)

	// A request whose inputs extend past the arena is refused.
	_, err = wire.SharedSlices(files, mem)
	require.Error(t, err)
}
