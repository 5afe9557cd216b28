// Package scalesim checks the workers' autoscaling without a cluster, on
// real worker processes.
//
// A small controller applies the Kubernetes HorizontalPodAutoscaler's rule,
// with the chart's behavior (stabilization windows, scaling policies) and
// KEDA's fallback, to the API's GET /v1/admin/scaling, and starts and
// SIGTERMs real worker processes (the test in sim_test.go). It also draws
// the run's timeline as an SVG.
package scalesim

import (
	"fmt"
	"math"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// Policy is one HPA scaling policy (autoscaling/v2 HPAScalingPolicy).
type Policy struct {
	Type          string `yaml:"type"` // "Pods" or "Percent"
	Value         int32  `yaml:"value"`
	PeriodSeconds int32  `yaml:"periodSeconds"`
}

// Rules is one direction of the HPA's behavior (HPAScalingRules).
type Rules struct {
	StabilizationWindowSeconds *int32   `yaml:"stabilizationWindowSeconds"`
	SelectPolicy               string   `yaml:"selectPolicy"` // "Max" (default), "Min", "Disabled"
	Policies                   []Policy `yaml:"policies"`
}

// Behavior is the HPA's behavior block.
type Behavior struct {
	ScaleUp   *Rules `yaml:"scaleUp"`
	ScaleDown *Rules `yaml:"scaleDown"`
}

// KEDA is the chart's worker.autoscaling.keda block (the fields the
// controller uses).
type KEDA struct {
	MinReplicaCount int32   `yaml:"minReplicaCount"`
	MaxReplicaCount int32   `yaml:"maxReplicaCount"`
	ValueLocation   string  `yaml:"valueLocation"`
	TargetValue     float64 `yaml:"targetValue"`
	Fallback        struct {
		FailureThreshold int   `yaml:"failureThreshold"`
		Replicas         int32 `yaml:"replicas"`
	} `yaml:"fallback"`
	Behavior Behavior `yaml:"behavior"`
}

// ChartKEDA reads worker.autoscaling.keda from a chart's values.yaml.
func ChartKEDA(valuesPath string) (KEDA, error) {
	b, err := os.ReadFile(valuesPath) //nolint:gosec // a path the caller chose
	if err != nil {
		return KEDA{}, err
	}
	var v struct {
		Worker struct {
			Autoscaling struct {
				KEDA KEDA `yaml:"keda"`
			} `yaml:"autoscaling"`
		} `yaml:"worker"`
	}
	if err := yaml.Unmarshal(b, &v); err != nil {
		return KEDA{}, fmt.Errorf("parse %s: %w", valuesPath, err)
	}
	return v.Worker.Autoscaling.KEDA, nil
}

// Kubernetes defaults (pkg/apis/autoscaling/v2/defaults.go, and the
// controller's --horizontal-pod-autoscaler-tolerance).
const (
	Tolerance = 0.1
)

func defaultRules(up bool) Rules {
	if up {
		w := int32(0)
		return Rules{StabilizationWindowSeconds: &w, SelectPolicy: "Max", Policies: []Policy{
			{Type: "Percent", Value: 100, PeriodSeconds: 15}, {Type: "Pods", Value: 4, PeriodSeconds: 15}}}
	}
	w := int32(300)
	return Rules{StabilizationWindowSeconds: &w, SelectPolicy: "Max", Policies: []Policy{
		{Type: "Percent", Value: 100, PeriodSeconds: 15}}}
}

// withDefaults fills what the API server defaults in a behavior block.
func withDefaults(r *Rules, up bool) Rules {
	d := defaultRules(up)
	if r == nil {
		return d
	}
	out := *r
	if out.StabilizationWindowSeconds == nil {
		out.StabilizationWindowSeconds = d.StabilizationWindowSeconds
	}
	if out.SelectPolicy == "" {
		out.SelectPolicy = "Max"
	}
	if len(out.Policies) == 0 {
		out.Policies = d.Policies
	}
	return out
}

// Scale compresses time: every duration of the behavior (windows, policy
// periods) is divided by factor, so a run shows minutes of cluster time in
// seconds. The rule itself is unchanged.
func (b Behavior) Scale(factor float64) Behavior {
	scale := func(r Rules) *Rules {
		w := int32(math.Ceil(float64(*r.StabilizationWindowSeconds) / factor))
		out := Rules{StabilizationWindowSeconds: &w, SelectPolicy: r.SelectPolicy}
		for _, p := range r.Policies {
			p.PeriodSeconds = max(1, int32(math.Ceil(float64(p.PeriodSeconds)/factor)))
			out.Policies = append(out.Policies, p)
		}
		return &out
	}
	return Behavior{ScaleUp: scale(withDefaults(b.ScaleUp, true)), ScaleDown: scale(withDefaults(b.ScaleDown, false))}
}

type timestamped struct {
	value int32
	at    time.Time
}

// HPA computes replica counts the way the Kubernetes HPA controller does
// for one external metric with an AverageValue target (what KEDA's
// metrics-api trigger is): the raw recommendation with the tolerance, then
// the stabilization windows, then the scaling policies' rate limits and the
// replica bounds (pkg/controller/podautoscaler/horizontal.go:
// computeReplicasForMetric, stabilizeRecommendationWithBehaviors,
// convertDesiredReplicasWithBehaviorRate). Time is passed in, so it can be
// driven by a real or a synthetic clock.
type HPA struct {
	Min, Max int32
	Target   float64
	up, down Rules

	recommendations []timestamped
	upEvents        []timestamped // replicas added, when
	downEvents      []timestamped // replicas removed, when
}

// NewHPA returns a controller with the behavior's defaults filled in.
func NewHPA(minReplicas, maxReplicas int32, target float64, b Behavior) *HPA {
	return &HPA{Min: minReplicas, Max: maxReplicas, Target: target,
		up: withDefaults(b.ScaleUp, true), down: withDefaults(b.ScaleDown, false)}
}

// Raw is the metric's recommendation: ceil(value / target), or current when
// the ratio value / (target × current) is within the tolerance of 1.
func (h *HPA) Raw(current int32, value float64) int32 {
	ratio := value / (h.Target * float64(current))
	if math.Abs(1-ratio) <= Tolerance {
		return current
	}
	return int32(math.Ceil(value / h.Target))
}

// Desired is one sync: the replica count the HPA sets for the metric value,
// given the current count. Call Record with the result once it is applied.
func (h *HPA) Desired(now time.Time, current int32, value float64) int32 {
	return h.Normalize(now, current, h.Raw(current, value))
}

// Normalize applies the stabilization windows and the rate limits to a raw
// recommendation.
func (h *HPA) Normalize(now time.Time, current, raw int32) int32 {
	stabilized := h.stabilize(now, current, raw)
	return h.rateLimit(now, current, stabilized)
}

func (h *HPA) stabilize(now time.Time, current, raw int32) int32 {
	upCutoff := now.Add(-time.Duration(*h.up.StabilizationWindowSeconds) * time.Second)
	downCutoff := now.Add(-time.Duration(*h.down.StabilizationWindowSeconds) * time.Second)
	upRec, downRec := raw, raw
	oldIndex := -1
	for i, r := range h.recommendations {
		if r.at.After(upCutoff) {
			upRec = min(upRec, r.value)
		}
		if r.at.After(downCutoff) {
			downRec = max(downRec, r.value)
		}
		if r.at.Before(upCutoff) && r.at.Before(downCutoff) {
			oldIndex = i
		}
	}
	rec := current
	if rec < upRec {
		rec = upRec
	}
	if rec > downRec {
		rec = downRec
	}
	if oldIndex >= 0 {
		h.recommendations[oldIndex] = timestamped{raw, now}
	} else {
		h.recommendations = append(h.recommendations, timestamped{raw, now})
	}
	return rec
}

// changeInPeriod sums the changes of events younger than period.
func changeInPeriod(now time.Time, periodSeconds int32, events []timestamped) int32 {
	cutoff := now.Add(-time.Duration(periodSeconds) * time.Second)
	var n int32
	for _, e := range events {
		if e.at.After(cutoff) {
			n += e.value
		}
	}
	return n
}

func (h *HPA) rateLimit(now time.Time, current, desired int32) int32 {
	switch {
	case desired > current:
		limit := h.policyLimit(now, current, h.up, true)
		if limit < current {
			limit = current
		}
		allowed := min(h.Max, limit)
		return min(desired, allowed)
	case desired < current:
		limit := h.policyLimit(now, current, h.down, false)
		if limit > current {
			limit = current
		}
		allowed := max(h.Min, limit)
		return max(desired, allowed)
	}
	return desired
}

// policyLimit is the replicas the scaling policies of rules allow from
// current, up or down: each policy proposes a count (pods added or removed,
// or a percentage, rounded away from current going up and toward zero going
// down) and SelectPolicy picks the largest change (Max, the default), the
// smallest (Min), or none (Disabled).
func (h *HPA) policyLimit(now time.Time, current int32, rules Rules, up bool) int32 {
	if rules.SelectPolicy == "Disabled" {
		return current
	}
	pick, result := func(a, b int32) int32 { return max(a, b) }, int32(math.MinInt32)
	if up == (rules.SelectPolicy == "Min") {
		pick, result = func(a, b int32) int32 { return min(a, b) }, math.MaxInt32
	}
	for _, p := range rules.Policies {
		start := current - changeInPeriod(now, p.PeriodSeconds, h.upEvents) + changeInPeriod(now, p.PeriodSeconds, h.downEvents)
		var proposed int32
		switch {
		case p.Type == "Pods" && up:
			proposed = start + p.Value
		case p.Type == "Pods":
			proposed = start - p.Value
		case up:
			proposed = int32(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		default:
			proposed = int32(float64(start) * (1 - float64(p.Value)/100))
		}
		result = pick(result, proposed)
	}
	return result
}

// Record notes an applied change from prev to next replicas (the scale
// events the policies' periods count).
func (h *HPA) Record(now time.Time, prev, next int32) {
	switch {
	case next > prev:
		h.upEvents = append(h.upEvents, timestamped{next - prev, now})
	case next < prev:
		h.downEvents = append(h.downEvents, timestamped{prev - next, now})
	}
}
