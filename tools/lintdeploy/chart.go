package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// chartDir is the chart, relative to the repository.
const chartDir = "charts/wasmwizard"

// minKubeVersion is the lowest Kubernetes version a Chart.yaml accepts
// (kubeVersion: ">=1.30.0-0" gives 1.30.0), or "" if it names none.
func minKubeVersion(chartYAML []byte) string {
	m := regexp.MustCompile(`(?m)^kubeVersion: *"?>=([0-9]+\.[0-9]+\.[0-9]+)`).FindSubmatch(chartYAML)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// countKinds counts the objects of a rendered manifest: its lines that
// start with "kind:".
func countKinds(rendered []byte) int {
	return len(regexp.MustCompile(`(?m)^kind:`).FindAll(rendered, -1))
}

// A renderedCheck looks at what the chart renders for its ci/ scenarios:
// read returns a rendered scenario by name ("full-values"), "" if it was
// not rendered.
type renderedCheck struct {
	ok, fail string
	pass     func(read func(scenario string) string) bool
}

// has reports whether text contains every one of subs.
func has(text string, subs ...string) bool {
	for _, s := range subs {
		if !strings.Contains(text, s) {
			return false
		}
	}
	return true
}

// matches reports whether a line of text matches the regular expression re.
func matches(text, re string) bool { return regexp.MustCompile("(?m)" + re).MatchString(text) }

// renderedChecks are what the scenarios must and must not render: the
// scaling (KEDA on GET /v1/admin/scaling, the CPU HPA alternative), the
// ServiceMonitor, alerts and dashboard when enabled, and nothing optional
// or secret by default.
var renderedChecks = []renderedCheck{
	{
		ok: "KEDA ScaledObject reads desired_workers from the release's API Service (metrics-api)", fail: "KEDA metrics-api trigger on the API's /v1/admin/scaling not rendered",
		pass: func(read func(string) string) bool {
			return has(read("full-values"), "kind: ScaledObject", "type: metrics-api",
				`url: "http://ww-wasmwizard-api.wasmwizard.svc:80/v1/admin/scaling"`, `valueLocation: "desired_workers"`)
		},
	},
	{
		ok: "no redis-list triggers", fail: "a redis trigger is rendered (pending lists miss running jobs and created tiers)",
		pass: func(read func(string) string) bool {
			return !has(read("full-values"), "type: redis") && !has(read("existing-secret-values"), "type: redis")
		},
	},
	{
		ok: "TriggerAuthentication takes the metrics token from the release Secret", fail: "TriggerAuthentication with the metrics token not rendered",
		pass: func(read func(string) string) bool {
			return has(read("full-values"), "kind: TriggerAuthentication", "key: WIZARD_METRICS_TOKEN")
		},
	},
	{
		ok: "worker.autoscaling.keda.url and tokenSecret are honoured", fail: "worker.autoscaling.keda.url or tokenSecret ignored",
		pass: func(read func(string) string) bool {
			return has(read("existing-secret-values"), `url: "https://wasmwizard-api.example.internal/v1/admin/scaling"`, "name: keda-wasmwizard")
		},
	},
	{
		ok: "the API gets WIZARD_METRICS_TOKEN and WIZARD_SCALING_SLOTS_PER_WORKER", fail: "the API lacks WIZARD_METRICS_TOKEN or WIZARD_SCALING_SLOTS_PER_WORKER",
		pass: func(read func(string) string) bool {
			return has(read("full-values"), "name: WIZARD_METRICS_TOKEN", "name: WIZARD_SCALING_SLOTS_PER_WORKER")
		},
	},
	{
		ok: "CPU HorizontalPodAutoscaler for the workers when KEDA is off", fail: "worker CPU HPA not rendered with worker.autoscaling.hpa.enabled",
		pass: func(read func(string) string) bool {
			text := read("worker-hpa-values")
			_, after, ok := strings.Cut(text, "kind: HorizontalPodAutoscaler")
			if ok {
				_, after, _ = strings.Cut(after, "\n") // a name on a later line
			}
			return ok && matches(after, `name: ww-wasmwizard-worker$`) && !has(text, "kind: ScaledObject")
		},
	},
	{
		ok: "ServiceMonitor rendered when enabled", fail: "ServiceMonitor not rendered",
		pass: func(read func(string) string) bool { return has(read("full-values"), "kind: ServiceMonitor") },
	},
	{
		ok:   "defaults render no KEDA/ServiceMonitor/Secret objects (optional CRDs off, no credentials in values)",
		fail: "default values render a ScaledObject, ServiceMonitor or Secret",
		pass: func(read func(string) string) bool {
			return !matches(read("default-values"), `kind: (ScaledObject|ServiceMonitor|Secret)$`)
		},
	},
	{
		ok: "PrometheusRule with the alerts rendered when enabled", fail: "PrometheusRule not rendered",
		pass: func(read func(string) string) bool {
			return has(read("full-values"), "kind: PrometheusRule", "alert: WasmWizardQueueBacklog")
		},
	},
	{
		ok: "Grafana dashboard ConfigMap rendered when enabled", fail: "Grafana dashboard ConfigMap not rendered",
		pass: func(read func(string) string) bool {
			return has(read("full-values"), `"uid": "wasmwizard"`, `grafana_dashboard: "1"`)
		},
	},
	{
		ok: "defaults render no PrometheusRule and no dashboard", fail: "default values render the PrometheusRule or the dashboard",
		pass: func(read func(string) string) bool {
			return !matches(read("default-values"), `kind: PrometheusRule|"uid": "wasmwizard"`)
		},
	},
}

// checkRendered runs the renderedChecks.
func checkRendered(read func(scenario string) string) []result {
	out := make([]result, len(renderedChecks))
	for i, c := range renderedChecks {
		if c.pass(read) {
			out[i] = result{true, c.ok}
		} else {
			out[i] = result{false, c.fail}
		}
	}
	return out
}

// A refusal is a value the chart must refuse: `helm template` with args
// fails, saying something that matches re.
type refusal struct {
	what, re string
	args     []string
}

var refusals = []refusal{
	{"worker grace period not above the shutdown timeout", `must be greater than worker.shutdownTimeoutSeconds`,
		[]string{"--set", "worker.terminationGracePeriodSeconds=30", "--set", "worker.shutdownTimeoutSeconds=30"}},
	{"API grace period not above its shutdown timeout", `must be greater than api.shutdownTimeoutSeconds`,
		[]string{"--set", "api.terminationGracePeriodSeconds=20"}},
	{"admin token shorter than 16 characters (schema)", `adminToken`,
		[]string{"--set", "secrets.existingSecret=x", "--set", "secrets.adminToken=short"}},
	{"databaseUrl without redisUrl", `secrets.redisUrl is required`, []string{"--set", "secrets.databaseUrl=postgres://u:p@db/w"}},
	// scaling: what the autoscaling values must not allow.
	{"KEDA without a token for /v1/admin/scaling", `reads GET /v1/admin/scaling with a token`,
		[]string{"--set", "worker.autoscaling.keda.enabled=true"}},
	{"KEDA minReplicaCount 0 (schema: reconciler and webhook retries live in workers)", `minReplicaCount`,
		[]string{"--set", "worker.autoscaling.keda.minReplicaCount=0"}},
	{"KEDA fallback below minReplicaCount", `fallback.replicas must be between`,
		[]string{"--set", "worker.autoscaling.keda.enabled=true", "--set", "secrets.existingSecret=x",
			"--set", "worker.autoscaling.keda.minReplicaCount=3", "--set", "worker.autoscaling.keda.fallback.replicas=2"}},
	{"KEDA without a fallback (schema)", `fallback`, []string{"--set", "worker.autoscaling.keda.fallback=null"}},
	{"worker shutdown timeout below the largest tier timeout, hand-backs not accepted", `must be at least worker.largestJobTimeoutSeconds`,
		[]string{"--set", "worker.shutdownTimeoutSeconds=20", "--set", "worker.terminationGracePeriodSeconds=30"}},
	{"the old redis-list KEDA values (schema)", `queues`, []string{"--set", "worker.autoscaling.keda.queues={jobs:free}"}},
	{"metrics token shorter than 16 characters (schema)", `metricsToken`,
		[]string{"--set", "secrets.existingSecret=x", "--set", "secrets.metricsToken=short"}},
	{"misspelled value (schema: api.replicas)", `replicas`, []string{"--set", "api.replicas=3"}},
	{"sandbox memory limit below the minimum (schema)", `sandboxMemoryMB`, []string{"--set", "worker.sandboxMemoryMB=512"}},
	{"unknown log format (schema enum)", `logFormat`, []string{"--set", "config.logFormat=text"}},
	{"Kubernetes older than the chart's kubeVersion", `kubeVersion`, []string{"--kube-version", "1.29.0"}},
}

// judge says whether `helm template` refused the values as it should: err
// is how it ended, out what it said. The output is worth showing when it
// refused for another reason.
func (r refusal) judge(err error, out string) (res result, show bool) {
	switch {
	case err == nil:
		return result{false, "accepted: " + r.what}, false
	case matches(out, r.re):
		return result{true, "refused: " + r.what}, false
	default:
		return result{false, "refused for another reason than expected: " + r.what}, true
	}
}

// breakManifest makes a manifest the validator must reject: the first
// "targetPort: metrics" points at a port that does not exist and the first
// revisionHistoryLimit is misspelled.
func breakManifest(rendered []byte) []byte {
	b := bytes.Replace(rendered, []byte("targetPort: metrics"), []byte("targetPort: metricz"), 1)
	return bytes.Replace(b, []byte("revisionHistoryLimit:"), []byte("revisionHistoryLimt:"), 1)
}

// judgeBroken says whether the validator rejected the broken manifest for
// both of its faults: bad and err are what lintManifestFiles returned, out
// what it wrote.
func judgeBroken(bad bool, err error, out string) result {
	if bad && err == nil && has(out, `unknown field "spec.revisionHistoryLimt"`, "targetPort metricz") {
		return result{true, "unknown field and dangling Service targetPort detected"}
	}
	return result{false, "the manifest validator did not flag the broken manifest"}
}

// checkPackage looks into the chart package helm wrote into dir: the ci/
// scenarios must not be in it (.helmignore).
func checkPackage(dir string) (result, error) {
	tgzs, err := filepath.Glob(filepath.Join(dir, "*.tgz"))
	if err != nil {
		return result{}, err
	}
	if len(tgzs) != 1 {
		return result{}, fmt.Errorf("%d chart packages in %s, want 1", len(tgzs), dir)
	}
	f, err := os.Open(tgzs[0])
	if err != nil {
		return result{}, err
	}
	defer func() { _ = f.Close() }()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", tgzs[0], err)
	}
	tr := tar.NewReader(gz)
	files, ci := 0, false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return result{}, fmt.Errorf("%s: %w", tgzs[0], err)
		}
		files++
		ci = ci || strings.Contains(h.Name, "/ci/")
	}
	if ci {
		return result{false, "packaged chart contains ci/ (check .helmignore)"}, nil
	}
	return result{true, fmt.Sprintf("%s (%d files, ci/ excluded)", filepath.Base(tgzs[0]), files)}, nil
}
