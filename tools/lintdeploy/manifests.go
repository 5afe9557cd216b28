package main

// The manifest checks: every document of a rendered chart is decoded
// strictly into the official Go API types (unknown or duplicate fields, wrong
// types and unknown apiVersion/kind are errors), and the objects are
// cross-checked (selectors, port names, references, autoscaler targets,
// security settings, hook ordering).

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

// manifestDecoder decodes strictly into the Kubernetes API types, KEDA's and
// prometheus-operator's.
func manifestDecoder() (runtime.Decoder, error) {
	sch := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, kedav1alpha1.AddToScheme, monitoringv1.AddToScheme} {
		if err := add(sch); err != nil {
			return nil, err
		}
	}
	return serializer.NewCodecFactory(sch, serializer.EnableStrict).UniversalDeserializer(), nil
}

// lintManifest checks the rendered manifests of one file, data, named fn.
// The error is for a file that cannot be split into documents; problems
// of the objects are in the linter's errs.
func lintManifest(decoder runtime.Decoder, fn string, data io.Reader) (*linter, error) {
	l := &linter{external: map[string]bool{}}
	if err := l.load(fn, data, decoder); err != nil {
		return nil, err
	}
	l.check()
	return l, nil
}

// lintManifestFiles checks each file and writes what it found to w: its
// objects, what they expect to exist in the cluster, and its problems. It
// reports whether any file has problems; the error is for a file it could
// not read (the files after it are not checked).
func lintManifestFiles(w io.Writer, files ...string) (bad bool, err error) {
	decoder, err := manifestDecoder()
	if err != nil {
		return false, err
	}
	for _, fn := range files {
		f, err := os.Open(fn) //nolint:gosec // rendered manifests of this run
		if err != nil {
			return bad, err
		}
		l, err := lintManifest(decoder, fn, f)
		_ = f.Close()
		if err != nil {
			return bad, fmt.Errorf("%s: %w", fn, err)
		}
		l.report(w, fn)
		if len(l.errs) > 0 {
			bad = true
		}
	}
	return bad, nil
}

// report writes what the linter found in file fn.
func (l *linter) report(w io.Writer, fn string) {
	counts := map[string]int{}
	for _, o := range l.objs {
		counts[o.kind]++
	}
	var kinds []string
	for k, n := range counts {
		kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "%s: %d objects (%s)\n", fn, len(l.objs), strings.Join(kinds, ", "))
	if len(l.external) > 0 {
		var ext []string
		for k := range l.external {
			ext = append(ext, k)
		}
		sort.Strings(ext)
		fmt.Fprintf(w, "  expects to exist in the cluster: %s\n", strings.Join(ext, ", "))
	}
	for _, e := range l.errs {
		fmt.Fprintf(w, "  ERROR: %s\n", e)
	}
}

func (l *linter) load(fn string, data io.Reader, decoder runtime.Decoder) error {
	r := utilyaml.NewYAMLReader(bufio.NewReader(data))
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
			l.errorf(o, "kind %s is not expected in this chart (add checks for it to tools/lintdeploy)", o.kind)
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
