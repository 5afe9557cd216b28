// Package testmain lets a test binary double as the child processes the
// platform spawns from its own executable: the worker's sandbox children
// and the API's upload-check children. Tests that start either give their
// test binary as the child's command and call Main from TestMain.
package testmain

import (
	"context"
	"os"
	"testing"

	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
	"github.com/wasmwizard/wasmwizard/worker/sandbox"
)

// ChildMain runs the child this process was started as, if any: an
// upload-check child or a sandbox child. ok is false in any other process;
// otherwise code is the child's exit code.
func ChildMain() (code int, ok bool) {
	if wasmmeta.IsCheckChild() {
		return wasmmeta.CheckChildMain(os.Stdin, os.Stdout, os.Stderr), true
	}
	if sandbox.IsChild() {
		return sandbox.ChildMain(os.Stdin, os.Stdout, os.Stderr), true
	}
	return 0, false
}

// Main is a TestMain: in a child process (ChildMain) it runs the child,
// otherwise m's tests, and exits with their code.
func Main(m *testing.M) {
	if code, ok := ChildMain(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// IsolatedInspector returns an inspector that checks large modules in
// upload-check children started from this test binary (whose TestMain
// must be Main), closed when t ends.
func IsolatedInspector(t testing.TB) *wasmmeta.Inspector {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("testmain: %v", err)
	}
	in, err := wasmmeta.NewIsolatedInspector(context.Background(), wasmmeta.IsolateConfig{Command: []string{exe}})
	if err != nil {
		t.Fatalf("testmain: %v", err)
	}
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	return in
}
