package wizardcli_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/api/wizardcli"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// terminal is wizard (this test binary, see TestMain) running under a
// pseudo-terminal.
type terminal struct {
	t    *testing.T
	cmd  *exec.Cmd
	pty  *os.File
	mu   sync.Mutex
	seen bytes.Buffer
	done chan struct{}
}

func startTerminal(t *testing.T, c *cli, args ...string) *terminal {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, args...)
	cmd.Env = []string{underTest + "=1", "TERM=xterm", "HOME=" + t.TempDir()}
	for k, v := range c.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	f, err := pty.Start(cmd)
	require.NoError(t, err)
	term := &terminal{t: t, cmd: cmd, pty: f, done: make(chan struct{})}
	go func() {
		defer close(term.done)
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			term.mu.Lock()
			term.seen.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = f.Close()
	})
	return term
}

// waitFor waits until the terminal shows s.
func (term *terminal) waitFor(s string) {
	term.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		term.mu.Lock()
		ok := strings.Contains(term.seen.String(), s)
		term.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-term.done:
			// Everything wizard wrote has been read: what it showed last
			// counts too.
			if text := term.text(); !strings.Contains(text, s) {
				term.t.Fatalf("wizard ended without showing %q: %q", s, text)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	term.t.Fatalf("the terminal never showed %q: %q", s, term.text())
}

func (term *terminal) text() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.seen.String()
}

// exit waits for wizard's exit code.
func (term *terminal) exit() int {
	term.t.Helper()
	err := term.cmd.Wait()
	<-term.done
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(term.t, err)
	return 0
}

func TestRunOnATerminal(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	term := startTerminal(t, c, "run", fixture(t, fixtures.Exit3))
	term.waitFor("bye")
	require.Equal(t, 3, term.exit(), "%q", term.text())

	term = startTerminal(t, c, "run", fixture(t, fixtures.Trap))
	require.Equal(t, 134, term.exit(), "%q", term.text())
	require.Contains(t, term.text(), "\x1b[31mwizard:\x1b[0m", "errors are coloured on a terminal")
	c.env["NO_COLOR"] = "1"
	term = startTerminal(t, c, "run", fixture(t, fixtures.Trap))
	require.Equal(t, 134, term.exit())
	require.NotContains(t, term.text(), "\x1b[31m", "NO_COLOR")
}

// The guest's first line reaches the terminal while the job still runs,
// and Ctrl-C on the terminal cancels the job.
func TestLiveOutputOnATerminal(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	requireLiveOutput(t, c)
	term := startTerminal(t, c, "run", fixture(t, fixtures.TalkLoop), "--timeout", "5s")
	term.waitFor("partial out\r\n")
	p, err := c.client().ListJobs(context.Background(), client.JobFilter{Status: client.StatusRunning})
	require.NoError(t, err)
	require.Len(t, p.Data, 1, "the output arrived before the job ended")
	_, err = term.pty.Write([]byte{3}) // Ctrl-C
	require.NoError(t, err)
	require.Equal(t, 137, term.exit(), "%q", term.text())
	p, err = c.client().ListJobs(context.Background(), client.JobFilter{Status: client.StatusCancelled})
	require.NoError(t, err)
	require.Len(t, p.Data, 1)
}

// requireLiveOutput skips a test when the API has no live output route
// (GET /v1/jobs/{id}/stream).
func requireLiveOutput(t *testing.T, c *cli) {
	t.Helper()
	ctx := context.Background()
	m, _, err := c.client().EnsureModule(ctx, fixtures.Bytes(fixtures.Hello), nil)
	require.NoError(t, err)
	j, err := c.client().Submit(ctx, client.JobRequest{ModuleID: m.ID}, nil)
	require.NoError(t, err)
	for _, err := range c.client().Stream(ctx, j.ID, nil) {
		if client.IsCode(err, client.CodeNotFound) {
			t.Skip("the API has no GET /v1/jobs/{id}/stream yet")
		}
		require.NoError(t, err)
	}
}

// wizard login on a terminal asks for the key without echoing it: the
// typed key never shows on the terminal, line editing works, and Ctrl-C
// gives up without storing anything. From a pipe the key is still read.
func TestLoginOnATerminalDoesNotEchoTheKey(t *testing.T) {
	t.Parallel()
	c, key, config := loggedOut(t)

	term := startTerminal(t, c, "login", "--url", platform.URL)
	term.waitFor("API key: ")
	_, err := term.pty.Write([]byte{3}) // Ctrl-C
	require.NoError(t, err)
	require.Equal(t, wizardcli.ExitUsage, term.exit(), "%q", term.text())
	require.NoFileExists(t, config)

	term = startTerminal(t, c, "login", "--url", platform.URL)
	term.waitFor("API key: ")
	// A typo, erased with backspace, then the key and Enter.
	_, err = term.pty.Write([]byte("oops\x7f\x7f\x7f\x7f" + key + "\r"))
	require.NoError(t, err)
	require.Equal(t, 0, term.exit(), "%q", term.text())
	require.Contains(t, term.text(), "logged in to "+platform.URL)
	require.NotContains(t, term.text(), key)
	require.NotContains(t, term.text(), key[:8], "not even the key's start")
	require.NotContains(t, term.text(), "oops")
	b, err := os.ReadFile(config) //nolint:gosec // the test's own config dir
	require.NoError(t, err)
	require.Contains(t, string(b), `"api_key": "`+key+`"`)

	// From a pipe (not a terminal), as before.
	require.NoError(t, os.Remove(config))
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "login", "--url", platform.URL) //nolint:noctx // ends by itself
	cmd.Env = []string{underTest + "=1", "XDG_CONFIG_HOME=" + c.env["XDG_CONFIG_HOME"], "HOME=" + t.TempDir()}
	cmd.Stdin = strings.NewReader(key + "\n")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NotContains(t, string(out), "API key:", "no prompt on a pipe")
	b, err = os.ReadFile(config) //nolint:gosec // the test's own config dir
	require.NoError(t, err)
	require.Contains(t, string(b), key)
}
