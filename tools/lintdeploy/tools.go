package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
)

// Helm is built from source with Go, like the checks themselves: no
// release download, nothing but the Go module proxy.
const (
	helmVersion  = "v3.22.0"
	helmK8sMinor = "37" // Helm v3.22.0 is built against k8s.io/client-go v0.37
)

// tools are the programs the checks run, built once into a cache directory.
type tools struct {
	// dir is the cache (WIZARD_TOOLS_DIR): bin/, logs/ and gocache/, the
	// Go build cache that makes tool rebuilds fast.
	dir string
	// helmHome holds Helm's cache, configuration and data for this run:
	// Helm never reads or writes the user's.
	helmHome string
	helm     string
}

// goEnv is the environment of the tool builds: their own build cache
// (immune to `go clean -cache` elsewhere), no workspace, no VCS stamping.
func (t *tools) goEnv() []string {
	return append(os.Environ(), "GOCACHE="+filepath.Join(t.dir, "gocache"), "GOFLAGS=-buildvcs=false", "GOWORK=off")
}

// buildHelm builds Helm into the cache unless it is there already.
func (t *tools) buildHelm(ctx context.Context, w io.Writer) error {
	t.helm = filepath.Join(t.dir, "bin", "helm-"+helmVersion+"-k8s1."+helmK8sMinor)
	if info, err := os.Stat(t.helm); err == nil && info.Mode()&0o111 != 0 {
		return nil
	}
	fmt.Fprintf(w, "    building helm %s (first run only, a few minutes) ...\n", helmVersion)
	for _, d := range []string{"bin", "logs"} {
		if err := os.MkdirAll(filepath.Join(t.dir, d), 0o750); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp(t.dir, "tmp.")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	// Same -X flags as Helm's release Makefile: without them `helm template`
	// assumes Kubernetes v1.20 and the deprecation lint checks an old version.
	ld := "-s -w -X helm.sh/helm/v3/internal/version.version=" + helmVersion + " -X helm.sh/helm/v3/internal/version.gitTreeState=clean" +
		" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=" + helmK8sMinor +
		" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=" + helmK8sMinor
	log := filepath.Join(t.dir, "logs", "helm.log")
	cmd := exec.CommandContext(ctx, "go", "install", "-trimpath", "-ldflags", ld, "helm.sh/helm/v3/cmd/helm@"+helmVersion)
	cmd.Dir = tmp
	cmd.Env = append(t.goEnv(), "GOBIN="+tmp)
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(log, out, 0o600)
	if err != nil {
		return fmt.Errorf("building helm failed (log: %s):\n%s", log, tail(string(out), 30))
	}
	return os.Rename(filepath.Join(tmp, "helm"), t.helm)
}

// helmCmd is a Helm command with this run's Helm directories.
func (t *tools) helmCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, t.helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(t.helmHome, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(t.helmHome, "config"),
		"HELM_DATA_HOME="+filepath.Join(t.helmHome, "data"))
	return cmd
}

// runHelm runs Helm and returns its output, standard error included.
func (t *tools) runHelm(ctx context.Context, args ...string) (string, error) {
	out, err := t.helmCmd(ctx, args...).CombinedOutput()
	return string(out), err
}

// versions says which toolchain, Helm and libraries the checks use.
func (t *tools) versions(ctx context.Context) string {
	helm, _ := t.helmCmd(ctx, "version", "--template", "{{.Version}}").Output()
	dep := func(path string) string {
		info, ok := debug.ReadBuildInfo()
		if !ok {
			return "?"
		}
		for _, m := range info.Deps {
			if m.Path == path {
				return m.Version
			}
		}
		return "?"
	}
	return fmt.Sprintf("%s; helm %s (Kubernetes API 1.%s); BuildKit %s linter; k8s.io/api %s, KEDA %s, prometheus-operator %s types",
		goVersion(ctx), strings.TrimSpace(string(helm)), helmK8sMinor, dep("github.com/moby/buildkit"), dep("k8s.io/api"),
		dep("github.com/kedacore/keda/v2"), dep("github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring"))
}

// goVersion is the version of the go command that builds the tools.
func goVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return "go ?"
	}
	return string(bytes.TrimSpace(out))
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
