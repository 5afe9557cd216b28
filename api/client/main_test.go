package client_test

import (
	"flag"
	"os"
	"testing"

	"github.com/wasmwizard/wasmwizard/api/client/clienttest"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
)

// platform is the real API and worker every test and example of the
// package talks to (each test on an account of its own).
var platform *clienttest.Platform

// apiURL and apiKey are what the examples use.
var apiURL, apiKey string

func TestMain(m *testing.M) {
	if code, ok := clienttest.ChildMain(); ok {
		os.Exit(code)
	}
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run()) // fuzz targets need no platform, and each fuzz worker would start one
	}
	scope := testenv.NewScope()
	platform = clienttest.Start(scope)
	apiURL, apiKey = platform.URL, platform.Key(scope, "free")
	code := m.Run()
	scope.Close()
	os.Exit(code)
}
