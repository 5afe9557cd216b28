package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// release is testdata/good.yaml as objects, for a test to break.
type release []map[string]any

func goodRelease(t *testing.T) release {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rel release
	for doc := range strings.SplitSeq(string(b), "\n---\n") {
		js, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		if err := json.Unmarshal(js, &obj); err != nil {
			t.Fatal(err)
		}
		rel = append(rel, obj)
	}
	return rel
}

// obj is the object of kind and name.
func (r release) obj(kind, name string) map[string]any {
	for _, o := range r {
		if o["kind"] == kind && o["metadata"].(map[string]any)["name"] == name {
			return o
		}
	}
	panic("no " + kind + "/" + name + " in testdata/good.yaml")
}

func (r release) yaml(t *testing.T) string {
	t.Helper()
	var docs []string
	for _, o := range r {
		b, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	return strings.Join(docs, "---\n")
}

// walk returns the value at path (map keys and list indexes) below v,
// making the maps set needs on the way.
func walk(v any, path []string, create bool) any {
	for _, p := range path {
		switch c := v.(type) {
		case map[string]any:
			next, ok := c[p]
			if !ok && create {
				next = map[string]any{}
				c[p] = next
			}
			v = next
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil {
				panic(err)
			}
			v = c[i]
		default:
			panic("cannot walk into " + p)
		}
	}
	return v
}

// set sets the value at path below v.
func set(v any, val any, path ...string) {
	parent := walk(v, path[:len(path)-1], true)
	last := path[len(path)-1]
	switch c := parent.(type) {
	case map[string]any:
		c[last] = val
	case []any:
		i, err := strconv.Atoi(last)
		if err != nil {
			panic(err)
		}
		c[i] = val
	}
}

// del deletes the map entry at path below v.
func del(v any, path ...string) {
	delete(walk(v, path[:len(path)-1], false).(map[string]any), path[len(path)-1])
}

func get(v any, path ...string) any { return walk(v, path, false) }

// lint runs the manifest checks on text and returns the problems found.
func lint(t *testing.T, text string) []string {
	t.Helper()
	decoder, err := manifestDecoder()
	if err != nil {
		t.Fatal(err)
	}
	l, err := lintManifest(decoder, "release.yaml", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return l.errs
}

func TestTheGoodReleasePasses(t *testing.T) {
	t.Parallel()
	rel := goodRelease(t)
	if errs := lint(t, rel.yaml(t)); len(errs) > 0 {
		t.Fatalf("testdata/good.yaml has problems:\n%s", strings.Join(errs, "\n"))
	}
	var out bytes.Buffer
	path := filepath.Join(t.TempDir(), "good.yaml")
	if err := os.WriteFile(path, []byte(rel.yaml(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	bad, err := lintManifestFiles(&out, path)
	if bad || err != nil {
		t.Fatalf("bad=%v err=%v\n%s", bad, err, out.String())
	}
	if !strings.Contains(out.String(), "good.yaml: 15 objects (") {
		t.Errorf("report: %s", out.String())
	}
}

// Each manifest check refuses a release that breaks it.
func TestManifestChecksRefuse(t *testing.T) {
	t.Parallel()
	const (
		api, worker = "ww-api", "ww-worker"
	)
	container := []string{"spec", "template", "spec", "containers", "0"}
	c := func(path ...string) []string { return append(append([]string{}, container...), path...) }
	podSpec := []string{"spec", "template", "spec"}
	p := func(path ...string) []string { return append(append([]string{}, podSpec...), path...) }
	extraDoc := func(doc string) func(*testing.T, release) string {
		return func(t *testing.T, r release) string { return r.yaml(t) + "---\n" + doc }
	}
	type edit func(r release)
	for _, tc := range []struct {
		name string
		edit edit
		raw  func(*testing.T, release) string // the text, for what objects cannot express
		want string
	}{
		// Strict decoding.
		{name: "invalid YAML", raw: extraDoc("apiVersion: v1\nkind: ConfigMap\nmetadata: [\n"), want: "invalid YAML"},
		{name: "duplicate field", raw: extraDoc("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: wasmwizard}\ndata: {}\ndata: {}\n"), want: `"data" already set`},
		{name: "unknown field", edit: func(r release) { set(r.obj("Deployment", api), 5, "spec", "revisionHistoryLimt") },
			want: `unknown field "spec.revisionHistoryLimt"`},
		{name: "wrong type", edit: func(r release) { set(r.obj("Deployment", api), "five", "spec", "revisionHistoryLimit") },
			want: "cannot unmarshal string"},
		{name: "unknown kind", raw: extraDoc("apiVersion: v1\nkind: Gadget\nmetadata: {name: x, namespace: wasmwizard}\n"), want: `no kind "Gadget" is registered`},
		// The release as a whole.
		{name: "duplicate object", raw: func(t *testing.T, r release) string {
			return r.yaml(t) + "---\n" + release{r.obj("ConfigMap", "ww-config")}.yaml(t)
		}, want: "duplicate of"},
		{name: "unexpected kind", raw: extraDoc("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db, namespace: wasmwizard}\n"),
			want: "kind StatefulSet is not expected in this chart"},
		// Metadata.
		{name: "no name", edit: func(r release) { set(r.obj("ConfigMap", "ww-config"), "", "metadata", "name") }, want: "metadata.name is empty"},
		{name: "invalid name", edit: func(r release) { set(r.obj("ConfigMap", "ww-config"), "Bad_Name", "metadata", "name") }, want: `metadata.name "Bad_Name"`},
		{name: "service name not a DNS label", edit: func(r release) { set(r.obj("Service", api), "1api", "metadata", "name") }, want: `metadata.name "1api"`},
		{name: "no namespace", edit: func(r release) { del(r.obj("ConfigMap", "ww-config"), "metadata", "namespace") }, want: "metadata.namespace is not set"},
		{name: "invalid label", edit: func(r release) { set(r.obj("ConfigMap", "ww-config"), "x", "metadata", "labels", "bad label") }, want: "metadata.labels"},
		{name: "invalid annotation", edit: func(r release) { set(r.obj("ConfigMap", "ww-config"), "x", "metadata", "annotations", "bad key!") },
			want: "metadata.annotations"},
		{name: "no chart label", edit: func(r release) { del(r.obj("ConfigMap", "ww-config"), "metadata", "labels", "helm.sh/chart") },
			want: "missing recommended label helm.sh/chart"},
		// Deployments.
		{name: "empty selector", edit: func(r release) { set(r.obj("Deployment", worker), map[string]any{}, "spec", "selector") }, want: "spec.selector is empty"},
		{name: "invalid selector", edit: func(r release) {
			set(r.obj("Deployment", worker), []any{map[string]any{"key": "a", "operator": "Near"}}, "spec", "selector", "matchExpressions")
		}, want: "spec.selector: "},
		{name: "selector misses the pods", edit: func(r release) {
			set(r.obj("Deployment", worker), "other", "spec", "template", "metadata", "labels", "app.kubernetes.io/component")
		}, want: "spec.selector does not match the pod template labels"},
		{name: "pods selected twice", edit: func(r release) {
			set(r.obj("Deployment", worker), map[string]any{"app.kubernetes.io/instance": "ww"}, "spec", "selector", "matchLabels")
		}, want: "pods are also selected by Deployment/ww-worker"},
		// References.
		{name: "pre-install hook uses a release object", edit: func(r release) {
			set(r.obj("Job", "ww-migrate"), "ww", c("env", "0", "valueFrom", "secretKeyRef", "name")...)
		}, want: "pre-install hook uses Secret/ww"},
		{name: "missing secret key", edit: func(r release) {
			set(r.obj("Deployment", api), "NOPE", c("env", "1", "valueFrom", "secretKeyRef", "key")...)
		},
			want: `Secret ww has no key "NOPE"`},
		{name: "missing config map key", edit: func(r release) {
			set(r.obj("Deployment", worker), "NOPE", c("env", "3", "valueFrom", "configMapKeyRef", "key")...)
		}, want: `ConfigMap ww-config has no key "NOPE"`},
		{name: "missing trigger authentication key", edit: func(r release) {
			set(r.obj("TriggerAuthentication", "ww-scaling"), "NOPE", "spec", "secretTargetRef", "0", "key")
		}, want: `Secret ww has no key "NOPE"`},
		// Pods.
		{name: "host network", edit: func(r release) { set(r.obj("Deployment", api), true, p("hostNetwork")...) }, want: "pod uses host namespaces"},
		{name: "service account token", edit: func(r release) { set(r.obj("Deployment", api), true, p("automountServiceAccountToken")...) },
			want: "automountServiceAccountToken should be false"},
		{name: "unbounded emptyDir", edit: func(r release) { del(r.obj("Deployment", api), p("volumes", "0", "emptyDir", "sizeLimit")...) },
			want: `emptyDir volume "tmp" has no sizeLimit`},
		{name: "no containers", edit: func(r release) { set(r.obj("Job", "ww-migrate"), []any{}, p("containers")...) }, want: "pod has no containers"},
		{name: "no image", edit: func(r release) { set(r.obj("Deployment", api), "", c("image")...) }, want: "image is empty"},
		{name: "untagged image", edit: func(r release) { set(r.obj("Deployment", api), "ghcr.io/wasmwizard/wasmwizard-api", c("image")...) }, want: "has no tag"},
		{name: "registry port, no tag", edit: func(r release) { set(r.obj("Deployment", api), "localhost:5000/wasmwizard-api", c("image")...) }, want: "has no tag"},
		{name: "latest", edit: func(r release) {
			set(r.obj("Deployment", api), "ghcr.io/wasmwizard/wasmwizard-api:latest", c("image")...)
		}, want: "uses :latest"},
		{name: "invalid port name", edit: func(r release) { set(r.obj("Deployment", api), "HTTP_PORT", c("ports", "0", "name")...) }, want: `port name "HTTP_PORT"`},
		{name: "no liveness probe", edit: func(r release) { del(r.obj("Deployment", api), c("livenessProbe")...) }, want: "no liveness probe"},
		{name: "no readiness probe", edit: func(r release) { del(r.obj("Deployment", api), c("readinessProbe")...) }, want: "no readiness probe"},
		{name: "probe on an unknown port", edit: func(r release) { set(r.obj("Deployment", api), "web", c("readinessProbe", "httpGet", "port")...) },
			want: `readiness probe uses unknown port name "web"`},
		{name: "no cpu request", edit: func(r release) { del(r.obj("Deployment", api), c("resources", "requests", "cpu")...) }, want: "no cpu request"},
		{name: "no memory request", edit: func(r release) { del(r.obj("Deployment", api), c("resources", "requests", "memory")...) }, want: "no memory request"},
		{name: "no memory limit", edit: func(r release) { del(r.obj("Deployment", api), c("resources", "limits", "memory")...) }, want: "no memory limit"},
		{name: "request over the limit", edit: func(r release) { set(r.obj("Deployment", api), "1Gi", c("resources", "requests", "memory")...) },
			want: "memory request 1Gi exceeds limit 512Mi"},
		{name: "may run as root", edit: func(r release) { del(r.obj("Deployment", worker), p("securityContext", "runAsNonRoot")...) }, want: "runAsNonRoot is not true"},
		{name: "root user", edit: func(r release) { set(r.obj("Deployment", api), 0, c("securityContext", "runAsUser")...) }, want: "runAsUser is 0"},
		{name: "writable root", edit: func(r release) {
			set(r.obj("Deployment", api), false, c("securityContext", "readOnlyRootFilesystem")...)
		},
			want: "readOnlyRootFilesystem is not true"},
		{name: "privilege escalation", edit: func(r release) {
			set(r.obj("Deployment", api), true, c("securityContext", "allowPrivilegeEscalation")...)
		},
			want: "allowPrivilegeEscalation is not false"},
		{name: "privileged", edit: func(r release) { set(r.obj("Deployment", api), true, c("securityContext", "privileged")...) }, want: `"api": privileged`},
		{name: "capabilities kept", edit: func(r release) {
			set(r.obj("Deployment", api), []any{"NET_RAW"}, c("securityContext", "capabilities", "drop")...)
		},
			want: "capabilities do not drop ALL"},
		{name: "capabilities added", edit: func(r release) {
			set(r.obj("Deployment", api), []any{"NET_ADMIN"}, c("securityContext", "capabilities", "add")...)
		},
			want: "adds capabilities"},
		{name: "no seccomp profile", edit: func(r release) { del(r.obj("Deployment", api), p("securityContext", "seccompProfile")...) },
			want: "seccompProfile is not RuntimeDefault"},
		{name: "unconfined", edit: func(r release) {
			set(r.obj("Deployment", api), "Unconfined", p("securityContext", "seccompProfile", "type")...)
		},
			want: "seccompProfile is not RuntimeDefault"},
		{name: "mount without a volume", edit: func(r release) { set(r.obj("Deployment", api), "cache", c("volumeMounts", "0", "name")...) },
			want: `volumeMount "cache" has no volume`},
		{name: "mounted twice", edit: func(r release) {
			m := get(r.obj("Deployment", api), c("volumeMounts")...).([]any)
			set(r.obj("Deployment", api), append(m, m[0]), c("volumeMounts")...)
		}, want: "mountPath /tmp mounted twice"},
		{name: "invalid env name", edit: func(r release) { set(r.obj("Deployment", api), "1BAD", c("env", "0", "name")...) }, want: `env "1BAD"`},
		{name: "env set twice", edit: func(r release) {
			e := get(r.obj("Deployment", api), c("env")...).([]any)
			set(r.obj("Deployment", api), append(e, e[0]), c("env")...)
		}, want: "env WIZARD_SHUTDOWN_TIMEOUT set twice"},
		{name: "sandbox memory not a number", edit: func(r release) { set(r.obj("Deployment", worker), "lots", c("env", "1", "value")...) },
			want: "are not integers"},
		{name: "memory limit below the sandboxes'", edit: func(r release) { set(r.obj("Deployment", worker), "768Mi", c("resources", "limits", "memory")...) },
			want: "memory limit 768Mi is below WIZARD_WORKER_CONCURRENCY (2) x WIZARD_SANDBOX_MEMORY_MB (512 MiB)"},
		{name: "unreadable shutdown timeout", edit: func(r release) { set(r.obj("Deployment", worker), "soon", c("env", "2", "value")...) },
			want: `WIZARD_WORKER_SHUTDOWN_TIMEOUT "soon"`},
		{name: "worker grace not above its shutdown timeout", edit: func(r release) { set(r.obj("Deployment", worker), 60, p("terminationGracePeriodSeconds")...) },
			want: "terminationGracePeriodSeconds 60 (minus preStop sleep 0s) is not greater than WIZARD_WORKER_SHUTDOWN_TIMEOUT 60s"},
		{name: "API grace eaten by the preStop sleep", edit: func(r release) { set(r.obj("Deployment", api), 25, p("terminationGracePeriodSeconds")...) },
			want: "terminationGracePeriodSeconds 25 (minus preStop sleep 5s) is not greater than WIZARD_SHUTDOWN_TIMEOUT 20s"},
		// Services.
		{name: "service without selector", edit: func(r release) { del(r.obj("Service", api), "spec", "selector") }, want: "service has no selector"},
		{name: "service selecting nothing", edit: func(r release) {
			set(r.obj("Service", api), "nothing", "spec", "selector", "app.kubernetes.io/component")
		},
			want: "matches no workload in the release"},
		{name: "invalid service port name", edit: func(r release) { set(r.obj("Service", api), "HTTP_X", "spec", "ports", "0", "name") }, want: `port name "HTTP_X"`},
		{name: "dangling named targetPort", edit: func(r release) { set(r.obj("Service", worker), "metricz", "spec", "ports", "0", "targetPort") },
			want: `targetPort metricz of port "metrics" is not a container port`},
		{name: "dangling numbered targetPort", edit: func(r release) { set(r.obj("Service", worker), 9999, "spec", "ports", "0", "targetPort") },
			want: `targetPort 9999 of port "metrics" is not a container port`},
		// Autoscalers.
		{name: "scales a StatefulSet", edit: func(r release) {
			set(r.obj("HorizontalPodAutoscaler", api), "StatefulSet", "spec", "scaleTargetRef", "kind")
		},
			want: `scale target kind "StatefulSet" is not Deployment`},
		{name: "scales what is not there", edit: func(r release) { set(r.obj("ScaledObject", worker), "ww-gone", "spec", "scaleTargetRef", "name") },
			want: "scale target Deployment/ww-gone is not in the release"},
		{name: "scaled Deployment with replicas", edit: func(r release) { set(r.obj("Deployment", api), 3, "spec", "replicas") },
			want: "scale target Deployment/ww-api sets spec.replicas"},
		{name: "scaled twice", edit: func(r release) { set(r.obj("HorizontalPodAutoscaler", api), worker, "spec", "scaleTargetRef", "name") },
			want: "Deployment/ww-worker is also scaled by"},
		{name: "HPA min above max", edit: func(r release) { set(r.obj("HorizontalPodAutoscaler", api), 20, "spec", "minReplicas") }, want: "minReplicas > maxReplicas"},
		{name: "HPA without metrics", edit: func(r release) { set(r.obj("HorizontalPodAutoscaler", api), []any{}, "spec", "metrics") }, want: "no metrics"},
		{name: "utilization of what is not requested", edit: func(r release) {
			set(r.obj("HorizontalPodAutoscaler", api), "ephemeral-storage", "spec", "metrics", "0", "resource", "name")
		}, want: `scales on ephemeral-storage utilization but container "api" has no ephemeral-storage request`},
		// Disruption budgets.
		{name: "PDB with both bounds", edit: func(r release) { set(r.obj("PodDisruptionBudget", api), 1, "spec", "maxUnavailable") },
			want: "set exactly one of minAvailable and maxUnavailable"},
		{name: "PDB with an empty selector", edit: func(r release) { set(r.obj("PodDisruptionBudget", api), map[string]any{}, "spec", "selector") },
			want: "invalid or empty selector"},
		{name: "PDB selecting nothing", edit: func(r release) {
			set(r.obj("PodDisruptionBudget", api), "nothing", "spec", "selector", "matchLabels", "app.kubernetes.io/component")
		}, want: "selector matches no workload in the release"},
		// KEDA.
		{name: "no scale target", edit: func(r release) { del(r.obj("ScaledObject", worker), "spec", "scaleTargetRef") }, want: "no scaleTargetRef"},
		{name: "KEDA min above max", edit: func(r release) { set(r.obj("ScaledObject", worker), 30, "spec", "minReplicaCount") },
			want: "minReplicaCount > maxReplicaCount"},
		{name: "no triggers", edit: func(r release) { set(r.obj("ScaledObject", worker), []any{}, "spec", "triggers") }, want: "no triggers"},
		{name: "trigger name twice", edit: func(r release) {
			tr := get(r.obj("ScaledObject", worker), "spec", "triggers").([]any)
			set(r.obj("ScaledObject", worker), append(tr, tr[0]), "spec", "triggers")
		}, want: `trigger name "scaling" used twice`},
		{name: "redis trigger without a list", edit: func(r release) {
			tr := get(r.obj("ScaledObject", worker), "spec", "triggers").([]any)
			set(r.obj("ScaledObject", worker), append(tr, map[string]any{"type": "redis", "name": "q", "metadata": map[string]any{"address": "redis:6379"}}),
				"spec", "triggers")
		}, want: `redis trigger "q" has no listName`},
		{name: "redis trigger without an address", edit: func(r release) {
			tr := get(r.obj("ScaledObject", worker), "spec", "triggers").([]any)
			set(r.obj("ScaledObject", worker), append(tr, map[string]any{"type": "redis", "name": "q", "metadata": map[string]any{"listName": "jobs"}}),
				"spec", "triggers")
		}, want: `redis trigger "q" has no address and no authenticationRef`},
		{name: "metrics-api without url", edit: func(r release) { del(r.obj("ScaledObject", worker), "spec", "triggers", "0", "metadata", "url") },
			want: `metrics-api trigger "scaling" has no url`},
		{name: "metrics-api without valueLocation", edit: func(r release) {
			del(r.obj("ScaledObject", worker), "spec", "triggers", "0", "metadata", "valueLocation")
		}, want: `metrics-api trigger "scaling" has no valueLocation`},
		{name: "metrics-api without targetValue", edit: func(r release) {
			del(r.obj("ScaledObject", worker), "spec", "triggers", "0", "metadata", "targetValue")
		}, want: `metrics-api trigger "scaling" has no targetValue`},
		{name: "target value zero", edit: func(r release) {
			set(r.obj("ScaledObject", worker), "0", "spec", "triggers", "0", "metadata", "targetValue")
		},
			want: `targetValue "0" is not a positive number`},
		{name: "bearer without credentials", edit: func(r release) { del(r.obj("ScaledObject", worker), "spec", "triggers", "0", "authenticationRef") },
			want: "uses authMode bearer without an authenticationRef"},
		{name: "fallback with a Value metric", edit: func(r release) { set(r.obj("ScaledObject", worker), "Value", "spec", "triggers", "0", "metricType") },
			want: "a fallback needs metricType AverageValue"},
		{name: "scales to zero", edit: func(r release) { set(r.obj("ScaledObject", worker), 0, "spec", "minReplicaCount") },
			want: "minReplicaCount must be at least 1"},
		{name: "no fallback", edit: func(r release) { del(r.obj("ScaledObject", worker), "spec", "fallback") }, want: "no fallback"},
		{name: "fallback below the minimum", edit: func(r release) { set(r.obj("ScaledObject", worker), 3, "spec", "minReplicaCount") },
			want: "fallback.replicas below minReplicaCount"},
		{name: "no stabilization window", edit: func(r release) { del(r.obj("ScaledObject", worker), "spec", "advanced") },
			want: "no scale-down stabilization window"},
		// Alert rules.
		{name: "no rule groups", edit: func(r release) { set(r.obj("PrometheusRule", "ww"), []any{}, "spec", "groups") }, want: "spec.groups is empty"},
		{name: "empty group", edit: func(r release) { set(r.obj("PrometheusRule", "ww"), []any{}, "spec", "groups", "0", "rules") },
			want: "group wasmwizard has no rules"},
		{name: "rule without expr", edit: func(r release) { set(r.obj("PrometheusRule", "ww"), "", "spec", "groups", "0", "rules", "0", "expr") },
			want: "group wasmwizard: a rule has no expr"},
		{name: "alert without runbook", edit: func(r release) {
			del(r.obj("PrometheusRule", "ww"), "spec", "groups", "0", "rules", "1", "annotations")
		},
			want: "alert WasmWizardQueueBacklog needs a severity label and a runbook annotation"},
		{name: "alert without severity", edit: func(r release) { del(r.obj("PrometheusRule", "ww"), "spec", "groups", "0", "rules", "1", "labels") },
			want: "alert WasmWizardQueueBacklog needs a severity label and a runbook annotation"},
		{name: "no alerts", edit: func(r release) {
			rules := get(r.obj("PrometheusRule", "ww"), "spec", "groups", "0", "rules").([]any)
			set(r.obj("PrometheusRule", "ww"), rules[:1], "spec", "groups", "0", "rules")
		}, want: "no alerts"},
		// Service monitors.
		{name: "monitor with an empty selector", edit: func(r release) { set(r.obj("ServiceMonitor", worker), map[string]any{}, "spec", "selector") },
			want: "invalid or empty selector"},
		{name: "monitor selecting nothing", edit: func(r release) {
			set(r.obj("ServiceMonitor", worker), "nothing", "spec", "selector", "matchLabels", "app.kubernetes.io/component")
		}, want: "selector matches no Service in the release"},
		{name: "monitor on an unknown port", edit: func(r release) { set(r.obj("ServiceMonitor", worker), "http", "spec", "endpoints", "0", "port") },
			want: `endpoint port "http" is not a port name of Service/ww-worker`},
	} {
		rel := goodRelease(t)
		var text string
		if tc.raw != nil {
			text = tc.raw(t, rel)
		} else {
			tc.edit(rel)
			text = rel.yaml(t)
		}
		errs := lint(t, text)
		found := false
		for _, e := range errs {
			found = found || strings.Contains(e, tc.want)
		}
		if !found {
			t.Errorf("%s: no problem says %q; problems:\n  %s", tc.name, tc.want, strings.Join(errs, "\n  "))
		}
	}
}

// A file that cannot be split into documents stops the check.
func TestUnreadableManifest(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if _, err := lintManifestFiles(&out, filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a missing file was checked")
	}
}
