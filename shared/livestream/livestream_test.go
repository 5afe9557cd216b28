package livestream_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/livestream"
)

// values is what go-redis returns for an entry written with Values.
func values(e livestream.Entry) map[string]any {
	v := e.Values()
	m := map[string]any{}
	for i := 0; i < len(v); i += 2 {
		switch x := v[i+1].(type) {
		case string:
			m[v[i].(string)] = x
		case []byte:
			m[v[i].(string)] = string(x)
		}
	}
	return m
}

func TestEntryRoundTrip(t *testing.T) {
	t.Parallel()
	for _, e := range []livestream.Entry{
		{Kind: livestream.Stdout, Attempt: 1, Offset: 0, Data: []byte("hello\n")},
		{Kind: livestream.Stderr, Attempt: 2, Offset: 123456, Data: []byte{0xff, 0, 0xfe}},
		{Kind: livestream.Status, Attempt: 1, Data: []byte("running")},
		{Kind: livestream.End, Attempt: 3, Data: []byte("timed_out")},
	} {
		got, err := livestream.Parse(values(e))
		require.NoError(t, err)
		require.Equal(t, e, got)
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	ok := values(livestream.Entry{Kind: livestream.Stdout, Attempt: 1, Data: []byte("x")})
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range ok {
			m[a] = b
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for name, m := range map[string]map[string]any{
		"no kind":        with("k", nil),
		"unknown kind":   with("k", "z"),
		"long kind":      with("k", "oo"),
		"no data":        with("d", nil),
		"empty output":   with("d", ""),
		"huge output":    with("d", strings.Repeat("x", livestream.MaxChunk+1)),
		"negative":       with("n", "-1"),
		"offset too far": with("n", "99999999999999"),
		"attempt sign":   with("a", "+1"),
		"attempt huge":   with("a", "100000000"),
		"not a string":   with("a", 1),
	} {
		_, err := livestream.Parse(m)
		require.Error(t, err, name)
	}
	st := values(livestream.Entry{Kind: livestream.Status, Attempt: 1, Data: []byte("running")})
	st["d"] = "Running\n"
	_, err := livestream.Parse(st)
	require.Error(t, err)
}

func TestPositionRoundTrip(t *testing.T) {
	t.Parallel()
	for _, p := range []livestream.Position{
		{},
		{Entry: "1733140000000-5", Attempt: 1, Stdout: 10, Stderr: 3},
		{Attempt: 2, Stdout: 1 << 30},
	} {
		got, err := livestream.ParsePosition(p.String())
		require.NoError(t, err)
		require.Equal(t, p, got)
	}
	got, err := livestream.ParsePosition("")
	require.NoError(t, err)
	require.Equal(t, livestream.Position{}, got)
	for _, bad := range []string{"x", "1-0.1.2", "1-0.1.2.3.4", "1.1.2.3", "-1.1.2.3", "1-0.-1.0.0",
		"1-0.1.0x1.0", "1-0.1. 1.0", strings.Repeat("1", 101), "1-0.1.1.99999999999999"} {
		_, err := livestream.ParsePosition(bad)
		require.Error(t, err, bad)
	}
}

func TestEntryIDOrder(t *testing.T) {
	t.Parallel()
	a, err := livestream.ParseEntryID("5-9")
	require.NoError(t, err)
	b, err := livestream.ParseEntryID("6-0")
	require.NoError(t, err)
	require.True(t, a.Less(b))
	require.False(t, b.Less(a))
	require.False(t, a.Less(a))
}

func TestKeyIsPerJobAndNamespaced(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	require.Equal(t, "wasmwizard:{t1:jobs}:live:"+id.String(), livestream.Key("t1:jobs", id))
	require.NotEqual(t, livestream.Key("a", id), livestream.Key("b", id))
}

func FuzzParsePosition(f *testing.F) {
	f.Add("")
	f.Add("1733140000000-5.1.10.3")
	f.Add("0-0.0.0.0")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := livestream.ParsePosition(s)
		if err != nil {
			return
		}
		again, err := livestream.ParsePosition(p.String())
		if err != nil || again != p {
			t.Fatalf("%q parsed as %+v, which does not round-trip: %+v %v", s, p, again, err)
		}
	})
}

func FuzzParseEntry(f *testing.F) {
	f.Add("o", "1", "0", "hello")
	f.Add("x", "2", "0", "succeeded")
	f.Fuzz(func(t *testing.T, k, a, n, d string) {
		e, err := livestream.Parse(map[string]any{"k": k, "a": a, "n": n, "d": d})
		if err != nil {
			return
		}
		if len(e.Data) > livestream.MaxChunk || e.Offset < 0 || e.Attempt < 0 {
			t.Fatalf("accepted an out-of-bounds entry %+v", e)
		}
	})
}
