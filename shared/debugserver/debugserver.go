// Package debugserver serves Go's profiling endpoints (net/http/pprof) on an
// address of their own.
//
// They are off unless WIZARD_PPROF_ADDR names one: they reveal internals and
// cost CPU while profiling, so they never share the public port.
package debugserver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"go.uber.org/zap"
)

// Start serves /debug/pprof/ on addr (nothing when addr is empty) and
// returns the function that stops it.
func Start(ctx context.Context, addr string, log *zap.Logger) (func(), error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("profiling server stopped", zap.Error(err))
		}
	}()
	log.Info("profiling endpoints on", zap.String("addr", ln.Addr().String()))
	return func() { _ = srv.Close() }, nil
}
