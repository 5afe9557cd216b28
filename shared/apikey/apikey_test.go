package apikey_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/apikey"
)

func TestGenerate(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		k, err := apikey.Generate()
		require.NoError(t, err)
		require.Regexp(t, `^ww_[0-9A-Za-z]{32}$`, k.Plaintext)
		require.True(t, apikey.WellFormed(k.Plaintext))
		require.Equal(t, k.Plaintext[3:11], k.Prefix)
		h := apikey.Hash(k.Plaintext)
		require.True(t, apikey.Equal(h[:], k.Hash[:]))
		require.False(t, seen[k.Plaintext])
		seen[k.Plaintext] = true
	}
}

func TestWellFormed(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		"":                                     false,
		"ww_":                                  false,
		"ww_0123456789abcdefghijABCDEFGHIJkl":  true,
		"ww_0123456789abcdefghijABCDEFGHIJk":   false,
		"ww_0123456789abcdefghijABCDEFGHIJk!":  false,
		"xx_0123456789abcdefghijABCDEFGHIJkl":  false,
		"ww_0123456789abcdefghijABCDEFGHIJklm": false,
	} {
		require.Equal(t, want, apikey.WellFormed(in), in)
	}
}

func FuzzWellFormed(f *testing.F) {
	f.Add("ww_0123456789abcdefghijABCDEFGHIJkl")
	f.Add("Bearer x")
	f.Fuzz(func(t *testing.T, s string) {
		if apikey.WellFormed(s) && len(s) != 35 {
			t.Fatalf("accepted %q", s)
		}
	})
}
