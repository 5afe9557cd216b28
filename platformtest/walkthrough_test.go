package platformtest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// The walk-through in docs/API.md, and the flite build it runs.
var (
	walkthroughDoc     = filepath.Join(repoRoot, "docs", "API.md")
	walkthroughHeading = "### A walk-through: text to speech with a file in and an artifact out"
	fliteDir           = filepath.Join("testdata", "flite")
)

// TestWalkthroughFlite runs the curl walk-through of docs/API.md, exactly as
// the page shows it, against an API and a worker: a real third-party WASI
// program (flite, text to speech) gets its text as an input file, JSON and
// multipart, loads a voice from its module's asset tree, and writes WAV
// files that are collected and downloaded. Every WAV is checked as a WAV, and
// byte for byte against the same module run directly on wazero with the
// same arguments and files.
func TestWalkthroughFlite(t *testing.T) {
	t.Parallel()
	_, err := exec.LookPath("curl")
	require.NoError(t, err, "the walk-through runs curl: install it (apt-get install curl)")
	setup, script := walkthroughScript(t)
	// The first block sets these from `make run`'s files; here they come
	// from the test's platform.
	for _, name := range []string{"API", "KEY", "FLITE_DIR"} {
		require.Regexp(t, `(^|\s)`+name+`=`, setup, "the walk-through's first block no longer sets %s", name)
	}

	p := startPlatform(t)
	key := p.account("pro")
	dir, err := filepath.Abs(fliteDir)
	require.NoError(t, err)
	work := t.TempDir()
	cmd := exec.Command("bash", "-c", "set -euo pipefail\n"+script) //nolint:gosec // the documented commands
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "API="+p.baseURL, "KEY="+key, "FLITE_DIR="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	t.Logf("the walk-through wrote:\n%s", stdout.String())
	require.NoError(t, err, "stderr: %s", stderr.String())

	// What the commands print: the first job, the ranged request's answer
	// and the tar's listing.
	out := stdout.String()
	require.Regexp(t, `(?m)^\{"id":"[^"]+",.*"status":"succeeded".*"artifacts":\[\{"path":"/out/hello.wav"`, out)
	require.Regexp(t, `(?m)^HTTP/1.1 206 Partial Content\r$`, out)
	require.Regexp(t, `(?mi)^Content-Range: bytes 0-3/\d+\r$`, out)
	require.Regexp(t, `(?m)^RIFF$`, out)
	require.Regexp(t, `(?m)^out/slt.wav$`, out)

	// The files the commands downloaded, by name.
	downloaded := map[string][]byte{}
	require.NoError(t, filepath.WalkDir(work, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".wav") {
			return err
		}
		rel, _ := filepath.Rel(work, p)
		b, err := os.ReadFile(p) //nolint:gosec // written by the walk-through
		downloaded[filepath.ToSlash(rel)] = b
		return err
	}))
	require.ElementsMatch(t, []string{"hello.wav", "out/slt.wav"}, keys(downloaded))

	// Each job, as the API and the database hold it.
	res := p.do(http.MethodGet, "/v1/modules", key, "", nil)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	var modules struct {
		Data []struct{ ID, Name, Sha256 string }
	}
	require.NoError(t, json.Unmarshal(res.Body, &modules))
	require.Len(t, modules.Data, 1)
	mod := modules.Data[0]
	wasm, err := os.ReadFile(filepath.Join(fliteDir, "flite.wasm"))
	require.NoError(t, err)
	sum := sha256.Sum256(wasm)
	require.Equal(t, "flite", mod.Name)
	require.Equal(t, hex.EncodeToString(sum[:]), mod.Sha256)

	res = p.do(http.MethodGet, "/v1/modules/"+mod.ID+"/assets", key, "", nil)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	require.Regexp(t, `^\{"data":\[\{"mount":"/voices",`, string(res.Body))

	res = p.do(http.MethodGet, "/v1/jobs?module_id="+mod.ID, key, "", nil)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	var jobs struct {
		Data []struct {
			ID, Status string
			Preopens   []string
		}
	}
	require.NoError(t, json.Unmarshal(res.Body, &jobs))
	require.Len(t, jobs.Data, 2)
	res = p.do(http.MethodGet, "/v1/account", key, "", nil)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	account := uuid.MustParse(decode[client.Account](t, res).ID)
	st := p.storeOf()
	for _, j := range jobs.Data {
		require.Equal(t, "succeeded", j.Status)
		res := p.do(http.MethodGet, "/v1/jobs/"+j.ID+"/artifacts", key, "", nil)
		require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
		var arts struct {
			Data []struct {
				Path      string `json:"path"`
				SizeBytes int    `json:"size_bytes"`
				Sha256    string `json:"sha256"`
			}
		}
		require.NoError(t, json.Unmarshal(res.Body, &arts))
		require.Len(t, arts.Data, 1)
		art := arts.Data[0]

		// The download the walk-through made is the artifact the job lists.
		name := path.Base(art.Path)
		got, ok := downloaded[name]
		if !ok {
			got, ok = downloaded[strings.TrimPrefix(art.Path, "/")]
		}
		require.True(t, ok, "the walk-through did not download %s", art.Path)
		sum := sha256.Sum256(got)
		require.Equal(t, art.Sha256, hex.EncodeToString(sum[:]))
		require.Len(t, got, art.SizeBytes)

		// It is a WAV of speech at the voice's rate ...
		row, err := st.GetJob(context.Background(), account, uuid.MustParse(j.ID))
		require.NoError(t, err)
		if row.RunMS != nil && row.MemoryPeakBytes != nil {
			t.Logf("%s: ran %d ms of its %d ms, memory peak %d bytes", art.Path, *row.RunMS, row.TimeoutMS, *row.MemoryPeakBytes)
		}
		args := row.Args.V
		rate := uint32(8000) // cmu_us_kal, built in
		if len(args) > 1 && args[0] == "-voice" {
			rate = 16000 // cmu_us_slt, from the asset tree
		}
		requireSpeechWAV(t, got, rate)

		// ... and exactly what flite writes when wazero runs it directly.
		inputs, err := st.JobInputs(context.Background(), uuid.MustParse(j.ID))
		require.NoError(t, err)
		require.NotEmpty(t, inputs)
		want := runFliteDirectly(t, wasm, args, j.Preopens, inputs)
		require.Contains(t, want, art.Path)
		require.True(t, bytes.Equal(want[art.Path], got), "%s differs from the direct run (%d and %d bytes)",
			art.Path, len(got), len(want[art.Path]))
	}
}

// walkthroughScript returns the walk-through's first shell block (the
// setup, which names `make run`'s files) and the others, joined.
func walkthroughScript(t *testing.T) (setup, script string) {
	t.Helper()
	b, err := os.ReadFile(walkthroughDoc)
	require.NoError(t, err)
	doc := string(b)
	start := strings.Index(doc, "\n"+walkthroughHeading+"\n")
	require.GreaterOrEqual(t, start, 0, "docs/API.md has no %q", walkthroughHeading)
	section := doc[start+len(walkthroughHeading)+2:]
	if end := regexp.MustCompile(`(?m)^#{2,3} `).FindStringIndex(section); end != nil {
		section = section[:end[0]]
	}
	blocks := regexp.MustCompile("(?ms)^```sh\n(.*?)^```$").FindAllStringSubmatch(section, -1)
	require.GreaterOrEqual(t, len(blocks), 2, "the walk-through has a setup block and at least one more")
	var rest []string
	for _, m := range blocks[1:] {
		rest = append(rest, m[1])
	}
	return blocks[0][1], strings.Join(rest, "\n")
}

// requireSpeechWAV checks a 16-bit mono PCM WAV at rate whose chunk sizes
// match its length, holding at least half a second of sound.
func requireSpeechWAV(t *testing.T, b []byte, rate uint32) {
	t.Helper()
	require.Greater(t, len(b), 44)
	le := binary.LittleEndian
	require.Equal(t, "RIFF", string(b[0:4]))
	require.EqualValues(t, len(b)-8, le.Uint32(b[4:8]))
	require.Equal(t, "WAVEfmt ", string(b[8:16]))
	require.EqualValues(t, 16, le.Uint32(b[16:20]), "fmt chunk size")
	require.EqualValues(t, 1, le.Uint16(b[20:22]), "PCM")
	require.EqualValues(t, 1, le.Uint16(b[22:24]), "channels")
	require.Equal(t, rate, le.Uint32(b[24:28]), "sample rate")
	// b[28:32], the byte rate, is not checked: flite writes the header of
	// a 16 kHz file first and then rewrites only the rate as it appends
	// each utterance (cst_wave_append_riff), so it says 32000 at 8 kHz too.
	require.EqualValues(t, 2, le.Uint16(b[32:34]), "block align")
	require.EqualValues(t, 16, le.Uint16(b[34:36]), "bits per sample")
	require.Equal(t, "data", string(b[36:40]))
	require.EqualValues(t, len(b)-44, le.Uint32(b[40:44]))
	samples := b[44:]
	require.Greater(t, len(samples)/2, int(rate)/2, "under half a second")
	peak := 0
	for i := 0; i+1 < len(samples); i += 2 {
		v := int(int16(le.Uint16(samples[i:])))
		peak = max(peak, v, -v)
	}
	require.Greater(t, peak, 1000, "silence")
}

// runFliteDirectly runs flite on wazero in this process, with host
// directories as the job's preopens (the inputs written into them, the
// vendored voices at /voices), and returns the files it wrote under /out by
// guest path.
func runFliteDirectly(t *testing.T, wasm []byte, args, preopens []string, inputs []store.JobInput) map[string][]byte {
	t.Helper()
	root := t.TempDir()
	fsc := wazero.NewFSConfig()
	for _, p := range preopens {
		require.True(t, strings.HasPrefix(p, "/"), "preopen %q", p)
		host := filepath.Join(root, filepath.FromSlash(p))
		require.NoError(t, os.MkdirAll(host, 0o750))
		fsc = fsc.WithDirMount(host, p)
	}
	for _, in := range inputs {
		host := filepath.Join(root, filepath.FromSlash(in.Path))
		require.NoError(t, os.MkdirAll(filepath.Dir(host), 0o750))
		require.NoError(t, os.WriteFile(host, in.Content, 0o600))
	}
	untar(t, filepath.Join(fliteDir, "voices.tar.gz"), filepath.Join(root, "voices"))

	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer func() { _ = rt.Close(ctx) }()
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	var stderr bytes.Buffer
	mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().
		WithArgs(append([]string{"module"}, args...)...).WithFSConfig(fsc).WithStderr(&stderr))
	require.NoError(t, err, "stderr: %s", stderr.String())
	require.NoError(t, mod.Close(ctx))

	out := map[string][]byte{}
	entries, err := os.ReadDir(filepath.Join(root, "out"))
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(root, "out", e.Name()))
		require.NoError(t, err)
		out["/out/"+e.Name()] = b
	}
	return out
}

func untar(t *testing.T, archive, dir string) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(gunzip(t, archive)))
	require.NoError(t, os.MkdirAll(dir, 0o750))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		require.NoError(t, err)
		require.Equal(t, byte(tar.TypeReg), h.Typeflag, "%s", h.Name)
		require.True(t, filepath.IsLocal(h.Name), "%s", h.Name)
		b, err := io.ReadAll(tr) //nolint:gosec // test data
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, h.Name), b, 0o600))
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
