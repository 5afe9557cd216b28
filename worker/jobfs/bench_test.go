package jobfs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	sysapi "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// benchFileSize is the file the read benchmarks read: 64 MiB.
const benchFileSize = 64 << 20

// shmDir makes a directory on tmpfs (/dev/shm) holding the benchmark file,
// the floor the in-memory filesystem is compared with; it skips where there
// is no /dev/shm.
func shmDir(b *testing.B, data []byte) string {
	b.Helper()
	if st, err := os.Stat("/dev/shm"); err != nil || !st.IsDir() {
		b.Skip("no /dev/shm")
	}
	dir, err := os.MkdirTemp("/dev/shm", "jobfs-bench-")
	if err != nil {
		b.Skip(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

func benchData() []byte { return bytes.Repeat([]byte("0123456789abcdef"), benchFileSize/16) }

// readThrough reads p from fsys sequentially in 64 KiB reads via the File API.
func readThrough(b *testing.B, fsys sysapi.FS, p string) {
	f, errno := fsys.OpenFile(p, sysapi.O_RDONLY, 0)
	if errno != 0 {
		b.Fatal(errno)
	}
	buf := make([]byte, 64<<10)
	total := 0
	for {
		n, errno := f.Read(buf)
		if errno != 0 {
			b.Fatal(errno)
		}
		if n == 0 {
			break
		}
		total += n
	}
	f.Close()
	if total != benchFileSize {
		b.Fatalf("read %d bytes", total)
	}
}

// BenchmarkHostSequentialRead reads a 64 MiB file through the sys.File API:
// jobfs (asset tree, input, a file the job wrote in 4 KiB writes) against
// wazero's own host directory on tmpfs.
func BenchmarkHostSequentialRead(b *testing.B) {
	data := benchData()
	tree, err := TreeFromMap(map[string][]byte{"big.bin": data})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("jobfs-asset", func(b *testing.B) {
		f, _ := New(Options{}, []Mount{{Path: "/a", Tree: tree}}, nil)
		b.SetBytes(benchFileSize)
		for b.Loop() {
			readThrough(b, f.Root(), "a/big.bin")
		}
	})
	b.Run("jobfs-input", func(b *testing.B) {
		f, _ := New(Options{}, nil, []Input{{Path: "/big.bin", Data: data}})
		b.SetBytes(benchFileSize)
		for b.Loop() {
			readThrough(b, f.Root(), "big.bin")
		}
	})
	b.Run("jobfs-written", func(b *testing.B) {
		f, _ := New(Options{MaxBytes: benchFileSize}, nil, nil)
		w, errno := f.Root().OpenFile("big.bin", sysapi.O_CREAT|sysapi.O_WRONLY, 0)
		if errno != 0 {
			b.Fatal(errno)
		}
		for off := 0; off < benchFileSize; off += 4096 {
			if _, errno := w.Write(data[off : off+4096]); errno != 0 {
				b.Fatal(errno)
			}
		}
		w.Close()
		b.SetBytes(benchFileSize)
		for b.Loop() {
			readThrough(b, f.Root(), "big.bin")
		}
	})
	b.Run("wazero-dirfs-shm", func(b *testing.B) {
		fsys := sysfs.DirFS(shmDir(b, data))
		b.SetBytes(benchFileSize)
		for b.Loop() {
			readThrough(b, fsys, "big.bin")
		}
	})
}

// BenchmarkGuestSequentialRead runs a Go wasip1 guest (testdata/fsprobe in
// "cat" mode, compiled once with wazero's compiler) that reads a 64 MiB file
// in 64 KiB reads: jobfs against wazero's WithDirMount of a tmpfs directory.
// Each iteration includes instantiating the guest (the same for both).
func BenchmarkGuestSequentialRead(b *testing.B) {
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	cm, err := r.CompileModule(ctx, gunzipFile(b, filepath.Join("testdata", "fsprobe.wasm.gz")))
	if err != nil {
		b.Fatal(err)
	}
	data := benchData()
	run := func(b *testing.B, fsc wazero.FSConfig) {
		var out bytes.Buffer
		cfg := wazero.NewModuleConfig().WithName("").WithFSConfig(fsc).WithStdout(&out).WithStderr(io.Discard).
			WithArgs("fsprobe", "cat", "/big.bin")
		mod, err := r.InstantiateModule(ctx, cm, cfg)
		if err != nil {
			b.Fatal(err)
		}
		mod.Close(ctx)
		if n, _ := strconv.Atoi(strings.TrimSpace(out.String())); n != benchFileSize {
			b.Fatalf("guest read %q", out.String())
		}
	}
	b.Run("jobfs-input", func(b *testing.B) {
		b.SetBytes(benchFileSize)
		for b.Loop() {
			f, _ := New(Options{}, nil, []Input{{Path: "/big.bin", Data: data}})
			fsc, err := f.FSConfig(wazero.NewFSConfig(), []string{"/"})
			if err != nil {
				b.Fatal(err)
			}
			run(b, fsc)
		}
	})
	b.Run("wazero-dirmount-shm", func(b *testing.B) {
		dir := shmDir(b, data)
		b.SetBytes(benchFileSize)
		for b.Loop() {
			run(b, wazero.NewFSConfig().WithDirMount(dir, "/"))
		}
	})
}

// BenchmarkNewWithAssetTree measures building a job filesystem that mounts a
// 10 MiB asset tree of 1000 files: it does not depend on the tree's size.
func BenchmarkNewWithAssetTree(b *testing.B) {
	files := map[string][]byte{}
	for i := 0; i < 1000; i++ {
		files[fmt.Sprintf("d%02d/f%03d", i%10, i)] = make([]byte, 10<<10)
	}
	tree, err := TreeFromMap(files)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := New(Options{MaxBytes: 1 << 20}, []Mount{{Path: "/usr/share/data", Tree: tree}}, []Input{{Path: "/in/a", Data: []byte("x")}}); err != nil {
			b.Fatal(err)
		}
	}
}
