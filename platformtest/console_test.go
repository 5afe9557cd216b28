package platformtest

import (
	"archive/tar"
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/google/uuid"
	_ "github.com/lib/pq" // the test inserts many jobs directly
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

var consoleShots = flag.String("console.screenshots", "",
	"write screenshots of the console's pages to this directory (make console-screenshots: docs/console)")

var chromium struct {
	once sync.Once
	path string
	err  error
}

// chromiumPath finds Chromium, installing it with scripts/deps.sh (apt) when
// it is missing. The test is skipped only when it cannot be installed.
func chromiumPath(t *testing.T) string {
	t.Helper()
	chromium.once.Do(func() {
		if p := os.Getenv("WIZARD_CHROMIUM"); p != "" {
			chromium.path = p
			return
		}
		find := func() string {
			for _, n := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
				if p, err := exec.LookPath(n); err == nil {
					return p
				}
			}
			return ""
		}
		if chromium.path = find(); chromium.path != "" {
			return
		}
		out, err := exec.Command("bash", filepath.Join(repoRoot, "scripts", "deps.sh"), "chromium").CombinedOutput()
		if chromium.path = find(); chromium.path == "" {
			chromium.err = fmt.Errorf("scripts/deps.sh chromium: %w: %s", err, out)
		}
	})
	if chromium.err != nil {
		t.Skipf("the console's browser tests need Chromium, which is not installed and could not be installed: %v", chromium.err)
	}
	return chromium.path
}

// browser is one headless Chromium tab.
type browser struct {
	t   *testing.T
	ctx context.Context
	url string
}

func newBrowser(t *testing.T, baseURL string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.Headless, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
	}
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first action starts the browser, which lives as long as the
	// context it ran in: this one, not a timeout's.
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)))
	b := &browser{t: t, ctx: ctx, url: baseURL}
	return b
}

// at is the same tab, failing the test t.
func (b *browser) at(t *testing.T) *browser { return &browser{t: t, ctx: b.ctx, url: b.url} }

// do runs steps, each within a minute.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	require.NoError(b.t, chromedp.Do(ctx, steps...))
}

func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	require.NoError(b.t, err, "%s", expr)
	return v
}

// until waits, within 30 s, for a JavaScript condition to hold in the page.
func (b *browser) until(cond string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(20*time.Millisecond)))
	if err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		b.t.Fatalf("waiting for %s: %v\npage text:\n%s", cond, err, text)
	}
}

// page opens a route of the console and waits until it has drawn.
func (b *browser) page(route, name string) {
	b.t.Helper()
	b.do(chromedp.Evaluate[chromedp.Void](`delete document.body.dataset.page;
		if (location.hash === ` + quote(route) + `) window.dispatchEvent(new HashChangeEvent('hashchange'));
		else location.hash = ` + quote(route)))
	b.until(`document.body.dataset.page === ` + quote(name))
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }

// shot writes a screenshot of the whole page when -console.screenshots is
// set.
func (b *browser) shot(name string) {
	b.t.Helper()
	if *consoleShots == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err)
	require.NoError(b.t, os.WriteFile(filepath.Join(*consoleShots, name+".png"), png, 0o644))
}

// shots takes the page in the light scheme, and also dark and at a phone's
// width when asked.
func (b *browser) shots(name string, dark, phone bool) {
	b.t.Helper()
	if *consoleShots == "" {
		return
	}
	b.shot(name)
	if dark {
		b.scheme("dark")
		b.shot(name + "-dark")
		b.scheme("light")
	}
	if phone { // the first screen only, as a phone shows it
		b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
		png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
		require.NoError(b.t, err)
		require.NoError(b.t, os.WriteFile(filepath.Join(*consoleShots, name+"-phone.png"), png, 0o644))
		b.do(chromedp.EmulateViewport(1280, 900))
	}
}

// phoneShot writes a screenshot of the screen a phone (390×844) shows
// with the element sel scrolled into view, when -console.screenshots is
// set.
func (b *browser) phoneShot(name, sel string) {
	b.t.Helper()
	if *consoleShots == "" {
		return
	}
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)),
		chromedp.Evaluate[chromedp.Void](`document.querySelector(`+quote(sel)+`).scrollIntoView({block: 'start'}); window.scrollBy(0, -12)`))
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	require.NoError(b.t, err)
	require.NoError(b.t, os.WriteFile(filepath.Join(*consoleShots, name+"-phone.png"), png, 0o644))
	b.do(chromedp.EmulateViewport(1280, 900), chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
}

// download clicks the element sel and waits for the browser to have saved
// the file the click started (the download-complete event), in a
// directory of the test's. It returns the URL the browser downloaded from,
// the file name the page suggested and the bytes saved.
func (b *browser) download(sel string) (url, name string, data []byte) {
	b.t.Helper()
	dir := b.t.TempDir()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: new(true)})
	require.NoError(b.t, err)
	begins := chromedp.Events(ctx, cdpbrowser.DownloadWillBegin)
	progress := chromedp.Events(ctx, cdpbrowser.DownloadProgress)
	b.do(chromedp.Click(chromedp.CSS(sel)))
	var guid string
	for ev, err := range begins {
		require.NoError(b.t, err, "waiting for the download of %s to begin", sel)
		guid, url, name = ev.GUID, ev.URL, ev.SuggestedFilename
		break
	}
	for ev, err := range progress {
		require.NoError(b.t, err, "waiting for the download of %s to complete", sel)
		if ev.GUID != guid {
			continue
		}
		require.NotEqual(b.t, cdpbrowser.DownloadProgressStateCanceled, ev.State, "the download of %s was cancelled", sel)
		if ev.State == cdpbrowser.DownloadProgressStateCompleted {
			break
		}
	}
	data, err = os.ReadFile(filepath.Join(dir, guid))
	require.NoError(b.t, err)
	return url, name, data
}

func (b *browser) scheme(s string) {
	b.t.Helper()
	_, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: s}}})
	require.NoError(b.t, err)
}

// labelled checks that every form control on the page has a label and
// every button a name: what a screen reader announces.
func (b *browser) labelled() {
	b.t.Helper()
	missing := eval[[]string](b, `[...document.querySelectorAll('input, select, textarea, button')]
		.filter((el) => el.type !== 'hidden' && !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
		.map((el) => el.outerHTML.slice(0, 80))`)
	require.Empty(b.t, missing, "controls without a label")
}

// The console in a real browser against a real API and worker: sign-in
// with a bad key and a good one (by keyboard), upload, a run with stdin
// whose output is HTML and ANSI escapes (shown as text, never run),
// live output while a job runs (once the API streams it), cancelling a
// running job, the jobs list over 10,000 jobs, the account's
// usage chart, and the operator's queues, accounts (create, change tier) and
// audit log.
func TestConsole(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	key := p.account("pro")
	b := newBrowser(t, p.baseURL)
	if *consoleShots != "" {
		require.NoError(t, os.MkdirAll(*consoleShots, 0o755))
	}

	// First load, with an empty cache: what it transfers and when it is
	// interactive (the router has drawn the sign-in form). Measured, not
	// asserted.
	b.do(chromedp.Navigate(p.baseURL + "/console/"))
	b.until(`document.body.dataset.ready === 'true'`)
	ready := eval[float64](b, `performance.getEntriesByName('console-ready')[0].startTime`)
	transfer := eval[float64](b, `[...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]
		.reduce((n, e) => n + e.transferSize, 0)`)
	files := eval[int](b, `1 + performance.getEntriesByType('resource').length`)
	t.Logf("console first load: %d requests, %.0f bytes transferred (compressed, headers included), interactive at %.0f ms",
		files, transfer, ready)

	t.Run("bad key", func(t *testing.T) {
		b := b.at(t)
		b.do(chromedp.SendKeys(chromedp.CSS(`input[name=credential]`), "ww_"+strings.Repeat("Z", 32)+kb.Enter))
		b.until(`(document.querySelector('[role=alert]') || {}).textContent?.includes('was refused')`)
		require.Nil(t, eval[*string](b, `sessionStorage.getItem('wasmwizard.credential')`), "a refused key is not kept")
		b.labelled()
		b.shots("signin", true, true)
	})

	t.Run("sign in by keyboard", func(t *testing.T) {
		b := b.at(t)
		b.do(chromedp.Navigate(p.baseURL+"/console/"), chromedp.WaitVisible(chromedp.CSS(`input[name=credential]`)))
		b.until(`document.activeElement && document.activeElement.name === 'credential'`)
		b.do(chromedp.KeyEvent(key + kb.Enter))
		b.until(`document.body.dataset.page === 'modules'`)
		require.Equal(t, key, eval[string](b, `sessionStorage.getItem('wasmwizard.credential')`))
		require.Empty(t, eval[string](b, `document.cookie`), "no cookie")
		require.NotContains(t, eval[string](b, `location.href`), key, "never in the URL")
		// The first Tab of a freshly loaded page reaches the skip link
		// (the key stays in this tab's sessionStorage over a reload).
		b.do(chromedp.Reload())
		b.until(`document.body.dataset.page === 'modules'`)
		b.do(chromedp.KeyEvent(kb.Tab))
		require.Equal(t, "Skip to content", eval[string](b, `document.activeElement.textContent`))
	})

	dir := t.TempDir()
	// talkloop (writes a line to stdout and one to stderr, then loops)
	// comes with the live output stream; until both are in, the live
	// output subtest says so and is skipped.
	live := slices.Contains(fixtures.Names(), "talkloop") &&
		decode[client.Error](t, p.do(http.MethodGet, "/v1/jobs/"+uuid.NewString()+"/stream", key, "", nil)).Detail != "no such route"
	uploads := []string{fixtures.Echo, fixtures.Loop, fixtures.Reverse}
	if live {
		uploads = append(uploads, "talkloop")
	}
	for _, f := range uploads {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f+".wasm"), fixtures.Bytes(f), 0o644))
	}
	t.Run("upload", func(t *testing.T) {
		b := b.at(t)
		b.page("#/modules", "modules")
		b.labelled()
		b.do(chromedp.SendKeys(chromedp.CSS(`input[name=module]`), filepath.Join(dir, "echo.wasm")))
		b.until(`[...document.querySelectorAll('main td a')].some((a) => a.textContent === 'echo')`)
		require.Equal(t, 100, eval[int](b, `document.querySelector('progress').value`))
		if live {
			b.do(chromedp.SendKeys(chromedp.CSS(`input[name=module]`), filepath.Join(dir, "talkloop.wasm")))
			b.until(`[...document.querySelectorAll('main td a')].some((a) => a.textContent === 'talkloop')`)
		}
		b.do(chromedp.SendKeys(chromedp.CSS(`input[name=module]`), filepath.Join(dir, "reverse.wasm")))
		b.until(`[...document.querySelectorAll('main td a')].some((a) => a.textContent === 'reverse')`)
		b.do(chromedp.SendKeys(chromedp.CSS(`input[name=module]`), filepath.Join(dir, "loop.wasm")))
		b.until(`[...document.querySelectorAll('main td a')].some((a) => a.textContent === 'loop')`)
		b.shots("modules", true, true)

		// Dropped on the page: a drop event carrying the file, as a
		// drag from the desktop makes it.
		b.do(chromedp.Evaluate[chromedp.Void](`(() => {
			const bytes = Uint8Array.from(atob(` + quote(base64.StdEncoding.EncodeToString(fixtures.Bytes(fixtures.Hello))) + `), (c) => c.charCodeAt(0));
			const dt = new DataTransfer();
			dt.items.add(new File([bytes], 'dropped.wasm', { type: 'application/wasm' }));
			const zone = document.querySelector('.drop');
			zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
			zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
		})()`))
		b.until(`[...document.querySelectorAll('main td a')].some((a) => a.textContent === 'dropped')`)

		// Deleted after the confirmation the page asks for.
		dialogs := chromedp.Events(b.ctx, page.JavascriptDialogOpening)
		go func() {
			for _, err := range dialogs {
				if err == nil { // else the tab is gone: nothing to answer
					_, _ = chromedp.Call(b.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
				}
				return
			}
		}()
		b.do(chromedp.Click(chromedp.Search(`//a[text()="dropped"]`)))
		b.until(`document.body.dataset.page === 'modules/:id' && document.querySelector('main h1').textContent.includes('dropped')`)
		b.do(chromedp.Click(chromedp.Search(`//button[text()="Delete module"]`)))
		b.until(`document.body.dataset.page === 'modules' && ![...document.querySelectorAll('main td a')].some((a) => a.textContent === 'dropped')`)

		b.do(chromedp.Click(chromedp.CSS(`main td a`))) // the newest: loop
		b.until(`document.body.dataset.page === 'modules/:id' && document.querySelector('main h1').textContent.includes('loop')`)
		b.shots("module", false, false)
	})
	modules := decode[client.Page[client.Module]](t, p.do(http.MethodGet, "/v1/modules", key, "", nil)).Data
	ids := map[string]string{}
	for _, m := range modules {
		ids[m.Name] = m.ID
	}
	require.Contains(t, ids, "echo")

	hostile := "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">\x1b[31mred\x1b[0m\n"
	t.Run("run with stdin: output is text", func(t *testing.T) {
		b := b.at(t)
		b.page("#/run?module="+ids["echo"], "run")
		b.labelled()
		b.do(chromedp.SetValue(chromedp.CSS(`textarea[name=args]`), "<b>bold</b>\nsecond"),
			chromedp.SetValue(chromedp.CSS(`textarea[name=env]`), "GREETING=<i>hi</i>"),
			chromedp.SetValue(chromedp.CSS(`textarea[name=stdin]`), hostile),
			chromedp.SetValue(chromedp.CSS(`textarea[name=metadata]`), "ticket=42"))
		b.shots("run", true, true)
		b.do(chromedp.Click(chromedp.CSS(`main form button[type=submit]`)))
		b.until(`document.body.dataset.page === 'jobs/:id' && document.querySelector('#job-status').textContent === 'succeeded'`)
		b.until(`document.getElementById('stdout').textContent.includes('red')`)
		stdout := eval[string](b, `document.getElementById('stdout').textContent`)
		require.Equal(t, "<b>bold</b> second\nGREETING=<i>hi</i>\n"+
			"<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">^[[31mred^[[0m\n", stdout)
		require.Equal(t, 2, eval[int](b, `document.querySelectorAll('#stdout .ctl').length`), "each ESC shown apart")
		require.Zero(t, eval[int](b, `document.querySelectorAll('main script, main img, main b, main i').length`), "nothing the guest printed became an element")
		require.NotEqual(t, "pwned", eval[string](b, `document.title`))
		require.Equal(t, "echo done\n", eval[string](b, `document.getElementById('stderr').textContent`))
		b.until(`[...document.querySelectorAll('.timeline strong')].map((e) => e.textContent).join(' ') === 'job.created job.started job.finished'`)
		b.shots("job", true, true)
	})

	t.Run("run with an input file: download its artifact", func(t *testing.T) {
		b := b.at(t)
		// Every byte value, then text: the file goes through the page
		// (base64 in the request), the guest (which writes it reversed
		// to /out) and the download (a blob) unchanged.
		in := make([]byte, 0, 300)
		for i := range 256 {
			in = append(in, byte(i))
		}
		in = append(in, "from the Wasm Wizard console\n"...)
		want := slices.Clone(in)
		slices.Reverse(want)
		file := filepath.Join(dir, "input.bin")
		require.NoError(t, os.WriteFile(file, in, 0o644))

		b.page("#/run?module="+ids["reverse"], "run")
		b.do(chromedp.SetValue(chromedp.CSS(`textarea[name=args]`), "/in/input.bin\n/out/input.rev"),
			chromedp.SetUploadFiles(chromedp.CSS(`input[name=files]`), []string{file}),
			chromedp.SetValue(chromedp.CSS(`input[name=collect]`), "/out/*"))
		// The page shows the file as the guest will see it, and its size
		// against the tier's max_input_bytes.
		b.until(`(document.querySelector('.chosen code') || {}).textContent === '/in/input.bin'`)
		require.Contains(t, eval[string](b, `document.querySelector('.chosen').textContent`), "1 file, 285 B of the 32 MiB your tier takes.")
		b.shots("run-file", true, false)
		b.phoneShot("run-file", "#run-files")
		b.do(chromedp.Click(chromedp.CSS(`main form button[type=submit]`)))
		b.until(`document.body.dataset.page === 'jobs/:id' && document.querySelector('#job-status').textContent === 'succeeded'`)
		b.until(`document.getElementById('stdout').textContent === 'reverse /in/input.bin /out/input.rev: 285 bytes\n'`)
		b.until(`(document.querySelector('section[aria-label=Artifacts] button.link') || {}).textContent === '/out/input.rev'`)
		jobID := eval[string](b, `location.hash.slice('#/jobs/'.length)`)
		require.Equal(t, "1 input file, collects /out/*", eval[string](b, `[...document.querySelectorAll('dl.kv dt')].find((e) => e.textContent === 'Files').nextElementSibling.textContent`))
		require.Equal(t, "285 B", eval[string](b, `document.querySelector('table.artifacts tbody td:nth-child(2)').textContent`))

		// The file through the page's button: fetched with the key in a
		// header, checked against its SHA-256 and saved from a blob: URL
		// (the key is never in a URL).
		url, name, data := b.download(`table.artifacts button.link`)
		require.True(t, strings.HasPrefix(url, "blob:"+p.baseURL+"/"), "saved from a blob: URL, not %q", url)
		require.Equal(t, "input.rev", name)
		require.Equal(t, want, data)
		b.until(`document.querySelector('section[aria-label=Artifacts] [role=status]').textContent === 'Downloaded input.rev (285 B).'`)

		// All of them as one tar.
		url, name, data = b.download(`section[aria-label=Artifacts] p > button`)
		require.True(t, strings.HasPrefix(url, "blob:"), url)
		require.Equal(t, "job-"+jobID[:8]+"-artifacts.tar", name)
		tr := tar.NewReader(bytes.NewReader(data))
		hdr, err := tr.Next()
		require.NoError(t, err)
		require.Equal(t, "out/input.rev", hdr.Name)
		got, err := io.ReadAll(tr)
		require.NoError(t, err)
		require.Equal(t, want, got)
		_, err = tr.Next()
		require.ErrorIs(t, err, io.EOF, "one file in the tar")

		b.shots("job-artifacts", true, false)
		b.phoneShot("job-artifacts", "section[aria-label=Artifacts]")
	})

	t.Run("input files above the tier's max_input_bytes are refused in the page", func(t *testing.T) {
		b := b.at(t)
		big := filepath.Join(dir, "big.bin")
		require.NoError(t, os.WriteFile(big, make([]byte, 32<<20+1), 0o644))
		b.page("#/run?module="+ids["reverse"], "run")
		b.do(chromedp.SetUploadFiles(chromedp.CSS(`input[name=files]`), []string{big}))
		b.until(`(document.querySelector('.chosen p.error') || {}).textContent === 'This file takes 33554433 bytes, more than the 33554432 (32 MiB) your tier takes.'`)
		b.do(chromedp.Click(chromedp.CSS(`main form button[type=submit]`)))
		b.until(`(document.querySelector('main [role=alert]') || {}).textContent === 'This file takes 33554433 bytes, more than the 33554432 (32 MiB) your tier takes.'`)
		require.Equal(t, "run", eval[string](b, `document.body.dataset.page`), "nothing was sent")
	})

	t.Run("cancel a running job", func(t *testing.T) {
		b := b.at(t)
		b.page("#/run?module="+ids["loop"], "run")
		b.do(chromedp.SetValue(chromedp.CSS(`input[name=timeout_ms]`), "30000"),
			chromedp.Click(chromedp.CSS(`main form button[type=submit]`)))
		b.until(`document.body.dataset.page === 'jobs/:id' && document.querySelector('#job-status').textContent === 'running'`)
		b.do(chromedp.Click(chromedp.CSS(`button.danger`)))
		b.until(`document.querySelector('#job-status').textContent === 'cancelled'`)
	})

	t.Run("live output while the job runs", func(t *testing.T) {
		if !live {
			t.Skip("the API has no GET /v1/jobs/{id}/stream yet (or no talkloop fixture): the job page long-polls instead, as the other subtests show")
		}
		b := b.at(t)
		b.page("#/run?module="+ids["talkloop"], "run")
		b.do(chromedp.SetValue(chromedp.CSS(`input[name=timeout_ms]`), "30000"),
			chromedp.Click(chromedp.CSS(`main form button[type=submit]`)))
		b.until(`document.body.dataset.page === 'jobs/:id' && document.getElementById('stdout').textContent === 'partial out\n'`)
		require.Equal(t, "running", eval[string](b, `document.querySelector('#job-status').textContent`))
		require.Equal(t, "partial err\n", eval[string](b, `document.getElementById('stderr').textContent`))
		b.do(chromedp.Click(chromedp.CSS(`button.danger`)))
		b.until(`document.querySelector('#job-status').textContent === 'cancelled'`)
		require.Equal(t, "partial out\n", eval[string](b, `document.getElementById('stdout').textContent`))
	})

	t.Run("a value above the tier's maximum is refused in the page", func(t *testing.T) {
		b := b.at(t)
		b.page("#/run?module="+ids["echo"], "run")
		b.do(chromedp.SetValue(chromedp.CSS(`input[name=timeout_ms]`), "999999"),
			chromedp.Click(chromedp.CSS(`main form button[type=submit]`)))
		b.until(`(document.querySelector('main [role=alert]') || {}).textContent?.includes('timeout_ms must be')`)
	})

	t.Run("jobs list over 10,000 jobs", func(t *testing.T) {
		b := b.at(t)
		db, err := sql.Open("postgres", p.common.DatabaseURL)
		require.NoError(t, err)
		defer func() { _ = db.Close() }()
		// 10,000 finished copies of the first job, created over the last
		// ten hours (for the usage chart too).
		_, err = db.Exec(`INSERT INTO jobs (id, account_id, module_id, module_sha256, queue, function, args, env, stdin,
				timeout_ms, memory_limit_mb, max_output_bytes, metadata, status, attempts, exit_code, error_code,
				created_at, started_at, finished_at, run_ms)
			SELECT gen_random_uuid(), j.account_id, j.module_id, j.module_sha256, j.queue, j.function, j.args, j.env, j.stdin,
				j.timeout_ms, j.memory_limit_mb, j.max_output_bytes, jsonb_build_object('n', i::text),
				CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'succeeded' END, 1,
				CASE WHEN i % 10 = 0 THEN 1 ELSE 0 END, CASE WHEN i % 10 = 0 THEN 'exit_nonzero' END,
				now() - i * interval '3.6 seconds', now() - i * interval '3.6 seconds', now() - i * interval '3.6 seconds', 1
			FROM (SELECT * FROM jobs ORDER BY created_at LIMIT 1) j, generate_series(1, 10000) i`)
		require.NoError(t, err)
		start := time.Now()
		b.page("#/jobs", "jobs")
		first := time.Since(start)
		b.labelled()
		require.Equal(t, 50, eval[int](b, `document.querySelectorAll('main tbody tr').length`))
		meta := eval[string](b, `document.querySelector('main tbody tr:nth-child(7) td:last-child').textContent`)
		require.Regexp(t, `^n=\d+$`, meta)
		start = time.Now()
		for range 3 {
			before := eval[string](b, `document.querySelector('main tbody a').textContent`)
			b.do(chromedp.Click(chromedp.Search(`//button[text()="Next"]`)))
			b.until(`document.querySelector('main tbody a').textContent !== ` + quote(before))
		}
		t.Logf("jobs list over 10,000 jobs: first page drawn %v after the route changed; 3 more pages in %v (browser round trips included)",
			first.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		require.Contains(t, eval[string](b, `document.querySelector('.pager span').textContent`), "Page 4")
		b.shots("jobs", true, true)
		// Search by metadata within the page, and by ID.
		b.do(chromedp.Click(chromedp.Search(`//button[text()="Previous"]`)))
		b.until(`document.querySelector('.pager span').textContent.startsWith('Page 3')`)
		b.do(chromedp.SetValue(chromedp.CSS(`input[name=search]`), meta), chromedp.Click(chromedp.Search(`//button[text()="Search"]`)))
		b.until(`document.querySelectorAll('main tbody tr').length === 1`)
		require.Equal(t, meta, eval[string](b, `document.querySelector('main tbody td:last-child').textContent`))
	})

	t.Run("account", func(t *testing.T) {
		b := b.at(t)
		b.page("#/account", "account")
		require.Positive(t, eval[int](b, `document.querySelectorAll('.chart svg rect').length`), "bars in the chart")
		b.until(`[...document.querySelectorAll('main th')].some((e) => e.textContent === 'exit_nonzero')`)
		require.Contains(t, eval[string](b, `document.querySelector('main').textContent`), key[3:11], "the key's prefix")
		b.labelled()
		b.shots("account", true, true)
	})

	t.Run("sign out", func(t *testing.T) {
		b := b.at(t)
		b.do(chromedp.Click(chromedp.Search(`//button[text()="Sign out"]`)))
		b.until(`document.querySelector('input[name=credential]') !== null`)
		require.Nil(t, eval[*string](b, `sessionStorage.getItem('wasmwizard.credential')`))
	})

	t.Run("a key refused while signed in", func(t *testing.T) {
		b := b.at(t)
		// As if the key had been revoked since sign-in: the first 401
		// forgets it and returns to the sign-in form, saying why.
		b.do(chromedp.Evaluate[chromedp.Void](`sessionStorage.setItem('wasmwizard.credential', 'ww_` + strings.Repeat("Y", 32) + `');
			sessionStorage.setItem('wasmwizard.role', 'tenant'); location.hash = '#/jobs'`))
		b.until(`document.querySelector('input[name=credential]') !== null && document.getElementById('flash').textContent === 'Your key was refused; sign in again.'`)
		require.Nil(t, eval[*string](b, `sessionStorage.getItem('wasmwizard.credential')`), "the refused key is forgotten")
		require.Equal(t, "#/signin", eval[string](b, `location.hash`))
	})

	t.Run("operator", func(t *testing.T) {
		b := b.at(t)
		b.do(chromedp.SendKeys(chromedp.CSS(`input[name=credential]`), adminToken),
			chromedp.Click(chromedp.CSS(`input[name=operator]`)),
			chromedp.Click(chromedp.CSS(`main form button[type=submit]`)))
		b.until(`document.body.dataset.page === 'queues'`)
		b.until(`[...document.querySelectorAll('main td')].some((e) => e.textContent.endsWith('jobs:pro'))`)
		b.shots("queues", true, true)

		b.page("#/accounts", "accounts")
		b.labelled()
		b.do(chromedp.SendKeys(chromedp.CSS(`input[name=name]`), "Console Co"),
			chromedp.Click(chromedp.Search(`//button[text()="Create account"]`)))
		b.until(`[...document.querySelectorAll('main td')].some((e) => e.textContent === 'Console Co')`)
		b.do(chromedp.SetValue(chromedp.CSS(`select[aria-label="Tier of Console Co"]`), "basic"),
			chromedp.Click(chromedp.Search(`//tr[td="Console Co"]//button[text()="Change tier"]`)))
		b.until(`document.querySelector('main [role=status]').textContent === 'Console Co is now on the basic tier.'`)
		b.do(chromedp.Click(chromedp.Search(`//tr[td="Console Co"]//button[text()="New key"]`)))
		b.until(`/^ww_[0-9A-Za-z]{32}$/.test((document.getElementById('new-key') || {}).textContent)`)
		b.shots("accounts", true, true)

		b.page("#/tiers", "tiers")
		b.shots("tiers", false, false)

		b.page("#/audit", "audit")
		b.until(`[...document.querySelectorAll('main td')].some((e) => e.textContent === 'account.tier_changed')`)
		b.do(chromedp.SetValue(chromedp.CSS(`input[name=action]`), "auth.failed"), chromedp.Click(chromedp.Search(`//button[text()="Filter"]`)))
		b.until(`[...document.querySelectorAll('main tbody tr')].length > 0 && [...document.querySelectorAll('main tbody tr td:nth-child(2)')].every((e) => e.textContent === 'auth.failed')`)
		b.shots("audit", true, true)
	})
}
