package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wasmwizard/wasmwizard/shared/store"
)

// The large-first step's module: megabytes of generated code and of data
// (about 30 MB in all by default; see largemod.go for what it contains).
var (
	largeCodeMB = flag.Int("large-code-mb", 4, "large-first: megabytes of generated code in the module")
	largeDataMB = flag.Int("large-data-mb", 26, "large-first: megabytes of data segment in the module")
)

// largeTree is the large-first step's asset tree: 1000 files of 10 KiB
// (10 MiB) in ten directories, their bytes made of seed (a tree of its own
// for each run, so that each is a first prefetch); the module reads
// share/d2/f42.
func largeTree(seed byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	content := bytes.Repeat([]byte{seed}, 10240)
	for i := range 1000 {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%d/f%d", i%10, i), Mode: 0o644,
			Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(content); err != nil {
			return nil, err
		}
	}
	err := tw.Close()
	return buf.Bytes(), err
}

// largeFirst: a module of about 30 MB with a 10 MiB asset tree, uploaded
// (the module, then the tree), and its first job submitted as soon as both
// uploads have answered: the time from then to the job's result, with
// whatever the upload's pre-compile and asset prefetch have done by then.
// Beside it, when the pre-compile and the prefetch finished (watched on the
// worker's disk: a new file in wazero's compilation cache, the tree's tar
// in the asset store), and the module's second run. Once without collect
// patterns and once with (such a job runs on the interruptible engine,
// which the upload's pre-compile does not compile for), each with a module
// of its own.
func (b *bench) largeFirst(ctx context.Context) error {
	for i, collect := range []bool{false, true} {
		tree, err := largeTree(byte('a' + i)) //nolint:gosec // small
		if err != nil {
			return err
		}
		wasm := generateLargeModule(*largeCodeMB<<20, *largeDataMB<<20, uint32(100+i)) //nolint:gosec // small
		r, err := b.largeFirstRun(ctx, wasm, tree, collect)
		if err != nil {
			return err
		}
		what := "without collect"
		if collect {
			what = "with collect (interruptible engine)"
		}
		b.add(row{name: fmt.Sprintf("%.1f MB module (%d MB code, %d MB data) + 10 MiB tree, %s: upload, tree PUT", float64(len(wasm))/1e6,
			*largeCodeMB, *largeDataMB, what), value: fmt.Sprintf("%.0f ms, %.0f ms", ms(r.upload), ms(r.treePut))})
		b.add(row{name: "  first run: upload done → result (queue; compiling in the job; run)", value: fmt.Sprintf("%.0f ms (%s; %s; %s)",
			ms(r.first), r.queue, r.firstCompile, r.run), target: "≤ 1 s"})
		b.add(row{name: "  pre-compile on disk / tree prefetched, after upload done", value: fmt.Sprintf("%s / %s", r.compiled, r.prefetched)})
		b.add(row{name: "  second run (compiling in the job)", value: fmt.Sprintf("%.0f ms (%s)", ms(r.second), r.secondCompile)})
		b.add(row{name: "  the module's bytes read from Postgres as a worker reads them (store.ModuleContent)", value: fmt.Sprintf("%.0f ms", ms(r.fetch))})
	}
	return nil
}

type largeFirstResult struct {
	upload, treePut, first, second time.Duration
	queue, run                     string
	compiled, prefetched           string
	// firstCompile and secondCompile are the time each job spent getting
	// the compiled module (compiling it, or loading it from the disk
	// cache: a miss in its child's memory), from the worker's metrics.
	firstCompile, secondCompile string
	// fetch is one read of the module's bytes as a worker fetches them.
	fetch time.Duration
}

func (b *bench) largeFirstRun(ctx context.Context, wasm, tree []byte, collect bool) (largeFirstResult, error) {
	var r largeFirstResult
	cacheDir := filepath.Join(b.scratch, "worker", "wazero-cache")
	assetDir := filepath.Join(b.scratch, "worker", "assets")
	cached := files(cacheDir)
	assets := files(assetDir)

	start := time.Now()
	code, out, err := b.do(ctx, http.MethodPost, "/v1/modules?name=large-first", "application/wasm", wasm)
	if err != nil || code != http.StatusCreated {
		return r, fmt.Errorf("upload the large module: %d %s %w", code, out, err)
	}
	r.upload = time.Since(start)
	var m struct{ ID string }
	if err := json.Unmarshal(out, &m); err != nil {
		return r, err
	}
	start = time.Now()
	code, out, err = b.do(ctx, http.MethodPut, "/v1/modules/"+m.ID+"/assets?mount=/share", "application/x-tar", tree)
	if err != nil || code/100 != 2 {
		return r, fmt.Errorf("put the asset tree: %d %s %w", code, out, err)
	}
	r.treePut = time.Since(start)
	done := time.Now()

	// Watch the worker's disk while the first job runs.
	watchCtx, stopWatch := context.WithCancel(ctx)
	compiledAt, prefetchedAt := make(chan time.Duration, 1), make(chan time.Duration, 1)
	go watchNewFile(watchCtx, cacheDir, cached, done, compiledAt)
	go watchNewFile(watchCtx, assetDir, assets, done, prefetchedAt)

	job := map[string]any{"module_id": m.ID, "timeout_ms": 30000}
	if collect {
		job["collect"] = []string{"/out/*"}
	}
	body, _ := json.Marshal(job)
	run := func() (map[string]any, time.Duration, error) {
		start := time.Now()
		code, out, err := b.do(ctx, http.MethodPost, "/v1/jobs?wait=60s", "application/json", body)
		d := time.Since(start)
		if err != nil || code != http.StatusCreated {
			return nil, d, fmt.Errorf("submit: %d %s %w", code, out, err)
		}
		b.submitted.Add(1)
		var j map[string]any
		if err := json.Unmarshal(out, &j); err != nil {
			return nil, d, err
		}
		if j["status"] != "succeeded" || !strings.HasPrefix(fmt.Sprint(j["stdout"]), "read 10240 bytes, checksum ") {
			return j, d, fmt.Errorf("large-first job: %v %v %v %v", j["status"], j["error_code"], j["error_message"], j["stdout"])
		}
		return j, d, nil
	}
	compiling := b.compileMeter(ctx)
	j, _, err := run()
	r.first = time.Since(done)
	r.firstCompile = compiling()
	if err != nil {
		stopWatch()
		return r, err
	}
	if u, ok := j["usage"].(map[string]any); ok {
		r.queue, r.run = fmt.Sprintf("%v ms", u["queue_ms"]), fmt.Sprintf("%v ms", u["run_ms"])
	}
	// Give the pre-compile and the prefetch up to a minute to show.
	wait := func(c <-chan time.Duration) string {
		select {
		case d := <-c:
			return fmt.Sprintf("%.0f ms", ms(d))
		case <-time.After(time.Minute):
			return "not within a minute"
		}
	}
	r.compiled, r.prefetched = wait(compiledAt), wait(prefetchedAt)
	stopWatch()
	compiling = b.compileMeter(ctx)
	if _, r.second, err = run(); err != nil {
		return r, err
	}
	r.secondCompile = compiling()
	st, err := store.Open(ctx, b.dbURL, 1)
	if err != nil {
		return r, err
	}
	defer func() { _ = st.Close() }()
	sum := sha256.Sum256(wasm)
	start = time.Now()
	content, err := st.ModuleContent(ctx, sum[:])
	r.fetch = time.Since(start)
	if err == nil && !bytes.Equal(content, wasm) {
		err = errors.New("the module's bytes read back differ")
	}
	return r, err
}

// compileMeter reads the worker's wasmwizard_module_compile_seconds (the
// time jobs spent getting compiled modules that their child did not have
// in memory) and returns a function that tells what one more finished job
// added (it waits for wasmwizard_jobs_finished_total to count the job: the
// worker updates its metrics after the result is written).
func (b *bench) compileMeter(ctx context.Context) func() string {
	read := func() (sum, count, finished float64, err error) {
		page, err := b.workerMetrics(ctx)
		for _, line := range strings.Split(page, "\n") {
			if v, ok := strings.CutPrefix(line, "wasmwizard_module_compile_seconds_sum "); ok {
				sum, _ = strconv.ParseFloat(v, 64)
			}
			if v, ok := strings.CutPrefix(line, "wasmwizard_module_compile_seconds_count "); ok {
				count, _ = strconv.ParseFloat(v, 64)
			}
		}
		for _, m := range samples(page, "wasmwizard_jobs_finished_total") {
			finished += m.value
		}
		return sum, count, finished, err
	}
	sum0, count0, finished0, err0 := read()
	return func() string {
		sum, count, finished, err := read()
		for deadline := time.Now().Add(3 * time.Second); err == nil && finished <= finished0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
			sum, count, finished, err = read()
		}
		switch {
		case err0 != nil || err != nil || finished <= finished0:
			return "metrics unavailable"
		case count == count0:
			return "none"
		}
		return fmt.Sprintf("%.0f ms", (sum-sum0)*1000)
	}
}

// files lists the regular files under dir (wazero keeps its cache in a
// directory per version).
func files(dir string) map[string]bool {
	out := map[string]bool{}
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out[path] = true
		}
		return nil
	})
	return out
}

// watchNewFile sends, once, how long after since a regular file not in
// before appeared in dir, polling every 5 ms.
func watchNewFile(ctx context.Context, dir string, before map[string]bool, since time.Time, found chan<- time.Duration) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		for name := range files(dir) {
			if !before[name] && !strings.HasSuffix(name, ".tmp") && !strings.HasPrefix(filepath.Base(name), ".") {
				found <- time.Since(since)
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
