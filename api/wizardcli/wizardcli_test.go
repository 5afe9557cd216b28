package wizardcli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/api/wizardcli"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	platformwebhook "github.com/wasmwizard/wasmwizard/shared/webhook"
)

// cli runs wizard in process with its own config dir and environment.
type cli struct {
	t   *testing.T
	env map[string]string
}

func newCLI(t *testing.T) *cli {
	return &cli{t: t, env: map[string]string{
		"XDG_CONFIG_HOME": t.TempDir(),
		"WIZARD_API_URL":  platform.URL,
		"WIZARD_API_KEY":  platform.Key(t, "free"),
	}}
}

type result struct {
	code           int
	stdout, stderr string
}

func (c *cli) run(stdin string, args ...string) result {
	return c.runCtx(context.Background(), stdin, args...)
}

func (c *cli) runCtx(ctx context.Context, stdin string, args ...string) result {
	c.t.Helper()
	var out, errb bytes.Buffer
	code := wizardcli.Main(ctx, args, wizardcli.IO{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return c.env[k] }})
	return result{code, out.String(), errb.String()}
}

func (c *cli) client() *client.Client {
	cl, err := client.New(platform.URL, c.env["WIZARD_API_KEY"])
	require.NoError(c.t, err)
	return cl
}

// fixture writes a fixture as a .wasm file.
func fixture(t *testing.T, name string) string {
	p := filepath.Join(t.TempDir(), name+".wasm")
	require.NoError(t, os.WriteFile(p, fixtures.Bytes(name), 0o600))
	return p
}

func TestRunPassesOutputAndExitCode(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	hello := fixture(t, fixtures.Hello)
	r := c.run("", "run", hello)
	require.Equal(t, 0, r.code, "%+v", r)
	require.Equal(t, "hello, world\n", r.stdout)

	// The second run finds the module by its hash: no second upload.
	r = c.run("", "run", hello)
	require.Equal(t, 0, r.code, "%+v", r)
	mods, err := c.client().ListModules(context.Background(), client.ListOptions{})
	require.NoError(t, err)
	require.Len(t, mods.Data, 1)
	require.Equal(t, "hello", mods.Data[0].Name)
	events, err := platform.Admin.Audit(context.Background(), client.AuditFilter{Action: "module.created"})
	require.NoError(t, err)
	n := 0
	for _, e := range events.Data {
		if e.SubjectID == mods.Data[0].ID {
			n++
		}
	}
	require.Equal(t, 1, n, "one upload")

	// By module ID, with args, env and stdin.
	echo, _, err := c.client().EnsureModule(context.Background(), fixtures.Bytes(fixtures.Echo), nil)
	require.NoError(t, err)
	r = c.run("piped\n", "run", echo.ID, "--env", "GREETING=hi", "--stdin", "-", "--", "a", "--b")
	require.Equal(t, 0, r.code, "%+v", r)
	require.Equal(t, "a --b\nGREETING=hi\npiped\n", r.stdout)
	require.Equal(t, "echo done\n", r.stderr)

	stdinFile := filepath.Join(t.TempDir(), "in.txt")
	require.NoError(t, os.WriteFile(stdinFile, []byte("from file\n"), 0o600))
	r = c.run("", "run", echo.ID, "--stdin", stdinFile)
	require.Equal(t, "\nGREETING=\nfrom file\n", r.stdout)
}

func TestRunExitCodes(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	r := c.run("", "run", fixture(t, fixtures.Exit3))
	require.Equal(t, 3, r.code, "%+v", r)
	require.Equal(t, "bye\n", r.stderr)

	r = c.run("", "run", fixture(t, fixtures.Loop), "--timeout", "300ms")
	require.Equal(t, wizardcli.ExitTimedOut, r.code, "%+v", r)
	require.Contains(t, r.stderr, "timed out")

	r = c.run("", "run", fixture(t, fixtures.Trap))
	require.Equal(t, wizardcli.ExitTrap, r.code, "%+v", r)
	require.Contains(t, r.stderr, "trap")

	r = c.run("", "run", fixture(t, fixtures.Hello), "--memory", "100000")
	require.Equal(t, wizardcli.ExitPlatform, r.code, "%+v", r)
	require.Contains(t, r.stderr, "memory_limit_mb")

	r = c.run("", "run", fixture(t, fixtures.Hello), "--env", "NOEQUALS")
	require.Equal(t, wizardcli.ExitUsage, r.code, "%+v", r)
	r = c.run("", "run", fixture(t, fixtures.Hello), "--no-such-flag")
	require.Equal(t, wizardcli.ExitUsage, r.code, "%+v", r)
	r = c.run("", "run", "missing.wasm")
	require.Equal(t, wizardcli.ExitPlatform, r.code, "%+v", r)
	r = c.run("", "run", "01a21c90-5fe6-7a89-a466-cda6b504227f")
	require.Equal(t, wizardcli.ExitPlatform, r.code, "%+v", r)
	require.Contains(t, r.stderr, "not_found")

	c.env["WIZARD_API_KEY"] = "ww_00000000000000000000000000000000"
	r = c.run("", "account")
	require.Equal(t, wizardcli.ExitPlatform, r.code, "%+v", r)
	require.Contains(t, r.stderr, "unauthorized")
	delete(c.env, "WIZARD_API_KEY")
	r = c.run("", "account")
	require.Equal(t, wizardcli.ExitPlatform, r.code, "%+v", r)
	require.Contains(t, r.stderr, "wizard login")
}

func TestRunCancelledByInterrupt(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	loop := fixture(t, fixtures.Loop)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() { done <- c.runCtx(ctx, "", "run", loop, "--timeout", "5s") }()
	// Ctrl-C once the job runs.
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := c.client().ListJobs(context.Background(), client.JobFilter{Status: client.StatusRunning})
		require.NoError(t, err)
		if len(p.Data) == 1 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the job never ran")
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	r := <-done
	require.Equal(t, wizardcli.ExitCancelled, r.code, "%+v", r)
	p, err := c.client().ListJobs(context.Background(), client.JobFilter{Status: client.StatusCancelled})
	require.NoError(t, err)
	require.Len(t, p.Data, 1)
}

func TestDetachWaitAndOutputFormats(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	r := c.run("", "run", fixture(t, fixtures.Exit3), "--detach")
	require.Equal(t, 0, r.code, "%+v", r)
	id := strings.TrimSpace(r.stdout)
	r = c.run("", "jobs", "wait", id, "-o", "json")
	require.Equal(t, 3, r.code, "%+v", r)
	var j client.Job
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &j))
	require.Equal(t, id, j.ID)
	require.Equal(t, "bye\n", *j.Stderr)

	r = c.run("", "jobs", "get", id, "-o", "yaml")
	require.Equal(t, 0, r.code, "%+v", r)
	var y map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(r.stdout), &y))
	require.Equal(t, "failed", y["status"])
	require.Equal(t, 3, y["exit_code"])

	r = c.run("", "jobs", "get", id)
	require.Contains(t, r.stdout, "exit_nonzero")
	r = c.run("", "jobs", "list", "--status", "failed")
	require.Equal(t, 0, r.code, "%+v", r)
	require.Contains(t, r.stdout, id)
	r = c.run("", "jobs", "list", "--created-after", "yesterday")
	require.Equal(t, wizardcli.ExitUsage, r.code, "%+v", r)
	r = c.run("", "jobs", "logs", id)
	require.Equal(t, "bye\n", r.stderr)
	r = c.run("", "jobs", "logs", id, "--follow")
	require.Equal(t, 0, r.code, "%+v", r)
	require.Equal(t, "bye\n", r.stderr)
	r = c.run("", "jobs", "events", id)
	require.Contains(t, r.stdout, "job.finished")
	r = c.run("", "jobs", "deliveries", id, "-o", "json")
	require.Equal(t, "[]\n", r.stdout)
	r = c.run("", "jobs", "cancel", id)
	require.Equal(t, wizardcli.ExitPlatform, r.code, "%+v", r)
	require.Contains(t, r.stderr, "conflict")

	// run -o json prints the finished job, not the output.
	r = c.run("", "run", fixture(t, fixtures.Hello), "-o", "json")
	require.Equal(t, 0, r.code, "%+v", r)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &j))
	require.Equal(t, "hello, world\n", *j.Stdout)
}

func TestModulesAndAccountCommands(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	r := c.run("", "modules", "upload", fixture(t, fixtures.Reactor), "--name", "calc", "-o", "json")
	require.Equal(t, 0, r.code, "%+v", r)
	var m client.Module
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &m))
	require.Equal(t, "calc", m.Name)
	r = c.run("", "modules", "get", m.ID)
	require.Contains(t, r.stdout, "function add (i32, i32) -> (i32)")
	r = c.run("", "modules", "list")
	require.Contains(t, r.stdout, m.ID)
	r = c.run("", "run", m.ID, "--invoke", "add", "-o", "json")
	require.Equal(t, wizardcli.ExitPlatform, r.code, "params are not a CLI flag yet: %+v", r)
	r = c.run("", "modules", "delete", m.ID)
	require.Equal(t, 0, r.code, "%+v", r)
	r = c.run("", "modules", "get", m.ID)
	require.Equal(t, wizardcli.ExitPlatform, r.code)

	r = c.run("", "account")
	require.Equal(t, 0, r.code, "%+v", r)
	require.Contains(t, r.stdout, "free")
	r = c.run("", "account", "-o", "json")
	var a client.Account
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &a))
	require.Equal(t, "free", a.Tier)
}

// loggedOut returns a CLI with no API key or URL in its environment, the
// key newCLI made for it, and the file a login stores them in.
func loggedOut(t *testing.T) (c *cli, key, config string) {
	t.Helper()
	c = newCLI(t)
	key = c.env["WIZARD_API_KEY"]
	delete(c.env, "WIZARD_API_KEY")
	delete(c.env, "WIZARD_API_URL")
	return c, key, filepath.Join(c.env["XDG_CONFIG_HOME"], "wasmwizard", "config.json")
}

func TestLogin(t *testing.T) {
	t.Parallel()
	c, key, path := loggedOut(t)

	r := c.run("ww_00000000000000000000000000000000\n", "login", "--url", platform.URL)
	require.Equal(t, wizardcli.ExitPlatform, r.code, "a wrong key is not stored: %+v", r)
	_, err := os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist)

	r = c.run(key+"\n", "login", "--url", platform.URL)
	require.Equal(t, 0, r.code, "%+v", r)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(b), key)

	r = c.run("", "account")
	require.Equal(t, 0, r.code, "the stored login works: %+v", r)
	c.env["WIZARD_API_KEY"] = "ww_00000000000000000000000000000000"
	r = c.run("", "account")
	require.Equal(t, wizardcli.ExitPlatform, r.code, "the environment overrides the login: %+v", r)
	delete(c.env, "WIZARD_API_KEY")
	r = c.run("", "account", "--api-url", "http://127.0.0.1:1")
	require.Equal(t, wizardcli.ExitFailure, r.code, "%+v", r)

	r = c.run("", "logout")
	require.Equal(t, 0, r.code)
	r = c.run("", "account")
	require.Equal(t, wizardcli.ExitPlatform, r.code)
}

func TestWebhooksVerify(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := `{"type":"job.succeeded","data":{}}`
	now := time.Now()
	sig, err := platformwebhook.Sign([]string{secret}, "d1", now, []byte(body))
	require.NoError(t, err)
	ts := strconv.FormatInt(now.Unix(), 10)

	r := c.run(body, "webhooks", "verify", "--secret", secret, "--id", "d1", "--timestamp", ts, "--signature", sig)
	require.Equal(t, 0, r.code, "%+v", r)
	require.Equal(t, "valid\n", r.stdout)
	r = c.run(body+" ", "webhooks", "verify", "--secret", secret, "--id", "d1", "--timestamp", ts, "--signature", sig)
	require.Equal(t, wizardcli.ExitFailure, r.code, "%+v", r)
	require.Contains(t, r.stderr, "no signature matches")

	h := http.Header{}
	platformwebhook.Headers(h, "d1", now, sig)
	var req bytes.Buffer
	req.WriteString("POST /hooks HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n")
	require.NoError(t, h.Write(&req))
	req.WriteString("\r\n" + body)
	r = c.run(req.String(), "webhooks", "verify", "--secret", secret, "--http", "-o", "json")
	require.Equal(t, 0, r.code, "%+v", r)
	require.Contains(t, r.stdout, `"valid": true`)
	r = c.run("garbage", "webhooks", "verify", "--secret", secret, "--http")
	require.Equal(t, wizardcli.ExitFailure, r.code, "%+v", r)
	r = c.run(body, "webhooks", "verify")
	require.Equal(t, wizardcli.ExitUsage, r.code, "%+v", r)
}

func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, args := range [][]string{{"login"}, {"logout"}, {"run"}, {"modules"}, {"modules", "list"}, {"modules", "get"},
		{"modules", "upload"}, {"modules", "delete"}, {"assets"}, {"assets", "list"}, {"assets", "put"}, {"assets", "delete"},
		{"jobs"}, {"jobs", "list"}, {"jobs", "get"}, {"jobs", "wait"}, {"jobs", "cancel"}, {"jobs", "events"},
		{"jobs", "deliveries"}, {"jobs", "logs"}, {"jobs", "artifacts"}, {"account"}, {"webhooks"}, {"webhooks", "verify"}} {
		r := c.run("", append(args, "--help")...)
		require.Equal(t, 0, r.code, "%v", args)
		require.Contains(t, r.stdout, "Examples:", "%v", args)
	}
	r := c.run("", "completion", "zsh")
	require.Equal(t, 0, r.code)
	require.Contains(t, r.stdout, "#compdef wizard")
}
