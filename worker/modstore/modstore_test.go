package modstore_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/worker/modstore"
)

func TestFetchesOnceAndVerifies(t *testing.T) {
	t.Parallel()
	content := []byte("\x00asm\x01\x00\x00\x00")
	sum := sha256.Sum256(content)
	var fetches atomic.Int32
	s, err := modstore.New(t.TempDir(), func(_ context.Context, got []byte) ([]byte, error) {
		fetches.Add(1)
		return content, nil
	})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path, err := s.Path(context.Background(), sum[:])
			require.NoError(t, err)
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, content, b)
		}()
	}
	wg.Wait()
	require.EqualValues(t, 1, fetches.Load())

	bad, err := modstore.New(t.TempDir(), func(context.Context, []byte) ([]byte, error) { return []byte("other"), nil })
	require.NoError(t, err)
	_, err = bad.Path(context.Background(), sum[:])
	require.ErrorContains(t, err, "hash")

	failing, err := modstore.New(t.TempDir(), func(context.Context, []byte) ([]byte, error) { return nil, errors.New("db down") })
	require.NoError(t, err)
	_, err = failing.Path(context.Background(), sum[:])
	require.ErrorContains(t, err, "db down")
}
