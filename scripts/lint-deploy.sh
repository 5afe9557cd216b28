#!/usr/bin/env bash
# scripts/lint-deploy.sh: offline checks of the container and Kubernetes
# packaging (Dockerfile.api, Dockerfile.worker, .dockerignore, charts/wasmwizard).
# No Docker engine and no cluster are needed; the tools come from the Go module
# proxy only and are built once into a cache directory.
#
# Usage: bash scripts/lint-deploy.sh            (from anywhere; exits non-zero on problems)
#
# Environment:
#   WIZARD_TOOLS_DIR   tool cache (default: ${XDG_CACHE_HOME:-~/.cache}/wasmwizard-tools; about
#                      2 GB, mostly the Go build cache that makes tool rebuilds fast)
#   KUBE_VERSION       Kubernetes version to lint/render against (default 1.37.0)
#   LINT_DEPLOY_OUT    keep the rendered manifests in this directory
#   LINT_DEPLOY_BUILD  =1: also copy the build context exactly as .dockerignore
#                      filters it and run the Dockerfiles' `go build` commands in it
#
# What it checks:
#   1. Dockerfiles: BuildKit's own Dockerfile linter (the rules of
#      `docker build --check`, run offline via github.com/moby/buildkit), plus
#      project policy (distroless nonroot runtime, numeric non-root USER, exec-form
#      ENTRYPOINT + CMD ["serve"], EXPOSE, OCI labels, cached `go mod download`
#      layer, CGO_ENABLED=0 -trimpath, worker data dir VOLUME, Go version matches go.mod).
#   2. .dockerignore: evaluated with Docker's own pattern matcher: what is sent as
#      build context, that go.mod/go.sum/Go packages are in it and .git/bin/charts/... are not.
#   3. Helm: `helm lint --strict` (values.schema.json included) and `helm template`
#      for every scenario in charts/wasmwizard/ci/*.yaml (defaults; KEDA +
#      ServiceMonitor + chart-made Secret; existing Secret), at KUBE_VERSION and
#      at the chart's minimum Kubernetes version, plus a 53-character release name.
#   4. Rendered manifests: strict decoding into the Kubernetes Go API types
#      (k8s.io/api v0.37, KEDA v2 ScaledObject/TriggerAuthentication,
#      prometheus-operator ServiceMonitor): unknown/duplicate fields, wrong types,
#      unknown kinds; plus cross-checks (selectors, port names, probes, secret and
#      configmap references, autoscaler targets, PDBs, security context, pre-install
#      hook ordering, worker grace period > WIZARD_WORKER_SHUTDOWN_TIMEOUT; KEDA:
#      metrics-api trigger with url/valueLocation/targetValue and an authenticationRef
#      for bearer auth, minReplicaCount >= 1, a fallback, a scale-down stabilization).
#   5. Negative tests: values the chart must refuse, and a tampered manifest the
#      validator must reject.
#   6. `helm package` works and leaves the ci/ scenarios out.
#
# Not checked (needs a Docker engine or a cluster): that the images build and run,
# admission-time validation by a real API server (defaulting, immutable fields,
# quota, PodSecurity admission), that KEDA/prometheus-operator accept the CRs at the
# versions installed in a cluster, and the probes' behaviour.
# shellcheck disable=SC2016 # single-quoted regexes with a literal $ are intended
set -euo pipefail

HELM_VERSION=v3.22.0
HELM_K8S_MINOR=37              # Helm v3.22.0 is built against k8s.io/client-go v0.37
BUILDKIT_VERSION=v0.34.2
K8S_API_VERSION=v0.37.2
KEDA_VERSION=v2.21.0
PROM_OPERATOR_VERSION=v0.95.2
SIGS_YAML_VERSION=v1.6.0
KUBE_VERSION=${KUBE_VERSION:-1.37.0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CHART=charts/wasmwizard
TOOLS_DIR=${WIZARD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmwizard-tools}
mkdir -p "$TOOLS_DIR/bin" "$TOOLS_DIR/logs"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lint-deploy.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS

# Helm must not read or write the user's Helm config, repositories or plugins.
export HELM_CACHE_HOME=$WORK/helm/cache HELM_CONFIG_HOME=$WORK/helm/config HELM_DATA_HOME=$WORK/helm/data

FAILURES=()
step() { printf '\n==> %s\n' "$*"; }
ok() { printf '    ok    %s\n' "$*"; }
fail() { printf '    FAIL  %s\n' "$*"; FAILURES+=("$*"); }
indent() { sed 's/^/          /'; }

command -v go >/dev/null || { echo "lint-deploy: Go is required (https://go.dev/dl/ or the Debian golang package)" >&2; exit 2; }

# Tool builds use their own build cache (immune to `go clean -cache` elsewhere),
# no workspace, no VCS stamping, and never the repository's go.mod.
gotool() { env GOCACHE="$TOOLS_DIR/gocache" GOFLAGS=-buildvcs=false GOWORK=off "$@"; }

# build_go_tool NAME SOURCE_FUNCTION MODULE@VERSION...: builds a throwaway
# module (outside the repository) once; sets TOOL_BIN.
build_go_tool() {
  local name=$1 srcfn=$2
  shift 2
  local src hash dir log
  src=$("$srcfn")
  hash=$({ printf '%s\n' "$src" "$@"; go env GOVERSION; } | sha256sum | cut -c1-12)
  TOOL_BIN=$TOOLS_DIR/bin/$name-$hash
  [[ -x $TOOL_BIN ]] && return 0
  echo "    building $name (first run only) ..."
  dir=$TOOLS_DIR/src/$name-$hash
  log=$TOOLS_DIR/logs/$name.log
  rm -rf "$dir" && mkdir -p "$dir"
  printf '%s\n' "$src" >"$dir/main.go"
  printf 'module wasmwizard.local/%s\n\ngo 1.26\n' "$name" >"$dir/go.mod"
  if ! (cd "$dir" && gotool go get "$@" && gotool go mod tidy && gotool go build -trimpath -o "$TOOL_BIN.tmp" .) >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "lint-deploy: building $name failed (log: $log)" >&2
    exit 2
  fi
  mv "$TOOL_BIN.tmp" "$TOOL_BIN"
  # Drop builds of older versions of this tool.
  find "$TOOLS_DIR/bin" "$TOOLS_DIR/src" -maxdepth 1 -name "$name-*" ! -name "$name-$hash" -exec rm -rf {} +
}

build_helm() {
  HELM=$TOOLS_DIR/bin/helm-$HELM_VERSION-k8s1.$HELM_K8S_MINOR
  [[ -x $HELM ]] && return 0
  echo "    building helm $HELM_VERSION (first run only, a few minutes) ..."
  local tmp log=$TOOLS_DIR/logs/helm.log
  tmp=$(mktemp -d "$TOOLS_DIR/tmp.XXXXXX")
  # Same -X flags as Helm's release Makefile: without them `helm template`
  # assumes Kubernetes v1.20 and the deprecation lint checks an old version.
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR"
  ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR"
  if ! (cd "$tmp" && gotool GOBIN="$tmp" go install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "lint-deploy: building helm failed (log: $log)" >&2
    exit 2
  fi
  mv "$tmp/helm" "$HELM"
  rm -rf "$tmp"
}

# ---------------------------------------------------------------------------
# Sources of the two small checkers built by build_go_tool (kept here so the
# script is self-contained; they are compiled outside the repository).

dflint_src() {
  cat <<'GO'
// dflint runs BuildKit's Dockerfile linter (the rules behind
// `docker build --check`) without a Docker engine or network access, and
// evaluates a .dockerignore the way the Docker CLI/BuildKit does.
//
//	dflint Dockerfile...
//	dflint -context DIR [-export OUT] [-require p1,p2] [-forbid p1,p2]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// offlineResolver answers base-image lookups with a minimal config instead of
// contacting a registry.
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	p := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	if opt.ImageOpt != nil && opt.ImageOpt.Platform != nil {
		p = *opt.ImageOpt.Platform
	}
	img := ocispecs.Image{Platform: p, Config: ocispecs.ImageConfig{
		Env: []string{"PATH=/usr/local/go/bin:/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOPATH=/go"},
	}}
	dt, err := json.Marshal(img)
	if err != nil {
		return "", "", nil, err
	}
	return ref, digest.FromBytes(dt), dt, nil
}

func main() {
	ctxDir := flag.String("context", "", "build context directory whose .dockerignore is evaluated")
	export := flag.String("export", "", "copy the files that would be sent as build context to this directory")
	require := flag.String("require", "", "comma-separated paths that must be in the build context")
	forbid := flag.String("forbid", "", "comma-separated paths that must not be in the build context")
	flag.Parse()
	if *ctxDir != "" {
		os.Exit(checkContext(*ctxDir, *export, split(*require), split(*forbid)))
	}
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: dflint Dockerfile... | dflint -context DIR [-export OUT] [-require a,b] [-forbid c,d]")
		os.Exit(2)
	}
	bad := false
	for _, fn := range flag.Args() {
		dt, err := os.ReadFile(fn)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		linux := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
		sm := llb.NewSourceMap(nil, fn, "Dockerfile", dt)
		sm.Definition = &llb.Definition{}
		opt := dockerfile2llb.ConvertOpt{
			Config: dockerui.Config{
				BuildPlatforms:  []ocispecs.Platform{linux},
				TargetPlatforms: []ocispecs.Platform{linux},
			},
			SourceMap:    sm,
			MetaResolver: offlineResolver{},
		}
		res, err := dockerfile2llb.DockerfileLint(context.Background(), dt, opt)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", fn, err)
			os.Exit(2)
		}
		if res.Error != nil {
			bad = true
			fmt.Printf("%s: ERROR: ", fn)
			res.PrintErrorTo(os.Stdout, nil)
		}
		if len(res.Warnings) > 0 {
			bad = true
			fmt.Printf("%s: %d warning(s):", fn, len(res.Warnings))
			if err := res.PrintTo(os.Stdout, nil); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
		}
		if res.Error == nil && len(res.Warnings) == 0 {
			fmt.Printf("%s: ok (BuildKit lint: no warnings)\n", fn)
		}
	}
	if bad {
		os.Exit(1)
	}
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// checkContext walks dir like `docker build` does when it sends the build
// context: paths matched by .dockerignore are left out.
func checkContext(dir, export string, require, forbid []string) int {
	var patterns []string
	if f, err := os.Open(filepath.Join(dir, ".dockerignore")); err == nil {
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		fmt.Fprintf(os.Stderr, ".dockerignore: %v\n", err)
		return 2
	}
	included := map[string]bool{}
	var files, bytes int64
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		skip, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if skip {
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		included[rel] = true
		for p := filepath.Dir(rel); p != "."; p = filepath.Dir(p) {
			included[filepath.ToSlash(p)] = true
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			files++
			bytes += info.Size()
			if export != "" {
				if err := copyFile(path, filepath.Join(export, rel), info.Mode()); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Printf("build context %s: %d files, %.1f KiB after .dockerignore (%d patterns)\n", dir, files, float64(bytes)/1024, len(patterns))
	rc := 0
	for _, p := range require {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			fmt.Printf("  note: required path %s does not exist yet\n", p)
			continue
		}
		if !included[p] {
			fmt.Printf("  ERROR: %s is excluded by .dockerignore but the image build needs it\n", p)
			rc = 1
		}
	}
	for _, p := range forbid {
		if included[p] {
			fmt.Printf("  ERROR: %s is sent in the build context; add it to .dockerignore\n", p)
			rc = 1
		}
	}
	return rc
}

func copyFile(src, dst string, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode.Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
GO
}

k8slint_src() {
  cat <<'GO'
// k8slint checks rendered Kubernetes manifests offline: every document is
// decoded strictly into the official Go API types (unknown or duplicate
// fields, wrong types and unknown apiVersion/kind are errors), and the objects
// are cross-checked (selectors, port names, references, autoscaler targets,
// security settings, hook ordering).
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

type object struct {
	source string // "# Source:" comment of the helm template output, or file#index
	obj    runtime.Object
	meta   metav1.Object
	kind   string
}

func (o *object) id() string {
	return fmt.Sprintf("%s/%s (%s)", o.kind, o.meta.GetName(), o.source)
}

type linter struct {
	errs     []string
	external map[string]bool
	objs     []*object
}

func (l *linter) errorf(o *object, format string, args ...any) {
	prefix := ""
	if o != nil {
		prefix = o.id() + ": "
	}
	l.errs = append(l.errs, prefix+fmt.Sprintf(format, args...))
}

var requiredLabels = []string{
	"app.kubernetes.io/name",
	"app.kubernetes.io/instance",
	"app.kubernetes.io/managed-by",
	"helm.sh/chart",
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: k8slint rendered.yaml...")
		os.Exit(2)
	}
	sch := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, kedav1alpha1.AddToScheme, monitoringv1.AddToScheme} {
		if err := add(sch); err != nil {
			panic(err)
		}
	}
	decoder := serializer.NewCodecFactory(sch, serializer.EnableStrict).UniversalDeserializer()

	failed := false
	for _, fn := range os.Args[1:] {
		l := &linter{external: map[string]bool{}}
		if err := l.load(fn, decoder); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", fn, err)
			os.Exit(2)
		}
		l.check()
		counts := map[string]int{}
		for _, o := range l.objs {
			counts[o.kind]++
		}
		var kinds []string
		for k, n := range counts {
			kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
		}
		sort.Strings(kinds)
		fmt.Printf("%s: %d objects (%s)\n", fn, len(l.objs), strings.Join(kinds, ", "))
		if len(l.external) > 0 {
			var ext []string
			for k := range l.external {
				ext = append(ext, k)
			}
			sort.Strings(ext)
			fmt.Printf("  expects to exist in the cluster: %s\n", strings.Join(ext, ", "))
		}
		for _, e := range l.errs {
			fmt.Printf("  ERROR: %s\n", e)
		}
		if len(l.errs) > 0 {
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

func (l *linter) load(fn string, decoder runtime.Decoder) error {
	f, err := os.Open(fn)
	if err != nil {
		return err
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		source := fmt.Sprintf("%s#%d", fn, i)
		empty := true
		for _, line := range strings.Split(string(doc), "\n") {
			t := strings.TrimSpace(line)
			if strings.HasPrefix(t, "# Source: ") {
				source = strings.TrimPrefix(t, "# Source: ")
			}
			if t != "" && !strings.HasPrefix(t, "#") && t != "---" {
				empty = false
			}
		}
		if empty {
			continue
		}
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			l.errs = append(l.errs, fmt.Sprintf("%s: invalid YAML: %v", source, err))
			continue
		}
		obj, gvk, err := decoder.Decode(js, nil, nil)
		if err != nil {
			l.errs = append(l.errs, fmt.Sprintf("%s: %v", source, err))
			if obj == nil {
				continue
			}
		}
		m, err := metaOf(obj)
		if err != nil {
			l.errs = append(l.errs, fmt.Sprintf("%s: %v", source, err))
			continue
		}
		l.objs = append(l.objs, &object{source: source, obj: obj, meta: m, kind: gvk.Kind})
	}
}

func metaOf(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no object metadata", obj)
	}
	return m, nil
}

func (l *linter) find(kind, ns, name string) *object {
	for _, o := range l.objs {
		if o.kind == kind && o.meta.GetName() == name && o.meta.GetNamespace() == ns {
			return o
		}
	}
	return nil
}

func isHook(o *object) bool {
	_, ok := o.meta.GetAnnotations()["helm.sh/hook"]
	return ok
}

func (l *linter) check() {
	seen := map[string]*object{}
	for _, o := range l.objs {
		key := o.kind + "/" + o.meta.GetNamespace() + "/" + o.meta.GetName()
		if prev, dup := seen[key]; dup {
			l.errorf(o, "duplicate of %s", prev.source)
		}
		seen[key] = o
		l.checkMeta(o)
		switch t := o.obj.(type) {
		case *appsv1.Deployment:
			l.checkDeployment(o, t)
		case *batchv1.Job:
			l.checkPodSpec(o, &t.Spec.Template, false)
		case *corev1.Service:
			l.checkService(o, t)
		case *autoscalingv2.HorizontalPodAutoscaler:
			l.checkHPA(o, t)
		case *policyv1.PodDisruptionBudget:
			l.checkPDB(o, t)
		case *kedav1alpha1.ScaledObject:
			l.checkScaledObject(o, t)
		case *monitoringv1.ServiceMonitor:
			l.checkServiceMonitor(o, t)
		case *monitoringv1.PrometheusRule:
			l.checkPrometheusRule(o, t)
		case *kedav1alpha1.TriggerAuthentication:
			for _, r := range t.Spec.SecretTargetRef {
				l.ref(o, "Secret", r.Name, false)
				l.checkKey(o, "Secret", r.Name, r.Key, false)
			}
		case *corev1.ConfigMap, *corev1.Secret, *corev1.ServiceAccount:
		default:
			l.errorf(o, "kind %s is not expected in this chart (add checks for it to k8slint)", o.kind)
		}
	}
}

func (l *linter) checkMeta(o *object) {
	name := o.meta.GetName()
	var msgs []string
	if name == "" {
		msgs = []string{"metadata.name is empty"}
	} else if o.kind == "Service" {
		msgs = validation.IsDNS1035Label(name)
	} else {
		msgs = validation.IsDNS1123Subdomain(name)
	}
	for _, m := range msgs {
		l.errorf(o, "metadata.name %q: %s", name, m)
	}
	if o.meta.GetNamespace() == "" {
		l.errorf(o, "metadata.namespace is not set")
	}
	for _, e := range metav1validation.ValidateLabels(o.meta.GetLabels(), field.NewPath("metadata", "labels")) {
		l.errorf(o, "%v", e)
	}
	for _, e := range apivalidation.ValidateAnnotations(o.meta.GetAnnotations(), field.NewPath("metadata", "annotations")) {
		l.errorf(o, "%v", e)
	}
	for _, k := range requiredLabels {
		if o.meta.GetLabels()[k] == "" {
			l.errorf(o, "missing recommended label %s", k)
		}
	}
}

func (l *linter) checkDeployment(o *object, d *appsv1.Deployment) {
	if d.Spec.Selector == nil || len(d.Spec.Selector.MatchLabels)+len(d.Spec.Selector.MatchExpressions) == 0 {
		l.errorf(o, "spec.selector is empty")
	} else if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err != nil {
		l.errorf(o, "spec.selector: %v", err)
	} else if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		l.errorf(o, "spec.selector does not match the pod template labels")
	}
	for _, other := range l.objs {
		if other.meta.GetNamespace() != o.meta.GetNamespace() {
			continue
		}
		var otherSel *metav1.LabelSelector
		if other != o {
			if od, ok := other.obj.(*appsv1.Deployment); ok {
				otherSel = od.Spec.Selector
			}
		}
		if otherSel != nil {
			if s, err := metav1.LabelSelectorAsSelector(otherSel); err == nil && s.Matches(labels.Set(d.Spec.Template.Labels)) {
				l.errorf(o, "pods are also selected by %s", other.id())
			}
		}
	}
	l.checkPodSpec(o, &d.Spec.Template, true)
}

func hasAll(list []corev1.Capability) bool {
	for _, c := range list {
		if c == "ALL" {
			return true
		}
	}
	return false
}

func (l *linter) ref(o *object, kind, name string, optional bool) {
	ns := o.meta.GetNamespace()
	target := l.find(kind, ns, name)
	if target == nil {
		if kind == "ServiceAccount" && name == "default" {
			return
		}
		if !optional {
			l.external[kind+"/"+name] = true
		}
		return
	}
	if isHook(o) && !isHook(target) {
		hooks := o.meta.GetAnnotations()["helm.sh/hook"]
		if strings.Contains(hooks, "pre-install") {
			l.errorf(o, "pre-install hook uses %s, which is a normal release object and does not exist yet when the hook runs on first install", target.id())
		}
	}
}

func (l *linter) checkPodSpec(o *object, t *corev1.PodTemplateSpec, longRunning bool) {
	spec := &t.Spec
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		l.errorf(o, "pod uses host namespaces")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		l.errorf(o, "automountServiceAccountToken should be false (the app does not use the Kubernetes API)")
	}
	if spec.ServiceAccountName != "" {
		l.ref(o, "ServiceAccount", spec.ServiceAccountName, false)
	}
	for _, s := range spec.ImagePullSecrets {
		l.ref(o, "Secret", s.Name, false)
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
		switch {
		case v.ConfigMap != nil:
			l.ref(o, "ConfigMap", v.ConfigMap.Name, v.ConfigMap.Optional != nil && *v.ConfigMap.Optional)
		case v.Secret != nil:
			l.ref(o, "Secret", v.Secret.SecretName, v.Secret.Optional != nil && *v.Secret.Optional)
		case v.EmptyDir != nil:
			if v.EmptyDir.SizeLimit == nil {
				l.errorf(o, "emptyDir volume %q has no sizeLimit", v.Name)
			}
		}
	}
	if len(spec.Containers) == 0 {
		l.errorf(o, "pod has no containers")
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		where := fmt.Sprintf("container %q", c.Name)
		if c.Image == "" {
			l.errorf(o, "%s: image is empty", where)
		} else if !strings.Contains(c.Image, "@sha256:") {
			lastColon := strings.LastIndex(c.Image, ":")
			if lastColon < strings.LastIndex(c.Image, "/") || lastColon < 0 {
				l.errorf(o, "%s: image %q has no tag", where, c.Image)
			} else if strings.HasSuffix(c.Image, ":latest") {
				l.errorf(o, "%s: image %q uses :latest", where, c.Image)
			}
		}
		ports := map[string]int32{}
		for _, p := range c.Ports {
			if p.Name != "" {
				for _, m := range validation.IsValidPortName(p.Name) {
					l.errorf(o, "%s: port name %q: %s", where, p.Name, m)
				}
				ports[p.Name] = p.ContainerPort
			}
		}
		probes := map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe}
		for kind, p := range probes {
			if p == nil {
				if longRunning && kind != "startup" {
					l.errorf(o, "%s: no %s probe", where, kind)
				}
				continue
			}
			if p.HTTPGet != nil && p.HTTPGet.Port.Type == intstr.String {
				if _, ok := ports[p.HTTPGet.Port.StrVal]; !ok {
					l.errorf(o, "%s: %s probe uses unknown port name %q", where, kind, p.HTTPGet.Port.StrVal)
				}
			}
		}
		req, lim := c.Resources.Requests, c.Resources.Limits
		if _, ok := req[corev1.ResourceCPU]; !ok {
			l.errorf(o, "%s: no cpu request", where)
		}
		if _, ok := req[corev1.ResourceMemory]; !ok {
			l.errorf(o, "%s: no memory request", where)
		}
		if _, ok := lim[corev1.ResourceMemory]; !ok {
			l.errorf(o, "%s: no memory limit", where)
		}
		for name, q := range lim {
			if r, ok := req[name]; ok && r.Cmp(q) > 0 {
				l.errorf(o, "%s: %s request %s exceeds limit %s", where, name, r.String(), q.String())
			}
		}
		sc := c.SecurityContext
		if sc == nil {
			sc = &corev1.SecurityContext{}
		}
		nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
		if !nonRoot {
			l.errorf(o, "%s: runAsNonRoot is not true", where)
		}
		uid := sc.RunAsUser
		if uid == nil {
			uid = psc.RunAsUser
		}
		if uid != nil && *uid == 0 {
			l.errorf(o, "%s: runAsUser is 0", where)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			l.errorf(o, "%s: readOnlyRootFilesystem is not true", where)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			l.errorf(o, "%s: allowPrivilegeEscalation is not false", where)
		}
		if sc.Privileged != nil && *sc.Privileged {
			l.errorf(o, "%s: privileged", where)
		}
		if sc.Capabilities == nil || !hasAll(sc.Capabilities.Drop) {
			l.errorf(o, "%s: capabilities do not drop ALL", where)
		} else if len(sc.Capabilities.Add) > 0 {
			l.errorf(o, "%s: adds capabilities %v", where, sc.Capabilities.Add)
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = psc.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			l.errorf(o, "%s: seccompProfile is not RuntimeDefault", where)
		}
		mounts := map[string]bool{}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				l.errorf(o, "%s: volumeMount %q has no volume", where, m.Name)
			}
			if mounts[m.MountPath] {
				l.errorf(o, "%s: mountPath %s mounted twice", where, m.MountPath)
			}
			mounts[m.MountPath] = true
		}
		env := map[string]string{}
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				optional := e.ConfigMapRef.Optional != nil && *e.ConfigMapRef.Optional
				l.ref(o, "ConfigMap", e.ConfigMapRef.Name, optional)
				if cm := l.find("ConfigMap", o.meta.GetNamespace(), e.ConfigMapRef.Name); cm != nil {
					for k, v := range cm.obj.(*corev1.ConfigMap).Data {
						env[k] = v
					}
				}
			}
			if e.SecretRef != nil {
				l.ref(o, "Secret", e.SecretRef.Name, e.SecretRef.Optional != nil && *e.SecretRef.Optional)
			}
		}
		names := map[string]bool{}
		for _, e := range c.Env {
			for _, m := range validation.IsEnvVarName(e.Name) {
				l.errorf(o, "%s: env %q: %s", where, e.Name, m)
			}
			if names[e.Name] {
				l.errorf(o, "%s: env %s set twice", where, e.Name)
			}
			names[e.Name] = true
			env[e.Name] = e.Value
			if e.ValueFrom != nil {
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					l.ref(o, "Secret", r.Name, r.Optional != nil && *r.Optional)
					l.checkKey(o, "Secret", r.Name, r.Key, r.Optional != nil && *r.Optional)
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					l.ref(o, "ConfigMap", r.Name, r.Optional != nil && *r.Optional)
					l.checkKey(o, "ConfigMap", r.Name, r.Key, r.Optional != nil && *r.Optional)
				}
			}
		}
		// Wasm Wizard specific: one sandbox child per concurrent job, each
		// allowed WIZARD_SANDBOX_MEMORY_MB; the container limit must cover them
		// or a runaway guest gets the whole pod (and every job on it) OOM-killed.
		if mbStr, ok := env["WIZARD_SANDBOX_MEMORY_MB"]; ok && longRunning {
			mb, err1 := strconv.Atoi(mbStr)
			conc, err2 := strconv.Atoi(env["WIZARD_WORKER_CONCURRENCY"])
			if err1 != nil || err2 != nil {
				l.errorf(o, "%s: WIZARD_SANDBOX_MEMORY_MB %q / WIZARD_WORKER_CONCURRENCY %q are not integers", where, mbStr, env["WIZARD_WORKER_CONCURRENCY"])
			} else if lim, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && mb > 0 {
				need := int64(conc) * int64(mb) << 20
				if lim.Value() < need {
					l.errorf(o, "%s: memory limit %s is below WIZARD_WORKER_CONCURRENCY (%d) x WIZARD_SANDBOX_MEMORY_MB (%d MiB)", where, lim.String(), conc, mb)
				}
			}
		}
		// Wasm Wizard specific: each binary must get more time than its own
		// shutdown timeout (plus any preStop sleep), or running jobs and
		// requests are killed instead of finished or handed back.
		for _, name := range []string{"WIZARD_WORKER_SHUTDOWN_TIMEOUT", "WIZARD_SHUTDOWN_TIMEOUT"} {
			v, ok := env[name]
			if !ok || !longRunning {
				continue
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				l.errorf(o, "%s: %s %q: %v", where, name, v, err)
				continue
			}
			grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
			if spec.TerminationGracePeriodSeconds != nil {
				grace = *spec.TerminationGracePeriodSeconds
			}
			var sleep int64
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
				sleep = c.Lifecycle.PreStop.Sleep.Seconds
			}
			if time.Duration(grace-sleep)*time.Second <= d {
				l.errorf(o, "%s: terminationGracePeriodSeconds %d (minus preStop sleep %ds) is not greater than %s %s", where, grace, sleep, name, v)
			}
		}
	}
}

func (l *linter) checkKey(o *object, kind, name, key string, optional bool) {
	t := l.find(kind, o.meta.GetNamespace(), name)
	if t == nil || optional {
		return
	}
	switch v := t.obj.(type) {
	case *corev1.Secret:
		_, a := v.Data[key]
		_, b := v.StringData[key]
		if !a && !b {
			l.errorf(o, "Secret %s has no key %q", name, key)
		}
	case *corev1.ConfigMap:
		if _, ok := v.Data[key]; !ok {
			l.errorf(o, "ConfigMap %s has no key %q", name, key)
		}
	}
}

// podTemplates returns the workloads in o's namespace whose pods match sel.
func (l *linter) podsMatching(ns string, sel labels.Selector) []*corev1.PodTemplateSpec {
	var out []*corev1.PodTemplateSpec
	for _, w := range l.objs {
		if w.meta.GetNamespace() != ns {
			continue
		}
		var t *corev1.PodTemplateSpec
		switch v := w.obj.(type) {
		case *appsv1.Deployment:
			t = &v.Spec.Template
		case *appsv1.StatefulSet:
			t = &v.Spec.Template
		case *appsv1.DaemonSet:
			t = &v.Spec.Template
		}
		if t != nil && sel.Matches(labels.Set(t.Labels)) {
			out = append(out, t)
		}
	}
	return out
}

func (l *linter) checkService(o *object, s *corev1.Service) {
	if len(s.Spec.Selector) == 0 {
		l.errorf(o, "service has no selector")
		return
	}
	pods := l.podsMatching(o.meta.GetNamespace(), labels.SelectorFromSet(s.Spec.Selector))
	if len(pods) == 0 {
		l.errorf(o, "selector %v matches no workload in the release", s.Spec.Selector)
		return
	}
	for _, p := range s.Spec.Ports {
		for _, m := range validation.IsValidPortName(p.Name) {
			if p.Name != "" {
				l.errorf(o, "port name %q: %s", p.Name, m)
			}
		}
		for _, t := range pods {
			found := false
			for _, c := range t.Spec.Containers {
				for _, cp := range c.Ports {
					if (p.TargetPort.Type == intstr.String && cp.Name == p.TargetPort.StrVal) ||
						(p.TargetPort.Type == intstr.Int && cp.ContainerPort == p.TargetPort.IntVal) ||
						(p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == 0 && cp.ContainerPort == p.Port) {
						found = true
					}
				}
			}
			if !found {
				l.errorf(o, "targetPort %s of port %q is not a container port of the selected pods", p.TargetPort.String(), p.Name)
			}
		}
	}
}

func (l *linter) scaleTarget(o *object, kind, name string) *appsv1.Deployment {
	if kind != "Deployment" {
		l.errorf(o, "scale target kind %q is not Deployment", kind)
		return nil
	}
	t := l.find("Deployment", o.meta.GetNamespace(), name)
	if t == nil {
		l.errorf(o, "scale target Deployment/%s is not in the release", name)
		return nil
	}
	d := t.obj.(*appsv1.Deployment)
	if d.Spec.Replicas != nil {
		l.errorf(o, "scale target Deployment/%s sets spec.replicas; it fights the autoscaler on every upgrade", name)
	}
	for _, other := range l.objs {
		if other == o {
			continue
		}
		var otherName string
		switch v := other.obj.(type) {
		case *autoscalingv2.HorizontalPodAutoscaler:
			otherName = v.Spec.ScaleTargetRef.Name
		case *kedav1alpha1.ScaledObject:
			if v.Spec.ScaleTargetRef != nil {
				otherName = v.Spec.ScaleTargetRef.Name
			}
		}
		if otherName == name && other.meta.GetNamespace() == o.meta.GetNamespace() {
			l.errorf(o, "Deployment/%s is also scaled by %s", name, other.id())
		}
	}
	return d
}

func (l *linter) checkHPA(o *object, h *autoscalingv2.HorizontalPodAutoscaler) {
	if h.Spec.MinReplicas != nil && *h.Spec.MinReplicas > h.Spec.MaxReplicas {
		l.errorf(o, "minReplicas > maxReplicas")
	}
	if len(h.Spec.Metrics) == 0 {
		l.errorf(o, "no metrics")
	}
	d := l.scaleTarget(o, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
	if d == nil {
		return
	}
	for _, m := range h.Spec.Metrics {
		if m.Type != autoscalingv2.ResourceMetricSourceType || m.Resource == nil {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if _, ok := c.Resources.Requests[m.Resource.Name]; !ok && m.Resource.Target.Type == autoscalingv2.UtilizationMetricType {
				l.errorf(o, "scales on %s utilization but container %q has no %s request", m.Resource.Name, c.Name, m.Resource.Name)
			}
		}
	}
}

func (l *linter) checkPDB(o *object, p *policyv1.PodDisruptionBudget) {
	if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
		l.errorf(o, "set exactly one of minAvailable and maxUnavailable")
	}
	sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
	if err != nil || p.Spec.Selector == nil || sel.Empty() {
		l.errorf(o, "invalid or empty selector")
		return
	}
	if len(l.podsMatching(o.meta.GetNamespace(), sel)) == 0 {
		l.errorf(o, "selector matches no workload in the release")
	}
}

func (l *linter) checkScaledObject(o *object, s *kedav1alpha1.ScaledObject) {
	if s.Spec.ScaleTargetRef == nil {
		l.errorf(o, "no scaleTargetRef")
		return
	}
	kind := s.Spec.ScaleTargetRef.Kind
	if kind == "" {
		kind = "Deployment"
	}
	l.scaleTarget(o, kind, s.Spec.ScaleTargetRef.Name)
	if s.Spec.MinReplicaCount != nil && s.Spec.MaxReplicaCount != nil && *s.Spec.MinReplicaCount > *s.Spec.MaxReplicaCount {
		l.errorf(o, "minReplicaCount > maxReplicaCount")
	}
	if len(s.Spec.Triggers) == 0 {
		l.errorf(o, "no triggers")
	}
	names := map[string]bool{}
	for _, t := range s.Spec.Triggers {
		if t.Name != "" {
			if names[t.Name] {
				l.errorf(o, "trigger name %q used twice", t.Name)
			}
			names[t.Name] = true
		}
		if t.AuthenticationRef != nil {
			k := t.AuthenticationRef.Kind
			if k == "" {
				k = "TriggerAuthentication"
			}
			if k == "TriggerAuthentication" {
				l.ref(o, k, t.AuthenticationRef.Name, false)
			}
		}
		if t.Type == "redis" {
			if t.Metadata["listName"] == "" {
				l.errorf(o, "redis trigger %q has no listName", t.Name)
			}
			if t.Metadata["address"] == "" && t.Metadata["host"] == "" && t.Metadata["addressFromEnv"] == "" && t.AuthenticationRef == nil {
				l.errorf(o, "redis trigger %q has no address and no authenticationRef", t.Name)
			}
		}
		// scaling: the metrics-api trigger on GET /v1/admin/scaling.
		if t.Type == "metrics-api" {
			for _, k := range []string{"url", "valueLocation", "targetValue"} {
				if t.Metadata[k] == "" {
					l.errorf(o, "metrics-api trigger %q has no %s", t.Name, k)
				}
			}
			if v, err := strconv.ParseFloat(t.Metadata["targetValue"], 64); err != nil || v <= 0 {
				l.errorf(o, "metrics-api trigger %q: targetValue %q is not a positive number", t.Name, t.Metadata["targetValue"])
			}
			if t.Metadata["authMode"] == "bearer" && t.AuthenticationRef == nil {
				l.errorf(o, "metrics-api trigger %q uses authMode bearer without an authenticationRef", t.Name)
			}
			if t.MetricType != "" && t.MetricType != autoscalingv2.AverageValueMetricType && s.Spec.Fallback != nil {
				l.errorf(o, "trigger %q: a fallback needs metricType AverageValue", t.Name)
			}
		}
	}
	// scaling: workers keep the reconciler and webhook retries alive, and
	// an unreadable metric must not freeze or zero the fleet.
	if s.Spec.MinReplicaCount == nil || *s.Spec.MinReplicaCount < 1 {
		l.errorf(o, "minReplicaCount must be at least 1")
	}
	if s.Spec.Fallback == nil {
		l.errorf(o, "no fallback: when the metric cannot be read the replica count is frozen")
	} else if s.Spec.MinReplicaCount != nil && s.Spec.Fallback.Replicas < *s.Spec.MinReplicaCount {
		l.errorf(o, "fallback.replicas below minReplicaCount")
	}
	if a := s.Spec.Advanced; a == nil || a.HorizontalPodAutoscalerConfig == nil || a.HorizontalPodAutoscalerConfig.Behavior == nil ||
		a.HorizontalPodAutoscalerConfig.Behavior.ScaleDown == nil || a.HorizontalPodAutoscalerConfig.Behavior.ScaleDown.StabilizationWindowSeconds == nil {
		l.errorf(o, "no scale-down stabilization window in advanced.horizontalPodAutoscalerConfig.behavior")
	}
}

// checkPrometheusRule: the alert rules arrive whole (files/prometheus-rules.yaml,
// whose expressions promtool checks and unit-tests in make test): groups with
// rules, each alert with a severity and a runbook.
func (l *linter) checkPrometheusRule(o *object, r *monitoringv1.PrometheusRule) {
	alerts := 0
	if len(r.Spec.Groups) == 0 {
		l.errorf(o, "spec.groups is empty")
	}
	for _, g := range r.Spec.Groups {
		if len(g.Rules) == 0 {
			l.errorf(o, "group %s has no rules", g.Name)
		}
		for _, rule := range g.Rules {
			if rule.Expr.String() == "" {
				l.errorf(o, "group %s: a rule has no expr", g.Name)
			}
			if rule.Alert == "" {
				continue
			}
			alerts++
			if rule.Labels["severity"] == "" || rule.Annotations["runbook"] == "" {
				l.errorf(o, "alert %s needs a severity label and a runbook annotation", rule.Alert)
			}
		}
	}
	if alerts == 0 {
		l.errorf(o, "no alerts")
	}
}

func (l *linter) checkServiceMonitor(o *object, s *monitoringv1.ServiceMonitor) {
	sel, err := metav1.LabelSelectorAsSelector(&s.Spec.Selector)
	if err != nil || sel.Empty() {
		l.errorf(o, "invalid or empty selector")
		return
	}
	namespaces := s.Spec.NamespaceSelector.MatchNames
	if len(namespaces) == 0 {
		namespaces = []string{o.meta.GetNamespace()}
	}
	var svcs []*corev1.Service
	for _, x := range l.objs {
		if svc, ok := x.obj.(*corev1.Service); ok && sel.Matches(labels.Set(svc.Labels)) {
			for _, ns := range namespaces {
				if ns == x.meta.GetNamespace() {
					svcs = append(svcs, svc)
				}
			}
		}
	}
	if len(svcs) == 0 {
		l.errorf(o, "selector matches no Service in the release")
		return
	}
	for _, ep := range s.Spec.Endpoints {
		if ep.Port == "" {
			continue
		}
		for _, svc := range svcs {
			found := false
			for _, p := range svc.Spec.Ports {
				found = found || p.Name == ep.Port
			}
			if !found {
				l.errorf(o, "endpoint port %q is not a port name of Service/%s", ep.Port, svc.Name)
			}
		}
	}
}
GO
}

# ---------------------------------------------------------------------------
step "Tools (cache: $TOOLS_DIR)"
build_helm
build_go_tool dflint dflint_src "github.com/moby/buildkit@$BUILDKIT_VERSION"
DFLINT=$TOOL_BIN
build_go_tool k8slint k8slint_src "k8s.io/api@$K8S_API_VERSION" "k8s.io/apimachinery@$K8S_API_VERSION" \
  "k8s.io/client-go@$K8S_API_VERSION" "sigs.k8s.io/yaml@$SIGS_YAML_VERSION" \
  "github.com/kedacore/keda/v2@$KEDA_VERSION" \
  "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring@$PROM_OPERATOR_VERSION"
K8SLINT=$TOOL_BIN
ok "$(go env GOVERSION); helm $("$HELM" version --template '{{.Version}}') (Kubernetes API 1.$HELM_K8S_MINOR); BuildKit $BUILDKIT_VERSION linter; k8s.io/api $K8S_API_VERSION, KEDA $KEDA_VERSION, prometheus-operator $PROM_OPERATOR_VERSION types"

# ---------------------------------------------------------------------------
step "Dockerfiles: BuildKit lint rules (docker build --check, offline)"
if out=$("$DFLINT" Dockerfile.api Dockerfile.worker 2>&1); then
  ok "Dockerfile.api, Dockerfile.worker: no BuildKit lint warnings"
else
  printf '%s\n' "$out" | indent
  fail "BuildKit lint reported problems in the Dockerfiles"
fi

step "Dockerfiles: project policy"
GO_MOD_VERSION=$(awk '$1 == "go" { split($2, v, "."); print v[1] "." v[2]; exit }' go.mod 2>/dev/null || true)
# expect FILE DESCRIPTION EXTENDED-REGEX [stage]: stage "final" = after the last FROM.
expect() {
  local file=$1 what=$2 re=$3 scope=${4:-all} text
  if [[ $scope == final ]]; then
    text=$(awk '/^FROM[[:space:]]/ { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' "$file")
  else
    text=$(cat "$file")
  fi
  if grep -Eq -- "$re" <<<"$text"; then ok "$file: $what"; else fail "$file: $what (expected /$re/)"; fi
}
expect_order() { # file description regex1 regex2 ...: lines appear in this order
  local file=$1 what=$2 last=0 n
  shift 2
  for re in "$@"; do
    n=$(grep -nE -- "$re" "$file" | head -n 1 | cut -d: -f1)
    if [[ -z $n || $n -le $last ]]; then fail "$file: $what (/$re/ missing or out of order)"; return; fi
    last=$n
  done
  ok "$file: $what"
}
for comp in api worker; do
  f=Dockerfile.$comp
  port=8080
  [[ $comp == worker ]] && port=8081
  expect "$f" "multi-stage: golang:\${GO_VERSION}-bookworm builder" '^FROM --platform=\$BUILDPLATFORM golang:\$\{GO_VERSION\}-bookworm AS build$'
  if [[ -n $GO_MOD_VERSION ]]; then
    expect "$f" "builder Go $GO_MOD_VERSION matches go.mod" "^ARG GO_VERSION=${GO_MOD_VERSION//./\\.}\$"
  fi
  expect "$f" "runtime defaults to distroless static nonroot" '^ARG RUNTIME_IMAGE=gcr\.io/distroless/static-debian12:nonroot$'
  expect "$f" "final stage is the runtime image" '^FROM \$\{RUNTIME_IMAGE\}$' final
  expect_order "$f" "go.mod/go.sum copied and 'go mod download' cached before the sources" \
    '^COPY go\.mod go\.sum \./$' '^RUN go mod download' '^COPY \. \.$'
  expect "$f" "static build: CGO_ENABLED=0" 'CGO_ENABLED=0'
  expect "$f" "go build -trimpath" 'go build -trimpath'
  expect "$f" "builds ./$comp into /out/wasmwizard-$comp" "-o /out/wasmwizard-$comp \\./$comp\$"
  expect "$f" "stamps the version like the Makefile" "-X github\\.com/wasmwizard/wasmwizard/$comp/app\\.Version=\\\$\\{VERSION\\}"
  expect "$f" "only the wasmwizard-$comp binary is copied into the runtime" "^COPY --from=build /out/wasmwizard-$comp /usr/local/bin/wasmwizard-$comp\$" final
  n=$(awk '/^FROM[[:space:]]/ { c = 0 } /^(COPY|ADD)[[:space:]]/ { c++ } END { print c + 0 }' "$f")
  want=1
  [[ $comp == worker ]] && want=2
  if [[ $n == "$want" ]]; then ok "$f: runtime stage has $n COPY instruction(s)"; else fail "$f: runtime stage has $n COPY/ADD instructions, expected $want"; fi
  expect "$f" "numeric non-root USER 65532:65532" '^USER 65532:65532$' final
  expect "$f" "EXPOSE $port" "^EXPOSE $port\$" final
  expect "$f" "exec-form ENTRYPOINT" "^ENTRYPOINT \\[\"/usr/local/bin/wasmwizard-$comp\"\\]\$" final
  expect "$f" 'CMD ["serve"]' '^CMD \["serve"\]$' final
  for label in title description source version revision created; do
    expect "$f" "OCI label org.opencontainers.image.$label" "org\\.opencontainers\\.image\\.$label=" final
  done
  if grep -Eq '^HEALTHCHECK[[:space:]]+CMD' "$f"; then fail "$f: HEALTHCHECK cannot run in a distroless image (no shell)"; else ok "$f: no HEALTHCHECK (distroless; Kubernetes probes instead)"; fi
done
expect Dockerfile.worker "data dir owned by 65532 copied in" '^COPY --from=build --chown=65532:65532 /out/data /var/lib/wasmwizard$' final
expect Dockerfile.worker "WIZARD_DATA_DIR=/var/lib/wasmwizard" 'WIZARD_DATA_DIR="/var/lib/wasmwizard"' final
expect Dockerfile.worker "VOLUME /var/lib/wasmwizard" '^VOLUME \["/var/lib/wasmwizard"\]$' final

step ".dockerignore: build context as Docker would send it"
required=go.mod,go.sum
for d in api worker shared migrations internal pkg cmd; do [[ -e $d ]] && required+=",$d"; done
forbidden=".git,bin,data,.cache,charts,docs,scripts,.ci,.env,Dockerfile.api,Dockerfile.worker"
ctx_args=(-context . -require "$required" -forbid "$forbidden")
[[ ${LINT_DEPLOY_BUILD:-} == 1 ]] && ctx_args+=(-export "$WORK/context")
if out=$("$DFLINT" "${ctx_args[@]}" 2>&1); then
  printf '%s\n' "$out" | indent
  ok "needed paths ($required) are in the context; ${forbidden//,/, } are not"
else
  printf '%s\n' "$out" | indent
  fail ".dockerignore problems"
fi
if [[ ${LINT_DEPLOY_BUILD:-} == 1 ]]; then
  step "Build the binaries from the filtered build context (LINT_DEPLOY_BUILD=1)"
  for comp in api worker; do
    stamp=lint-deploy-version-check
    if out=$(cd "$WORK/context" && gotool CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath \
        -ldflags="-s -w -X github.com/wasmwizard/wasmwizard/$comp/app.Version=$stamp" \
        -o "$WORK/out/wasmwizard-$comp" "./$comp" 2>&1); then
      ok "wasmwizard-$comp builds from the filtered context ($(du -h "$WORK/out/wasmwizard-$comp" | cut -f1))"
      if grep -qa "$stamp" "$WORK/out/wasmwizard-$comp"; then
        ok "wasmwizard-$comp: -X .../$comp/app.Version is applied"
      else
        fail "wasmwizard-$comp: -X github.com/wasmwizard/wasmwizard/$comp/app.Version had no effect (variable renamed?)"
      fi
    else
      printf '%s\n' "$out" | indent
      fail "wasmwizard-$comp does not build from the filtered build context"
    fi
  done
fi

# ---------------------------------------------------------------------------
MIN_KUBE_VERSION=$(sed -nE 's/^kubeVersion: *"?>=([0-9]+\.[0-9]+\.[0-9]+).*/\1/p' "$CHART/Chart.yaml")
step "helm lint --strict (Kubernetes $KUBE_VERSION)"
scenarios=("$CHART"/ci/*.yaml)
for values in "${scenarios[@]}"; do
  if out=$("$HELM" lint --strict --kube-version "$KUBE_VERSION" "$CHART" -f "$values" 2>&1); then
    ok "$values"
  else
    printf '%s\n' "$out" | indent
    fail "helm lint with $values"
  fi
done

step "helm template + manifest validation"
OUT=${LINT_DEPLOY_OUT:-$WORK/rendered}
mkdir -p "$OUT"
render() { # name kube-version release args...
  local name=$1 kv=$2 rel=$3
  shift 3
  if out=$("$HELM" template "$rel" "$CHART" --namespace wasmwizard --kube-version "$kv" "$@" 2>&1 >"$OUT/$name.yaml"); then
    ok "rendered $name: $(grep -c '^kind:' "$OUT/$name.yaml") objects (Kubernetes $kv)"
    RENDERED+=("$OUT/$name.yaml")
  else
    printf '%s\n' "$out" | indent
    fail "helm template $name"
  fi
}
RENDERED=()
for values in "${scenarios[@]}"; do
  base=$(basename "$values" .yaml)
  render "$base" "$KUBE_VERSION" ww -f "$values"
  [[ -n $MIN_KUBE_VERSION ]] && render "$base-k8s$MIN_KUBE_VERSION" "$MIN_KUBE_VERSION" ww -f "$values"
done
render long-release-name "$KUBE_VERSION" "a-very-long-release-name-that-is-53-characters-long-x" -f "$CHART/ci/full-values.yaml"
if [[ ${#RENDERED[@]} -gt 0 ]]; then
  if out=$("$K8SLINT" "${RENDERED[@]}" 2>&1); then
    printf '%s\n' "$out" | indent
    ok "all rendered manifests pass strict API decoding and the cross-checks"
  else
    printf '%s\n' "$out" | indent
    fail "rendered manifests have problems"
  fi
fi
# --- scaling: KEDA on GET /v1/admin/scaling, the CPU HPA alternative ---
if grep -q 'kind: ScaledObject' "$OUT/full-values.yaml" && grep -q 'type: metrics-api' "$OUT/full-values.yaml" &&
  grep -q 'url: "http://ww-wasmwizard-api.wasmwizard.svc:80/v1/admin/scaling"' "$OUT/full-values.yaml" &&
  grep -q 'valueLocation: "desired_workers"' "$OUT/full-values.yaml"; then
  ok "KEDA ScaledObject reads desired_workers from the release's API Service (metrics-api)"
else
  fail "KEDA metrics-api trigger on the API's /v1/admin/scaling not rendered"
fi
if grep -q 'type: redis' "$OUT/full-values.yaml" "$OUT/existing-secret-values.yaml"; then
  fail "a redis trigger is rendered (pending lists miss running jobs and created tiers)"
else
  ok "no redis-list triggers"
fi
if grep -A3 'kind: TriggerAuthentication' "$OUT/full-values.yaml" >/dev/null && grep -q 'key: WIZARD_METRICS_TOKEN' "$OUT/full-values.yaml"; then
  ok "TriggerAuthentication takes the metrics token from the release Secret"
else
  fail "TriggerAuthentication with the metrics token not rendered"
fi
if grep -q 'url: "https://wasmwizard-api.example.internal/v1/admin/scaling"' "$OUT/existing-secret-values.yaml" &&
  grep -q 'name: keda-wasmwizard' "$OUT/existing-secret-values.yaml"; then
  ok "worker.autoscaling.keda.url and tokenSecret are honoured"
else
  fail "worker.autoscaling.keda.url or tokenSecret ignored"
fi
if grep -q 'name: WIZARD_METRICS_TOKEN' "$OUT/full-values.yaml" && grep -q 'name: WIZARD_SCALING_SLOTS_PER_WORKER' "$OUT/full-values.yaml"; then
  ok "the API gets WIZARD_METRICS_TOKEN and WIZARD_SCALING_SLOTS_PER_WORKER"
else
  fail "the API lacks WIZARD_METRICS_TOKEN or WIZARD_SCALING_SLOTS_PER_WORKER"
fi
if awk '/kind: HorizontalPodAutoscaler/ { h = 1 } h && /name: ww-wasmwizard-worker$/ { found = 1 } END { exit !found }' "$OUT/worker-hpa-values.yaml" &&
  ! grep -q 'kind: ScaledObject' "$OUT/worker-hpa-values.yaml"; then
  ok "CPU HorizontalPodAutoscaler for the workers when KEDA is off"
else
  fail "worker CPU HPA not rendered with worker.autoscaling.hpa.enabled"
fi
# --- end scaling ---
if grep -q 'kind: ServiceMonitor' "$OUT/full-values.yaml"; then ok "ServiceMonitor rendered when enabled"; else fail "ServiceMonitor not rendered"; fi
if grep -Eq 'kind: (ScaledObject|ServiceMonitor|Secret)$' "$OUT/default-values.yaml"; then
  fail "default values render a ScaledObject, ServiceMonitor or Secret"
else
  ok "defaults render no KEDA/ServiceMonitor/Secret objects (optional CRDs off, no credentials in values)"
fi
# Alerts and dashboard: rendered when enabled, absent by default.
if grep -q 'kind: PrometheusRule' "$OUT/full-values.yaml" && grep -q 'alert: WasmWizardQueueBacklog' "$OUT/full-values.yaml"; then
  ok "PrometheusRule with the alerts rendered when enabled"
else
  fail "PrometheusRule not rendered"
fi
if grep -q '"uid": "wasmwizard"' "$OUT/full-values.yaml" && grep -q 'grafana_dashboard: "1"' "$OUT/full-values.yaml"; then
  ok "Grafana dashboard ConfigMap rendered when enabled"
else
  fail "Grafana dashboard ConfigMap not rendered"
fi
if grep -Eq 'kind: PrometheusRule|"uid": "wasmwizard"' "$OUT/default-values.yaml"; then
  fail "default values render the PrometheusRule or the dashboard"
else
  ok "defaults render no PrometheusRule and no dashboard"
fi

# ---------------------------------------------------------------------------
step "Negative tests: the chart must refuse these values"
refuse() { # description expected-message-regex helm-args...
  local what=$1 re=$2
  shift 2
  if out=$("$HELM" template ww "$CHART" --kube-version "$KUBE_VERSION" "$@" 2>&1); then
    fail "accepted: $what"
  elif grep -Eq -- "$re" <<<"$out"; then
    ok "refused: $what"
  else
    printf '%s\n' "$out" | indent
    fail "refused for another reason than expected: $what"
  fi
}
refuse "worker grace period not above the shutdown timeout" 'must be greater than worker.shutdownTimeoutSeconds' \
  --set worker.terminationGracePeriodSeconds=30 --set worker.shutdownTimeoutSeconds=30
refuse "API grace period not above its shutdown timeout" 'must be greater than api.shutdownTimeoutSeconds' \
  --set api.terminationGracePeriodSeconds=20
refuse "admin token shorter than 16 characters (schema)" 'adminToken' --set secrets.existingSecret=x --set secrets.adminToken=short
refuse "databaseUrl without redisUrl" 'secrets.redisUrl is required' --set secrets.databaseUrl=postgres://u:p@db/w
# scaling: what the autoscaling values must not allow.
refuse "KEDA without a token for /v1/admin/scaling" 'reads GET /v1/admin/scaling with a token' --set worker.autoscaling.keda.enabled=true
refuse "KEDA minReplicaCount 0 (schema: reconciler and webhook retries live in workers)" 'minReplicaCount' \
  --set worker.autoscaling.keda.minReplicaCount=0
refuse "KEDA fallback below minReplicaCount" 'fallback.replicas must be between' --set worker.autoscaling.keda.enabled=true \
  --set secrets.existingSecret=x --set worker.autoscaling.keda.minReplicaCount=3 --set worker.autoscaling.keda.fallback.replicas=2
refuse "KEDA without a fallback (schema)" 'fallback' --set worker.autoscaling.keda.fallback=null
refuse "worker shutdown timeout below the largest tier timeout, hand-backs not accepted" 'must be at least worker.largestJobTimeoutSeconds' \
  --set worker.shutdownTimeoutSeconds=20 --set worker.terminationGracePeriodSeconds=30
refuse "the old redis-list KEDA values (schema)" 'queues' --set 'worker.autoscaling.keda.queues={jobs:free}'
refuse "metrics token shorter than 16 characters (schema)" 'metricsToken' --set secrets.existingSecret=x --set secrets.metricsToken=short
refuse "misspelled value (schema: api.replicas)" 'replicas' --set api.replicas=3
refuse "sandbox memory limit below the minimum (schema)" 'sandboxMemoryMB' --set worker.sandboxMemoryMB=512
refuse "unknown log format (schema enum)" 'logFormat' --set config.logFormat=text
refuse "Kubernetes older than the chart's kubeVersion" 'kubeVersion' --kube-version 1.29.0

step "Negative test: the manifest validator must reject a broken manifest"
if [[ -f $OUT/full-values.yaml ]]; then
  sed -e '0,/targetPort: metrics/s//targetPort: metricz/' -e '0,/revisionHistoryLimit:/s//revisionHistoryLimt:/' \
    "$OUT/full-values.yaml" >"$WORK/broken.yaml"
  out=$("$K8SLINT" "$WORK/broken.yaml" 2>&1) && rc=0 || rc=$?
  if [[ $rc == 1 ]] && grep -q 'unknown field "spec.revisionHistoryLimt"' <<<"$out" && grep -q 'targetPort metricz' <<<"$out"; then
    ok "unknown field and dangling Service targetPort detected"
  else
    printf '%s\n' "$out" | indent
    fail "k8slint did not flag the broken manifest"
  fi
fi

# ---------------------------------------------------------------------------
step "helm package"
if out=$("$HELM" package "$CHART" -d "$WORK/pkg" 2>&1); then
  tgz=$(ls "$WORK"/pkg/*.tgz)
  if tar -tzf "$tgz" | grep -q '/ci/'; then fail "packaged chart contains ci/ (check .helmignore)"; else ok "$(basename "$tgz") ($(tar -tzf "$tgz" | wc -l) files, ci/ excluded)"; fi
else
  printf '%s\n' "$out" | indent
  fail "helm package"
fi

# ---------------------------------------------------------------------------
printf '\n'
[[ -n ${LINT_DEPLOY_OUT:-} ]] && echo "Rendered manifests kept in $OUT"
echo "Not checked here (needs a Docker engine or a cluster): image builds and runs, API-server admission"
echo "(defaulting, PodSecurity, quotas), CRD versions installed in a real cluster, probe behaviour."
if [[ ${#FAILURES[@]} -gt 0 ]]; then
  echo "lint-deploy: ${#FAILURES[@]} problem(s) in $((SECONDS - START))s:"
  printf '  - %s\n' "${FAILURES[@]}"
  exit 1
fi
echo "lint-deploy: all checks passed in $((SECONDS - START))s"
