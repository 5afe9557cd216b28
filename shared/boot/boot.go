// Package boot holds the start-up steps the API and worker binaries share:
// their main function, their configuration and logger, and what readies a
// process to serve.
package boot

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/config"
	"github.com/wasmwizard/wasmwizard/shared/debugserver"
	"github.com/wasmwizard/wasmwizard/shared/fdlimit"
	"github.com/wasmwizard/wasmwizard/shared/logging"
)

// Main is a binary's main function. A process that isChild reports to be a
// child the binary started (with its own environment) runs childMain on its
// standard streams; any other runs run with its arguments, its environment
// and a context that SIGINT or SIGTERM cancels. Main exits with their code.
func Main(isChild func() bool, childMain func(in io.Reader, out, logw io.Writer) int,
	run func(ctx context.Context, args []string, getenv config.Getenv, stdout, stderr io.Writer) int) {
	if isChild() {
		os.Exit(childMain(os.Stdin, os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Setup loads a binary's configuration with load and makes the logger it
// names, writing to stderr. On an error it writes the error to stderr and
// returns ok false: the binary then exits with code 2.
func Setup[C interface{ Logging() (level, format string) }](getenv config.Getenv,
	load func(config.Getenv) (C, error), stderr io.Writer) (cfg C, log *zap.Logger, ok bool) {
	cfg, err := load(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "configuration error:\n%v\n", err)
		return cfg, nil, false
	}
	level, format := cfg.Logging()
	log, err = logging.New(level, format, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "logging: %v\n", err)
		return cfg, nil, false
	}
	return cfg, log, true
}

// Prepare readies a process to serve: it raises its limit on open files and
// starts the profiling endpoints at pprofAddr (WIZARD_PPROF_ADDR; none when
// empty) until stop. On an error it logs it and returns ok false: the binary
// then exits with code 1.
func Prepare(ctx context.Context, pprofAddr string, log *zap.Logger) (stop func(), ok bool) {
	fdlimit.RaiseAndLog(log)
	stop, err := debugserver.Start(ctx, pprofAddr, log)
	if err != nil {
		log.Error("WIZARD_PPROF_ADDR", zap.Error(err))
		return nil, false
	}
	return stop, true
}
