package main

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMinKubeVersion(t *testing.T) {
	t.Parallel()
	if got := minKubeVersion([]byte(repoFile(t, chartDir+"/Chart.yaml"))); got == "" {
		t.Error("the chart names no minimum Kubernetes version")
	}
	for in, want := range map[string]string{
		"name: x\nkubeVersion: \">=1.30.0-0\"\n": "1.30.0",
		"kubeVersion: >=1.31.2\n":                "1.31.2",
		"kubeVersion: \"~1.30\"\n":               "",
		"name: x\n":                              "",
	} {
		if got := minKubeVersion([]byte(in)); got != want {
			t.Errorf("minKubeVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCountKinds(t *testing.T) {
	t.Parallel()
	if n := countKinds([]byte("---\nkind: A\nspec:\n  kind: B\n---\nkind: C\n")); n != 2 {
		t.Errorf("countKinds = %d, want 2", n)
	}
}

// goodRenders are scenarios as the chart renders them, cut to what the
// rendered checks read.
func goodRenders() map[string]string {
	return map[string]string{
		"full-values": `kind: ScaledObject
  triggers:
    - type: metrics-api
      metadata:
        url: "http://ww-wasmwizard-api.wasmwizard.svc:80/v1/admin/scaling"
        valueLocation: "desired_workers"
kind: TriggerAuthentication
      key: WIZARD_METRICS_TOKEN
            - name: WIZARD_METRICS_TOKEN
            - name: WIZARD_SCALING_SLOTS_PER_WORKER
kind: ServiceMonitor
kind: PrometheusRule
        - alert: WasmWizardQueueBacklog
    grafana_dashboard: "1"
      "uid": "wasmwizard",
`,
		"existing-secret-values": `        url: "https://wasmwizard-api.example.internal/v1/admin/scaling"
      name: keda-wasmwizard
`,
		"worker-hpa-values": `kind: HorizontalPodAutoscaler
metadata:
  name: ww-wasmwizard-worker
`,
		"default-values": "kind: Deployment\nkind: ConfigMap\n",
	}
}

func TestRenderedChecksPass(t *testing.T) {
	t.Parallel()
	renders := goodRenders()
	if f := failures(checkRendered(func(s string) string { return renders[s] })); len(f) > 0 {
		t.Errorf("%q", f)
	}
}

// Each rendered check refuses a scenario that breaks it.
func TestRenderedChecksRefuse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		scenario string
		old, new string // "" old: append new
		want     string // the failing check's message
	}{
		{"full-values", "type: metrics-api", "type: cpu", "KEDA metrics-api trigger on the API's /v1/admin/scaling not rendered"},
		{"full-values", "wasmwizard.svc:80", "wasmwizard.svc:8080", "KEDA metrics-api trigger on the API's /v1/admin/scaling not rendered"},
		{"full-values", `valueLocation: "desired_workers"`, `valueLocation: "queued"`, "KEDA metrics-api trigger on the API's /v1/admin/scaling not rendered"},
		{"full-values", "", "    - type: redis\n", "a redis trigger is rendered"},
		{"existing-secret-values", "", "    - type: redis\n", "a redis trigger is rendered"},
		{"full-values", "kind: TriggerAuthentication", "kind: Secret", "TriggerAuthentication with the metrics token not rendered"},
		{"full-values", "key: WIZARD_METRICS_TOKEN", "key: token", "TriggerAuthentication with the metrics token not rendered"},
		{"existing-secret-values", "example.internal", "example.com", "worker.autoscaling.keda.url or tokenSecret ignored"},
		{"existing-secret-values", "name: keda-wasmwizard", "name: ww-wasmwizard", "worker.autoscaling.keda.url or tokenSecret ignored"},
		{"full-values", "- name: WIZARD_SCALING_SLOTS_PER_WORKER", "", "the API lacks WIZARD_METRICS_TOKEN or WIZARD_SCALING_SLOTS_PER_WORKER"},
		{"full-values", "- name: WIZARD_METRICS_TOKEN", "", "the API lacks WIZARD_METRICS_TOKEN or WIZARD_SCALING_SLOTS_PER_WORKER"},
		{"worker-hpa-values", "kind: HorizontalPodAutoscaler", "kind: Deployment", "worker CPU HPA not rendered"},
		{"worker-hpa-values", "name: ww-wasmwizard-worker", "name: ww-wasmwizard-api", "worker CPU HPA not rendered"},
		{"worker-hpa-values", "", "kind: ScaledObject\n", "worker CPU HPA not rendered"},
		{"full-values", "kind: ServiceMonitor", "kind: Service", "ServiceMonitor not rendered"},
		{"default-values", "", "kind: ScaledObject\n", "default values render a ScaledObject, ServiceMonitor or Secret"},
		{"default-values", "", "kind: ServiceMonitor\n", "default values render a ScaledObject, ServiceMonitor or Secret"},
		{"default-values", "", "kind: Secret\n", "default values render a ScaledObject, ServiceMonitor or Secret"},
		{"full-values", "kind: PrometheusRule", "kind: ConfigMap", "PrometheusRule not rendered"},
		{"full-values", "alert: WasmWizardQueueBacklog", "alert: Other", "PrometheusRule not rendered"},
		{"full-values", `grafana_dashboard: "1"`, "", "Grafana dashboard ConfigMap not rendered"},
		{"default-values", "", "kind: PrometheusRule\n", "default values render the PrometheusRule or the dashboard"},
		{"default-values", "", `  "uid": "wasmwizard",` + "\n", "default values render the PrometheusRule or the dashboard"},
	} {
		renders := goodRenders()
		if tc.old == "" {
			renders[tc.scenario] += tc.new
		} else if !strings.Contains(renders[tc.scenario], tc.old) {
			t.Fatalf("%s has no %q", tc.scenario, tc.old)
		} else {
			renders[tc.scenario] = strings.Replace(renders[tc.scenario], tc.old, tc.new, 1)
		}
		f := failures(checkRendered(func(s string) string { return renders[s] }))
		if len(f) != 1 || !strings.HasPrefix(f[0], tc.want) {
			t.Errorf("%s: %q → %q: failures %q, want just %q", tc.scenario, tc.old, tc.new, f, tc.want)
		}
	}
	// Scenarios that were not rendered fail what they should show.
	f := failures(checkRendered(func(string) string { return "" }))
	if len(f) != 8 {
		t.Errorf("with nothing rendered: %q", f)
	}
}

func TestRefusalJudge(t *testing.T) {
	t.Parallel()
	r := refusal{what: "a short token", re: `adminToken`}
	if res, _ := r.judge(nil, "kind: Deployment\n"); res.ok || res.msg != "accepted: a short token" {
		t.Errorf("accepted values: %+v", res)
	}
	failed := errors.New("exit status 1")
	if res, show := r.judge(failed, "Error: values don't meet the specifications of the schema(s):\n- secrets.adminToken: String length must be greater than or equal to 16\n"); !res.ok || show {
		t.Errorf("refused as expected: %+v", res)
	}
	if res, show := r.judge(failed, "Error: template: wasmwizard/templates/x.yaml: nil pointer\n"); res.ok || !show ||
		res.msg != "refused for another reason than expected: a short token" {
		t.Errorf("refused for another reason: %+v", res)
	}
	for _, ref := range refusals {
		if ref.what == "" || ref.re == "" || len(ref.args) == 0 {
			t.Errorf("incomplete refusal %+v", ref)
		}
	}
}

// The tampered manifest is rejected for both of its faults; a validator
// that misses either, or a manifest it cannot tamper with, fails the check.
func TestBrokenManifest(t *testing.T) {
	t.Parallel()
	good := goodRelease(t).yaml(t)
	judgeFile := func(text string) result {
		path := filepath.Join(t.TempDir(), "broken.yaml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		bad, err := lintManifestFiles(&out, path)
		return judgeBroken(bad, err, out.String())
	}
	if res := judgeFile(string(breakManifest([]byte(good)))); !res.ok {
		t.Errorf("the broken manifest passed: %+v", res)
	}
	if res := judgeFile(good); res.ok {
		t.Error("an intact manifest counts as broken")
	}
	onlyPort := strings.Replace(good, "targetPort: metrics", "targetPort: metricz", 1)
	if res := judgeFile(onlyPort); res.ok {
		t.Error("a manifest without the unknown field counts as broken")
	}
	if res := judgeBroken(true, errors.New("unreadable"), `unknown field "spec.revisionHistoryLimt" targetPort metricz`); res.ok {
		t.Error("a validator that could not read the file counts")
	}
}

func writeTgz(t *testing.T, dir string, names ...string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "wasmwizard-0.1.0.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []interface{ Close() error }{tw, gz, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheckPackage(t *testing.T) {
	t.Parallel()
	good := t.TempDir()
	writeTgz(t, good, "wasmwizard/Chart.yaml", "wasmwizard/values.yaml", "wasmwizard/templates/api.yaml")
	res, err := checkPackage(good)
	if err != nil || !res.ok || res.msg != "wasmwizard-0.1.0.tgz (3 files, ci/ excluded)" {
		t.Errorf("%+v %v", res, err)
	}
	withCI := t.TempDir()
	writeTgz(t, withCI, "wasmwizard/Chart.yaml", "wasmwizard/ci/full-values.yaml")
	if res, err := checkPackage(withCI); err != nil || res.ok || res.msg != "packaged chart contains ci/ (check .helmignore)" {
		t.Errorf("%+v %v", res, err)
	}
	if _, err := checkPackage(t.TempDir()); err == nil {
		t.Error("no package, no error")
	}
	notGzip := t.TempDir()
	if err := os.WriteFile(filepath.Join(notGzip, "x.tgz"), []byte("plain"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := checkPackage(notGzip); err == nil {
		t.Error("a broken package, no error")
	}
}
