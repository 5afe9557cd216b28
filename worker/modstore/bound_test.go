package modstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
	"github.com/wasmwizard/wasmwizard/worker/modstore"
)

// modules is a fake Postgres of n modules of 100 bytes that counts fetches.
type modules struct {
	mu      sync.Mutex
	content map[[32]byte][]byte
	fetches map[[32]byte]int
}

func newModules(n int) (*modules, [][]byte) {
	m := &modules{content: map[[32]byte][]byte{}, fetches: map[[32]byte]int{}}
	var sums [][]byte
	for i := range n {
		c := bytes.Repeat([]byte{byte(i)}, 100)
		sum := sha256.Sum256(c)
		m.content[sum] = c
		sums = append(sums, sum[:])
	}
	return m, sums
}

func (m *modules) fetch(_ context.Context, sum []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fetches[[32]byte(sum)]++
	c, ok := m.content[[32]byte(sum)]
	if !ok {
		return nil, fmt.Errorf("no module %x", sum)
	}
	return c, nil
}

func (m *modules) count(sum []byte) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fetches[[32]byte(sum)]
}

// diskBytes is what the store's files take on disk.
func diskBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	require.NoError(t, filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			total += info.Size()
		}
		return err
	}))
	return total
}

func use(t *testing.T, s *modstore.Store, sum []byte) string {
	t.Helper()
	path, release, err := s.Acquire(context.Background(), sum)
	require.NoError(t, err)
	release()
	return path
}

func TestEvictionKeepsTheStoreWithinItsBound(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m, sums := newModules(6)
	s, err := modstore.NewBounded(dir, m.fetch, 300)
	require.NoError(t, err)
	for _, sum := range sums[:5] {
		use(t, s, sum)
		require.LessOrEqual(t, s.Bytes(), int64(300))
		require.LessOrEqual(t, diskBytes(t, dir), int64(300))
	}
	// The three most recent stay; the first was evicted and is fetched again.
	for _, sum := range sums[2:5] {
		use(t, s, sum)
		require.Equal(t, 1, m.count(sum))
	}
	path := use(t, s, sums[0])
	require.Equal(t, 2, m.count(sums[0]))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, m.content[[32]byte(sums[0])], b)
	require.Equal(t, int64(300), diskBytes(t, dir))

	// A module in use is never evicted, however old: the others go.
	held, release, err := s.Acquire(context.Background(), sums[1])
	require.NoError(t, err)
	for _, sum := range sums[2:] {
		use(t, s, sum)
		require.FileExists(t, held)
		require.LessOrEqual(t, diskBytes(t, dir), int64(300))
	}
	release()
	// Released, it is the least recently used and goes first.
	use(t, s, sums[0])
	require.NoFileExists(t, held)
	require.LessOrEqual(t, diskBytes(t, dir), int64(300))

	// A restart takes stock of the files and keeps the bound, even a
	// smaller one.
	s2, err := modstore.NewBounded(dir, m.fetch, 150)
	require.NoError(t, err)
	require.Equal(t, int64(100), s2.Bytes())
	require.Equal(t, int64(100), diskBytes(t, dir))
}

func TestSweepRemovesModulesNobodyHolds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m, sums := newModules(3)
	s, err := modstore.NewBounded(dir, m.fetch, 1<<20)
	require.NoError(t, err)
	a, b := use(t, s, sums[0]), use(t, s, sums[1])
	c, release, err := s.Acquire(context.Background(), sums[2])
	require.NoError(t, err)
	gone := func(_ context.Context, got [][]byte) ([][]byte, error) {
		require.Len(t, got, 3)
		return [][]byte{sums[0], sums[2]}, nil
	}
	n, err := s.Sweep(context.Background(), gone)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.NoFileExists(t, a)
	require.FileExists(t, b)
	require.FileExists(t, c, "in use: removed when released")
	release()
	require.NoFileExists(t, c)
	require.Equal(t, int64(100), s.Bytes())
}

// The worker's sweep against Postgres: a deleted module's file is removed,
// one that another account still holds stays.
func TestDeletedModuleFileIsRemoved(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, a := testenv.StoreWithAccount(t)
	b, err := st.CreateAccount(ctx, store.Actor{Name: "t"}, "b", "free")
	require.NoError(t, err)
	only, _, err := st.CreateModule(ctx, store.Actor{Name: "t"}, a.ID, "", []byte("\x00asm only a"), wasmmeta.Meta{})
	require.NoError(t, err)
	shared, _, err := st.CreateModule(ctx, store.Actor{Name: "t"}, a.ID, "", []byte("\x00asm shared"), wasmmeta.Meta{})
	require.NoError(t, err)
	_, _, err = st.CreateModule(ctx, store.Actor{Name: "t"}, b.ID, "", []byte("\x00asm shared"), wasmmeta.Meta{})
	require.NoError(t, err)

	s, err := modstore.New(t.TempDir(), st.ModuleContent)
	require.NoError(t, err)
	onlyPath, sharedPath := use(t, s, only.SHA256), use(t, s, shared.SHA256)
	_, err = s.Sweep(ctx, st.GoneModules)
	require.NoError(t, err)
	require.FileExists(t, onlyPath)

	for _, m := range []store.Module{only, shared} {
		_, err = st.DeleteModule(ctx, store.Actor{Name: "t"}, a.ID, m.ID)
		require.NoError(t, err)
	}
	_, err = s.Sweep(ctx, st.GoneModules)
	require.NoError(t, err)
	require.NoFileExists(t, onlyPath)
	require.FileExists(t, sharedPath, "account b still holds it")
}
