package wizardcli_test

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"testing"

	"github.com/wasmwizard/wasmwizard/api/client/clienttest"
	"github.com/wasmwizard/wasmwizard/api/wizardcli"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
)

// platform is the real API and worker the CLI runs against.
var platform *clienttest.Platform

// underTest makes the test binary the wizard binary, for the tests that
// run it as a process (under a pseudo-terminal).
const underTest = "WIZARD_CLI_UNDER_TEST"

func TestMain(m *testing.M) {
	if code, ok := clienttest.ChildMain(); ok {
		os.Exit(code)
	}
	if os.Getenv(underTest) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt) // as api/cmd/wizard does
		code := wizardcli.Main(ctx, os.Args[1:], wizardcli.IO{
			Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
		stop()
		os.Exit(code)
	}
	flag.Parse()
	scope := testenv.NewScope()
	platform = clienttest.Start(scope)
	code := m.Run()
	scope.Close()
	os.Exit(code)
}
