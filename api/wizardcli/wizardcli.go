// Package wizardcli is the wizard command line (bin/wizard, docs/CLI.md).
//
// It runs a WebAssembly module on the platform like wasmtime runs it
// locally, and manages modules, assets, jobs and the account. It is built on
// the Go SDK (api/client) and spf13/cobra.
package wizardcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/wasmwizard/wasmwizard/api/client"
)

// Exit codes of wizard (besides a guest's own exit code, which wizard run
// passes on). docs/CLI.md lists them.
const (
	ExitOK        = 0
	ExitFailure   = 1   // a command other than run failed (an invalid webhook, say)
	ExitUsage     = 2   // bad flags or arguments
	ExitTimedOut  = 124 // the job timed out (like timeout(1))
	ExitPlatform  = 125 // the platform or the CLI failed: unreachable API, refused request, a crashed sandbox, a lost worker
	ExitTrap      = 134 // the guest trapped or hit its memory limit (like wasmtime's 128+SIGABRT)
	ExitCancelled = 137 // the job was cancelled (128+SIGKILL)
)

// IO is what a command reads and writes; tests replace all of it.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// IsTerminal reports whether a stream is a terminal (progress bars and
	// colour go only there). Default: an *os.File on a terminal.
	IsTerminal func(any) bool
}

func (o *IO) terminal(f any) bool {
	if o.IsTerminal != nil {
		return o.IsTerminal(f)
	}
	file, ok := f.(*os.File)
	return ok && (isatty.IsTerminal(file.Fd()) || isatty.IsCygwinTerminal(file.Fd()))
}

// colour reports whether to colour what goes to w.
func (o *IO) colour(w any) bool {
	return o.Getenv("NO_COLOR") == "" && o.Getenv("TERM") != "dumb" && o.terminal(w)
}

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error // printed when not nil
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func exitWith(code int, err error) error { return &exitError{code: code, err: err} }

// Main runs wizard with args (without the program name) and returns its
// exit code.
func Main(ctx context.Context, args []string, io IO) int {
	if io.Getenv == nil {
		io.Getenv = os.Getenv
	}
	a := &app{io: io}
	root := a.root()
	root.SetArgs(args)
	root.SetIn(io.Stdin)
	root.SetOut(io.Stdout)
	root.SetErr(io.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			a.errorf("%v", ee.err)
		}
		return ee.code
	}
	a.errorf("%v", err)
	var ue *usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		return ExitPlatform
	}
	return ExitFailure
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// app holds the state shared by the commands.
type app struct {
	io     IO
	output string // -o
	apiURL string // --api-url
}

func (a *app) errorf(format string, args ...any) {
	prefix := "wizard: "
	if a.io.colour(a.io.Stderr) {
		prefix = "\x1b[31mwizard:\x1b[0m "
	}
	_, _ = fmt.Fprintf(a.io.Stderr, prefix+format+"\n", args...)
}

func (a *app) notef(format string, args ...any) {
	prefix := "wizard: "
	if a.io.colour(a.io.Stderr) {
		prefix = "\x1b[2mwizard:\x1b[0m "
	}
	_, _ = fmt.Fprintf(a.io.Stderr, prefix+format+"\n", args...)
}

// Version is set by the build.
var Version = "dev"

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "wizard",
		Short: "Run WebAssembly on a Wasm Wizard platform",
		Long: `wizard runs WebAssembly modules on a Wasm Wizard platform as wasmtime runs
them locally: output as it happens, files in and out, the guest's exit code.

Configure it with 'wizard login', or with WIZARD_API_URL and WIZARD_API_KEY
(which override the stored login).`,
		Example: `  wizard login --url http://127.0.0.1:8080
  wizard run hello.wasm
  wizard run echo.wasm --env GREETING=hi --stdin - -- hello world < input.txt
  wizard jobs list -o json`,
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&a.output, "output", "o", "table", "output format: table, json or yaml")
	root.PersistentFlags().StringVar(&a.apiURL, "api-url", "", "API URL (overrides WIZARD_API_URL and the login)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		switch a.output {
		case "table", "json", "yaml":
			return nil
		}
		return usagef("-o %s: want table, json or yaml", a.output)
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	root.AddCommand(a.loginCmd(), a.logoutCmd(), a.runCmd(), a.modulesCmd(), a.assetsCmd(), a.jobsCmd(),
		a.accountCmd(), a.webhooksCmd())
	return root
}

// client returns a client of the configured API.
func (a *app) client() (*client.Client, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	if cfg.APIKey == "" {
		return nil, exitWith(ExitPlatform, errors.New("no API key: run 'wizard login' or set WIZARD_API_KEY"))
	}
	return client.New(cfg.APIURL, cfg.APIKey, client.WithUserAgent("wizard-cli"))
}
