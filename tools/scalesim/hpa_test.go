package scalesim_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/tools/scalesim"
)

func ptr[T any](v T) *T { return &v }

// The chart's values are what the simulation runs: min >= 1, the
// desired_workers metric, a fallback and a scale-down window.
func TestChartKEDA(t *testing.T) {
	t.Parallel()
	k, err := scalesim.ChartKEDA("../../charts/wasmwizard/values.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, k.MinReplicaCount, int32(1))
	require.Equal(t, "desired_workers", k.ValueLocation)
	require.Positive(t, k.TargetValue)
	require.Positive(t, k.Fallback.Replicas)
	require.NotNil(t, k.Behavior.ScaleDown)
	require.NotNil(t, k.Behavior.ScaleDown.StabilizationWindowSeconds)
	require.Positive(t, *k.Behavior.ScaleDown.StabilizationWindowSeconds)
}

// The raw rule: ceil(value / target), unless value / (target × current) is
// within 10 % of 1.
func TestHPARawTolerance(t *testing.T) {
	t.Parallel()
	h := scalesim.NewHPA(1, 100, 1, scalesim.Behavior{})
	require.Equal(t, int32(10), h.Raw(10, 10.9)) // ratio 1.09: within the tolerance
	require.Equal(t, int32(12), h.Raw(10, 12))   // 1.2: scale
	require.Equal(t, int32(10), h.Raw(10, 9.1))  // 0.91: within
	require.Equal(t, int32(8), h.Raw(10, 8))     // 0.8: scale
	require.Equal(t, int32(500), h.Raw(1, 500))  // a burst
	h = scalesim.NewHPA(1, 100, 4, scalesim.Behavior{})
	require.Equal(t, int32(3), h.Raw(1, 9)) // ceil(9/4)
}

// Scale-up is limited by the policies (Max of +100 % and +4 pods per
// period, by default), counting the changes made within each period.
func TestHPAScaleUpPolicies(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	h := scalesim.NewHPA(1, 50, 1, scalesim.Behavior{})
	got := h.Desired(now, 1, 40)
	require.Equal(t, int32(5), got) // max(1×2, 1+4)
	h.Record(now, 1, got)
	now = now.Add(5 * time.Second)
	require.Equal(t, int32(5), h.Desired(now, 5, 40), "the period's budget is spent")
	now = now.Add(11 * time.Second)
	got = h.Desired(now, 5, 40)
	require.Equal(t, int32(10), got) // max(5×2, 5+4)
	h.Record(now, 5, got)
	now = now.Add(15 * time.Second)
	require.Equal(t, int32(20), h.Desired(now, 10, 40))
	require.Equal(t, int32(50), scalesim.NewHPA(1, 50, 1, scalesim.Behavior{ScaleUp: &scalesim.Rules{
		Policies: []scalesim.Policy{{Type: "Pods", Value: 100, PeriodSeconds: 15}}}}).Desired(now, 10, 400), "bounded by max")
}

// Scale-down waits for the stabilization window (the highest
// recommendation within it wins), then goes at the policies' pace, never
// below the minimum.
func TestHPAScaleDownWindowAndPolicies(t *testing.T) {
	t.Parallel()
	b := scalesim.Behavior{ScaleDown: &scalesim.Rules{StabilizationWindowSeconds: ptr(int32(300)),
		Policies: []scalesim.Policy{{Type: "Pods", Value: 2, PeriodSeconds: 60}}}}
	h := scalesim.NewHPA(1, 20, 1, b)
	now := time.Unix(0, 0)
	require.Equal(t, int32(10), h.Desired(now, 10, 10))
	current := int32(10)
	var firstDown time.Time
	for s := 15; s <= 900; s += 15 {
		now = time.Unix(int64(s), 0)
		next := h.Desired(now, current, 1) // the work is gone
		if next < current {
			if firstDown.IsZero() {
				firstDown = now
			}
			require.LessOrEqual(t, current-next, int32(2))
			h.Record(now, current, next)
			current = next
		}
	}
	require.Equal(t, time.Unix(300, 0), firstDown, "no scale-down inside the window")
	require.Equal(t, int32(1), current)
}

func TestBehaviorScale(t *testing.T) {
	t.Parallel()
	b := scalesim.Behavior{ScaleDown: &scalesim.Rules{StabilizationWindowSeconds: ptr(int32(300)),
		Policies: []scalesim.Policy{{Type: "Pods", Value: 2, PeriodSeconds: 60}}}}.Scale(15)
	require.Equal(t, int32(20), *b.ScaleDown.StabilizationWindowSeconds)
	require.Equal(t, int32(4), b.ScaleDown.Policies[0].PeriodSeconds)
	require.Equal(t, int32(0), *b.ScaleUp.StabilizationWindowSeconds)
	require.Equal(t, int32(1), b.ScaleUp.Policies[0].PeriodSeconds)
}

func TestWriteSVG(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	require.NoError(t, scalesim.WriteSVG(&buf, "a <title>", []scalesim.Sample{
		{Seconds: 0, Replicas: 1}, {Seconds: 1, Replicas: 4, Queued: 90, Running: 8}, {Seconds: 2, Replicas: 1},
	}, []scalesim.Mark{{Seconds: 1, Label: "burst"}}))
	out := buf.String()
	require.True(t, strings.HasPrefix(out, "<svg "))
	require.Contains(t, out, "a &lt;title&gt;")
	require.Equal(t, 3, strings.Count(out, "<polyline"))
	require.True(t, strings.HasSuffix(out, "</svg>\n"))
}
