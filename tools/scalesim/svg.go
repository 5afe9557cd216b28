package scalesim

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// Sample is the state at one controller sync.
type Sample struct {
	Seconds  float64 // since the start of the run
	Replicas int32   // worker replicas the controller set
	Desired  int64   // desired_workers the API answered
	Queued   int64
	Running  int64
}

// Mark is a labelled moment on the timeline.
type Mark struct {
	Seconds float64
	Label   string
}

// WriteSVG draws the timeline: queued jobs (left axis), running jobs and
// worker replicas (right axis) over time, with vertical marks.
func WriteSVG(w io.Writer, title string, samples []Sample, marks []Mark) error {
	const (
		width, height          = 900.0, 420.0
		left, right, top, base = 70.0, 70.0, 50.0, 60.0
	)
	plotW, plotH := width-left-right, height-top-base
	var tMax float64
	var jobsMax, repMax int64 = 1, 1
	for _, s := range samples {
		tMax = math.Max(tMax, s.Seconds)
		jobsMax = max(jobsMax, s.Queued)
		repMax = max(repMax, int64(s.Replicas), s.Running)
	}
	tMax = math.Max(tMax, 1)
	jobsTop := niceCeil(float64(jobsMax))
	repTop := float64(repMax + 1)
	x := func(t float64) float64 { return left + t/tMax*plotW }
	yJobs := func(v float64) float64 { return top + plotH - v/jobsTop*plotH }
	yRep := func(v float64) float64 { return top + plotH - v/repTop*plotH }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", left, escape(title))
	// Grid and axes.
	for i := 0; i <= 4; i++ {
		v := jobsTop * float64(i) / 4
		y := yJobs(v)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, left+plotW, y)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%.0f</text>`+"\n", left-6, y+4, v)
	}
	repStep := max(1, int(niceCeil(repTop/10)))
	for r := 0; r <= int(repTop); r += repStep {
		y := yRep(float64(r))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#c0392b">%d</text>`+"\n", left+plotW+6, y+4, r)
	}
	step := niceCeil(tMax / 8)
	for t := 0.0; t <= tMax+1e-9; t += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%.0f</text>`+"\n", x(t), top+plotH+18, t)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">seconds</text>`+"\n", left+plotW/2, top+plotH+36)
	fmt.Fprintf(&b, `<text x="18" y="%.1f" transform="rotate(-90 18 %.1f)" text-anchor="middle" fill="#2980b9">queued jobs</text>`+"\n", top+plotH/2, top+plotH/2)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" transform="rotate(90 %.1f %.1f)" text-anchor="middle" fill="#c0392b">worker replicas, running jobs</text>`+"\n",
		width-18, top+plotH/2, width-18, top+plotH/2)
	fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#333"/>`+"\n", left, top, plotW, plotH)
	for _, m := range marks {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888" stroke-dasharray="4 3"/>`+"\n", x(m.Seconds), top, x(m.Seconds), top+plotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#555" font-size="11">%s</text>`+"\n", x(m.Seconds)+3, top+12, escape(m.Label))
	}
	series := []struct {
		name, color string
		step        bool
		y           func(Sample) float64
	}{
		{"queued", "#2980b9", false, func(s Sample) float64 { return yJobs(float64(s.Queued)) }},
		{"running", "#27ae60", false, func(s Sample) float64 { return yRep(float64(s.Running)) }},
		{"replicas", "#c0392b", true, func(s Sample) float64 { return yRep(float64(s.Replicas)) }},
	}
	for i, sr := range series {
		var pts []string
		for j, s := range samples {
			if sr.step && j > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.Seconds), sr.y(samples[j-1])))
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.Seconds), sr.y(s)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", sr.color, strings.Join(pts, " "))
		lx := left + 10 + float64(i)*110
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`+"\n", lx, height-14, lx+20, height-14, sr.color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+25, height-10, sr.name)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
