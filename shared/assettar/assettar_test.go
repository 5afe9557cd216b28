package assettar_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/assettar"
)

// ent is a tar entry to build.
type ent struct {
	name     string
	typ      byte
	data     string
	link     string
	size     int64 // the header's size when data is not given
	sizeOnly bool
}

func build(t testing.TB, es ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, Size: int64(len(e.data))}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if e.sizeOnly {
			h.Size = e.size
		}
		require.NoError(t, tw.WriteHeader(h))
		if !e.sizeOnly {
			_, err := tw.Write([]byte(e.data))
			require.NoError(t, err)
		}
	}
	if len(es) == 0 || !es[len(es)-1].sizeOnly {
		require.NoError(t, tw.Close())
	}
	return buf.Bytes()
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// read lists a normalised tar: name → type and contents.
func read(t testing.TB, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		out[h.Name] = string(h.Typeflag) + ":" + string(data) + h.Linkname
	}
}

func TestNormalizeKeepsATree(t *testing.T) {
	t.Parallel()
	src := build(t,
		ent{name: "./", typ: tar.TypeDir},
		ent{name: "./share/", typ: tar.TypeDir},
		ent{name: "./share/a.txt", data: "hello"},
		ent{name: "share/sub/b", data: "bee"},
		ent{name: "share/link", typ: tar.TypeSymlink, link: "sub/b"},
		ent{name: "share/sub/up", typ: tar.TypeSymlink, link: "../a.txt"},
		ent{name: "share/hard", typ: tar.TypeLink, link: "./share/a.txt"},
		ent{name: "share/sub", typ: tar.TypeDir}, // implied first, then given: fine
	)
	for _, body := range [][]byte{src, gz(src)} {
		var out bytes.Buffer
		st, err := assettar.Normalize(bytes.NewReader(body), &out, assettar.Limits{MaxFileBytes: 13})
		require.NoError(t, err)
		require.Equal(t, assettar.Stats{Files: 3, Bytes: 13, Entries: 7}, st, "hard links count like copies")
		require.Equal(t, map[string]string{
			"share/":       "5:",
			"share/a.txt":  "0:hello",
			"share/sub/b":  "0:bee",
			"share/link":   "2:sub/b",
			"share/sub/up": "2:../a.txt",
			"share/hard":   "1:share/a.txt",
			"share/sub/":   "5:",
		}, read(t, out.Bytes()))
	}
}

func TestNormalizeRefuses(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("n", 256)
	cases := []struct {
		name string
		body []byte
		code apperr.Code
		msg  string
	}{
		{"dotdot", build(t, ent{name: "a/../../etc/passwd", data: "x"}), apperr.InvalidArchive, "\"..\""},
		{"absolute", build(t, ent{name: "/etc/passwd", data: "x"}), apperr.InvalidArchive, "absolute"},
		{"symlink out", build(t, ent{name: "l", typ: tar.TypeSymlink, link: "../x"}), apperr.InvalidArchive, "leaves the tree"},
		{"symlink deep out", build(t, ent{name: "a/b/l", typ: tar.TypeSymlink, link: "../../../x"}), apperr.InvalidArchive, "leaves the tree"},
		{"symlink absolute", build(t, ent{name: "l", typ: tar.TypeSymlink, link: "/etc"}), apperr.InvalidArchive, "absolute"},
		{"through symlink", build(t, ent{name: "l", typ: tar.TypeSymlink, link: "."}, ent{name: "l/x", data: "x"}), apperr.InvalidArchive, "symbolic link"},
		{"under file", build(t, ent{name: "f", data: "x"}, ent{name: "f/x", data: "x"}), apperr.InvalidArchive, "is a file"},
		{"char device", build(t, ent{name: "c", typ: tar.TypeChar}), apperr.InvalidArchive, "device"},
		{"block device", build(t, ent{name: "b", typ: tar.TypeBlock}), apperr.InvalidArchive, "device"},
		{"fifo", build(t, ent{name: "p", typ: tar.TypeFifo}), apperr.InvalidArchive, "FIFO"},
		{"hard link out", build(t, ent{name: "h", typ: tar.TypeLink, link: "../etc/passwd"}), apperr.InvalidArchive, "hard link"},
		{"hard link absent", build(t, ent{name: "h", typ: tar.TypeLink, link: "nothere"}), apperr.InvalidArchive, "hard link"},
		{"hard link to dir", build(t, ent{name: "d", typ: tar.TypeDir}, ent{name: "h", typ: tar.TypeLink, link: "d"}), apperr.InvalidArchive, "hard link"},
		{"duplicate", build(t, ent{name: "a", data: "1"}, ent{name: "./a", data: "2"}), apperr.InvalidArchive, "twice"},
		{"duplicate dir", build(t, ent{name: "d/", typ: tar.TypeDir}, ent{name: "d", typ: tar.TypeDir}), apperr.InvalidArchive, "twice"},
		{"file over dir", build(t, ent{name: "d/x", data: "1"}, ent{name: "d", data: "2"}), apperr.InvalidArchive, "directory of that name"},
		{"long name", build(t, ent{name: long, data: "x"}), apperr.InvalidArchive, "longer than 255"},
		{"too large", build(t, ent{name: "a", data: "12345"}, ent{name: "b", data: "123456"}), apperr.AssetsTooLarge, "max_asset_bytes"},
		{"header claims too much", build(t, ent{name: "a", sizeOnly: true, size: 1 << 40}), apperr.AssetsTooLarge, "max_asset_bytes"},
		{"truncated", append(build(t, ent{name: "a", sizeOnly: true, size: 5}), "abc"...), apperr.InvalidArchive, "ends"},
		{"not a tar", []byte(strings.Repeat("hello world ", 100)), apperr.InvalidArchive, "not a tar"},
		{"bad gzip", append([]byte{0x1f, 0x8b}, []byte("junkjunkjunk")...), apperr.InvalidArchive, "gzip"},
		{"root file", build(t, ent{name: ".", data: "x"}), apperr.InvalidArchive, "root"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := assettar.Normalize(bytes.NewReader(c.body), io.Discard, assettar.Limits{MaxFileBytes: 10})
			require.Error(t, err)
			require.Equal(t, c.code, apperr.CodeOf(err), err.Error())
			require.Contains(t, err.Error(), c.msg)
		})
	}
}

func TestNormalizeCapIsExact(t *testing.T) {
	t.Parallel()
	at := build(t, ent{name: "a", data: "12345"}, ent{name: "b", data: "67890"})
	_, err := assettar.Normalize(bytes.NewReader(at), io.Discard, assettar.Limits{MaxFileBytes: 10})
	require.NoError(t, err)
	_, err = assettar.Normalize(bytes.NewReader(at), io.Discard, assettar.Limits{MaxFileBytes: 9})
	require.Equal(t, apperr.AssetsTooLarge, apperr.CodeOf(err))
}

func TestNormalizeStopsGzipBombs(t *testing.T) {
	t.Parallel()
	// A tar of a thousand directories whose headers alone pass the
	// stream's bound; gzipped, it is small.
	var es []ent
	for i := 0; i < 1000; i++ {
		es = append(es, ent{name: "d" + strings.Repeat("0", 3) + string(rune('A'+i%26)) + "/" + strings.Repeat("z", 1+i%200) + "/", typ: tar.TypeDir})
	}
	body := gz(build(t, es...))
	_, err := assettar.Normalize(bytes.NewReader(body), io.Discard, assettar.Limits{MaxFileBytes: 1, Overhead: 64 << 10})
	require.Equal(t, apperr.InvalidArchive, apperr.CodeOf(err))
	require.Contains(t, err.Error(), "decompressed")

	// Zeros past the end of the archive are not read.
	zeros := gz(append(build(t, ent{name: "a", data: "x"}), make([]byte, 10<<20)...))
	_, err = assettar.Normalize(bytes.NewReader(zeros), io.Discard, assettar.Limits{MaxFileBytes: 1, Overhead: 64 << 10})
	require.NoError(t, err)
}

func TestNormalizeCountsEntries(t *testing.T) {
	t.Parallel()
	es := []ent{}
	for i := 0; i < 5; i++ {
		es = append(es, ent{name: strings.Repeat("x", i+1), data: ""})
	}
	_, err := assettar.Normalize(bytes.NewReader(build(t, es...)), io.Discard, assettar.Limits{MaxFileBytes: 1, MaxEntries: 5})
	require.NoError(t, err)
	_, err = assettar.Normalize(bytes.NewReader(build(t, es...)), io.Discard, assettar.Limits{MaxFileBytes: 1, MaxEntries: 4})
	require.Equal(t, apperr.InvalidArchive, apperr.CodeOf(err))
	require.Contains(t, err.Error(), "more than 4 entries")
}

// FuzzNormalize: whatever the upload, Normalize either refuses it or writes
// a tar that holds only clean relative names, the allowed types, within the
// limits, and that normalises to itself.
func FuzzNormalize(f *testing.F) {
	f.Add(build(f, ent{name: "a/b", data: "x"}, ent{name: "a/l", typ: tar.TypeSymlink, link: "b"}))
	f.Add(gz(build(f, ent{name: "./d/", typ: tar.TypeDir}, ent{name: "d/h", typ: tar.TypeLink, link: "d"})))
	f.Add(build(f, ent{name: "x", typ: tar.TypeLink, link: "x"}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		lim := assettar.Limits{MaxFileBytes: 4096, MaxEntries: 64, Overhead: 64 << 10}
		var out bytes.Buffer
		st, err := assettar.Normalize(bytes.NewReader(body), &out, lim)
		if err != nil {
			code := apperr.CodeOf(err)
			if code != apperr.InvalidArchive && code != apperr.AssetsTooLarge {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if st.Bytes > lim.MaxFileBytes || st.Entries > lim.MaxEntries {
			t.Fatalf("past the limits: %+v", st)
		}
		var again bytes.Buffer
		st2, err := assettar.Normalize(bytes.NewReader(out.Bytes()), &again, lim)
		if err != nil {
			t.Fatalf("the normalised tar is refused: %v", err)
		}
		if st2 != st || !bytes.Equal(out.Bytes(), again.Bytes()) {
			t.Fatalf("normalising twice changed the tar")
		}
		tr := tar.NewReader(bytes.NewReader(out.Bytes()))
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("the normalised tar does not read: %v", err)
			}
			if strings.HasPrefix(h.Name, "/") || strings.HasPrefix(h.Name, "./") || strings.Contains(h.Name, "..") && strings.Contains("/"+h.Name+"/", "/../") {
				t.Fatalf("bad name %q", h.Name)
			}
			switch h.Typeflag {
			case tar.TypeDir, tar.TypeReg, tar.TypeSymlink, tar.TypeLink:
			default:
				t.Fatalf("type %q kept", h.Typeflag)
			}
		}
	})
}
