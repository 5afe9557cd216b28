// Command lintdeploy checks the container and Kubernetes packaging offline.
//
// It checks Dockerfile.api, Dockerfile.worker, .dockerignore and
// charts/wasmwizard with no Docker engine and no cluster; `make lint-deploy`
// (scripts/lint-deploy.sh) builds and runs it from the repository's root.
// Helm is built from the Go module proxy once into the tool cache; the rest
// is libraries this module pins (BuildKit, the Kubernetes API types, KEDA's
// and prometheus-operator's), kept out of the platform's go.mod.
//
// What it checks:
//
//  1. Dockerfiles: BuildKit's own Dockerfile linter (the rules of
//     `docker build --check`, run offline), plus project policy (distroless
//     nonroot runtime, numeric non-root USER, exec-form ENTRYPOINT + CMD
//     ["serve"], EXPOSE, OCI labels, cached `go mod download` layer,
//     CGO_ENABLED=0 -trimpath, worker data dir VOLUME, Go version matches
//     go.mod).
//  2. .dockerignore: evaluated with Docker's own pattern matcher: what is
//     sent as build context, that go.mod/go.sum/Go packages are in it and
//     .git/bin/charts/... are not.
//  3. Helm: `helm lint --strict` (values.schema.json included) and `helm
//     template` for every scenario in charts/wasmwizard/ci/*.yaml, at
//     KUBE_VERSION and at the chart's minimum Kubernetes version, plus a
//     53-character release name.
//  4. Rendered manifests: strict decoding into the Kubernetes Go API types
//     (and KEDA's ScaledObject/TriggerAuthentication, prometheus-operator's
//     ServiceMonitor/PrometheusRule): unknown/duplicate fields, wrong types,
//     unknown kinds; plus cross-checks (selectors, port names, probes,
//     secret and configmap references, autoscaler targets, PDBs, security
//     context, pre-install hook ordering, grace periods longer than the
//     shutdown timeouts; KEDA: a metrics-api trigger with url, valueLocation
//     and targetValue and an authenticationRef for bearer auth,
//     minReplicaCount >= 1, a fallback, a scale-down stabilization), and
//     what the scenarios must and must not render.
//  5. Negative tests: values the chart must refuse, and a tampered manifest
//     the validator must reject.
//  6. `helm package` works and leaves the ci/ scenarios out.
//
// Not checked (needs a Docker engine or a cluster): that the images build
// and run, admission-time validation by a real API server (defaulting,
// immutable fields, quota, PodSecurity admission), that KEDA and
// prometheus-operator accept the objects at the versions installed in a
// cluster, and the probes' behaviour.
//
// Environment:
//
//	WIZARD_TOOLS_DIR   tool cache (default: ${XDG_CACHE_HOME:-~/.cache}/wasmwizard-tools; about
//	                   2 GB, mostly the Go build cache that makes tool rebuilds fast)
//	KUBE_VERSION       Kubernetes version to lint/render against (default 1.37.0)
//	LINT_DEPLOY_OUT    keep the rendered manifests in this directory
//	LINT_DEPLOY_BUILD  =1: also copy the build context exactly as .dockerignore
//	                   filters it and run the Dockerfiles' `go build` commands in it
//
// It exits 1 when a check fails, 2 when it cannot run.
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is what the environment sets (see the package comment).
type config struct {
	toolsDir    string
	kubeVersion string
	out         string
	build       bool
}

func configFrom(getenv func(string) string) config {
	c := config{toolsDir: getenv("WIZARD_TOOLS_DIR"), kubeVersion: getenv("KUBE_VERSION"), out: getenv("LINT_DEPLOY_OUT"),
		build: getenv("LINT_DEPLOY_BUILD") == "1"}
	if c.toolsDir == "" {
		cache := getenv("XDG_CACHE_HOME")
		if cache == "" {
			cache = filepath.Join(getenv("HOME"), ".cache")
		}
		c.toolsDir = filepath.Join(cache, "wasmwizard-tools")
	}
	if c.kubeVersion == "" {
		c.kubeVersion = "1.37.0"
	}
	return c
}

// run checks the repository in the current directory and returns the exit
// code.
func run(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) int {
	start := time.Now()
	cfg := configFrom(getenv)
	work, err := os.MkdirTemp("", "lint-deploy.")
	if err != nil {
		fmt.Fprintf(stderr, "lint-deploy: %v\n", err)
		return 2
	}
	defer func() { _ = os.RemoveAll(work) }()
	r := &reporter{w: stdout}
	t := &tools{dir: cfg.toolsDir, helmHome: filepath.Join(work, "helm")}

	r.step("Tools (cache: " + cfg.toolsDir + ")")
	if err := t.buildHelm(ctx, stdout); err != nil {
		fmt.Fprintf(stderr, "lint-deploy: %v\n", err)
		return 2
	}
	r.ok(t.versions(ctx))

	checkDockerfiles(ctx, r)
	checkBuildContext(ctx, r, t, cfg, work)
	checkChart(ctx, r, t, cfg, work)

	fmt.Fprintln(stdout)
	if cfg.out != "" {
		fmt.Fprintf(stdout, "Rendered manifests kept in %s\n", cfg.out)
	}
	fmt.Fprintln(stdout, "Not checked here (needs a Docker engine or a cluster): image builds and runs, API-server admission")
	fmt.Fprintln(stdout, "(defaulting, PodSecurity, quotas), CRD versions installed in a real cluster, probe behaviour.")
	took := int(time.Since(start).Seconds())
	if len(r.failures) > 0 {
		fmt.Fprintf(stdout, "lint-deploy: %d problem(s) in %ds:\n", len(r.failures), took)
		for _, f := range r.failures {
			fmt.Fprintf(stdout, "  - %s\n", f)
		}
		return 1
	}
	fmt.Fprintf(stdout, "lint-deploy: all checks passed in %ds\n", took)
	return 0
}

func checkDockerfiles(ctx context.Context, r *reporter) {
	r.step("Dockerfiles: BuildKit lint rules (docker build --check, offline)")
	var out bytes.Buffer
	bad, err := buildkitLint(ctx, &out, "Dockerfile.api", "Dockerfile.worker")
	r.tool(out.String(), bad, err, false, "Dockerfile.api, Dockerfile.worker: no BuildKit lint warnings",
		"BuildKit lint reported problems in the Dockerfiles")

	r.step("Dockerfiles: project policy")
	gomod, _ := os.ReadFile("go.mod")
	for _, comp := range []string{"api", "worker"} {
		file := "Dockerfile." + comp
		text, err := os.ReadFile(file) //nolint:gosec // the repository's Dockerfiles
		if err != nil {
			r.fail(fmt.Sprintf("%s: %v", file, err))
			continue
		}
		r.report(dockerfilePolicy(file, string(text), comp, goModVersion(gomod))...)
	}
}

// forbiddenInContext must never be sent to a Docker build.
var forbiddenInContext = []string{".git", "bin", "data", ".cache", "charts", "docs", "scripts", ".ci", ".env", "Dockerfile.api", "Dockerfile.worker"}

func checkBuildContext(ctx context.Context, r *reporter, t *tools, cfg config, work string) {
	r.step(".dockerignore: build context as Docker would send it")
	required := []string{"go.mod", "go.sum"}
	for _, d := range []string{"api", "worker", "shared", "migrations", "internal", "pkg", "cmd"} {
		if _, err := os.Lstat(d); err == nil {
			required = append(required, d)
		}
	}
	export := ""
	if cfg.build {
		export = filepath.Join(work, "context")
	}
	var out bytes.Buffer
	bad, err := checkContext(&out, ".", export, required, forbiddenInContext)
	r.tool(out.String(), bad, err, true,
		fmt.Sprintf("needed paths (%s) are in the context; %s are not", strings.Join(required, ","), strings.Join(forbiddenInContext, ", ")),
		".dockerignore problems")
	if !cfg.build {
		return
	}
	r.step("Build the binaries from the filtered build context (LINT_DEPLOY_BUILD=1)")
	for _, comp := range []string{"api", "worker"} {
		res, output := buildFromContext(ctx, t, export, filepath.Join(work, "out"), comp)
		if output != "" {
			r.indent(output)
		}
		r.report(res...)
	}
}

func checkChart(ctx context.Context, r *reporter, t *tools, cfg config, work string) {
	chartYAML, _ := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	minKube := minKubeVersion(chartYAML)
	scenarios, _ := filepath.Glob(chartDir + "/ci/*.yaml")

	r.step("helm lint --strict (Kubernetes " + cfg.kubeVersion + ")")
	for _, values := range scenarios {
		if out, err := t.runHelm(ctx, "lint", "--strict", "--kube-version", cfg.kubeVersion, chartDir, "-f", values); err != nil {
			r.indent(out)
			r.fail("helm lint with " + values)
		} else {
			r.ok(values)
		}
	}

	r.step("helm template + manifest validation")
	outDir := cfg.out
	if outDir == "" {
		outDir = filepath.Join(work, "rendered")
	}
	if err := os.MkdirAll(outDir, 0o750); err != nil {
		r.fail(fmt.Sprintf("rendered manifests: %v", err))
		return
	}
	file := func(name string) string { return outDir + "/" + name + ".yaml" }
	var rendered []string
	render := func(name, kubeVersion, release string, args ...string) {
		cmd := t.helmCmd(ctx, append([]string{"template", release, chartDir, "--namespace", "wasmwizard", "--kube-version", kubeVersion}, args...)...)
		var manifest, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &manifest, &errOut
		err := cmd.Run()
		if werr := os.WriteFile(file(name), manifest.Bytes(), 0o600); err == nil {
			err = werr
		}
		if err != nil {
			r.indent(errOut.String())
			r.fail("helm template " + name)
			return
		}
		r.ok(fmt.Sprintf("rendered %s: %d objects (Kubernetes %s)", name, countKinds(manifest.Bytes()), kubeVersion))
		rendered = append(rendered, file(name))
	}
	for _, values := range scenarios {
		base := strings.TrimSuffix(filepath.Base(values), ".yaml")
		render(base, cfg.kubeVersion, "ww", "-f", values)
		if minKube != "" {
			render(base+"-k8s"+minKube, minKube, "ww", "-f", values)
		}
	}
	render("long-release-name", cfg.kubeVersion, "a-very-long-release-name-that-is-53-characters-long-x", "-f", chartDir+"/ci/full-values.yaml")
	if len(rendered) > 0 {
		var out bytes.Buffer
		bad, err := lintManifestFiles(&out, rendered...)
		r.tool(out.String(), bad, err, true, "all rendered manifests pass strict API decoding and the cross-checks",
			"rendered manifests have problems")
	}
	r.report(checkRendered(func(name string) string {
		b, _ := os.ReadFile(file(name))
		return string(b)
	})...)

	r.step("Negative tests: the chart must refuse these values")
	for _, ref := range refusals {
		out, err := t.runHelm(ctx, append([]string{"template", "ww", chartDir, "--kube-version", cfg.kubeVersion}, ref.args...)...)
		res, show := ref.judge(err, out)
		if show {
			r.indent(out)
		}
		r.report(res)
	}

	r.step("Negative test: the manifest validator must reject a broken manifest")
	if full, err := os.ReadFile(file("full-values")); err == nil {
		broken := filepath.Join(work, "broken.yaml")
		var out bytes.Buffer
		bad, err := false, os.WriteFile(broken, breakManifest(full), 0o600) //nolint:gosec // in this run's scratch directory
		if err == nil {
			bad, err = lintManifestFiles(&out, broken)
		}
		if err != nil {
			fmt.Fprintln(&out, err)
		}
		res := judgeBroken(bad, err, out.String())
		if !res.ok {
			r.indent(out.String())
		}
		r.report(res)
	}

	r.step("helm package")
	pkg := filepath.Join(work, "pkg")
	out, err := t.runHelm(ctx, "package", chartDir, "-d", pkg)
	var res result
	if err == nil {
		res, err = checkPackage(pkg)
		out = fmt.Sprint(err)
	}
	if err != nil {
		r.indent(out)
		r.fail("helm package")
		return
	}
	r.report(res)
}
