package platformtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

var (
	rulesFile     = filepath.Join(repoRoot, "charts", "wasmwizard", "files", "prometheus-rules.yaml")
	dashboardFile = filepath.Join(repoRoot, "charts", "wasmwizard", "files", "grafana-dashboard.json")
)

// expectedMetrics are names the dashboard and rules may use that these
// tests' processes do not export: wasmwizard_jobs{state,queue} comes with
// the autoscaling figures (GET /v1/admin/scaling).
var expectedMetrics = map[string][]string{"wasmwizard_jobs": {"state", "queue"}}

// TestAlertRules checks the rule file and runs its unit tests.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	runPromtool(t, nil, "check", "rules", rulesFile)
	runPromtool(t, nil, "test", "rules", filepath.Join(repoRoot, "deploy", "prometheus", "rules-test.yaml"))
}

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Record string `yaml:"record"`
			Alert  string `yaml:"alert"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// queries returns every PromQL expression of the rules and the dashboard,
// by where it is, and the names the rules record.
func queries(t *testing.T) (map[string]string, map[string]bool) {
	t.Helper()
	out := map[string]string{}
	recorded := map[string]bool{}
	b, err := os.ReadFile(rulesFile)
	require.NoError(t, err)
	var rf ruleFile
	require.NoError(t, yaml.Unmarshal(b, &rf))
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
			out["rule "+r.Record+r.Alert] = r.Expr
		}
	}
	b, err = os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &d))
	require.Equal(t, "wasmwizard", d.UID)
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for i, tg := range p.Targets {
			require.NotEmpty(t, tg.Expr, "panel %q", p.Title)
			out["panel "+p.Title+" #"+string(rune('A'+i))] = tg.Expr
		}
	}
	return out, recorded
}

var (
	// selector: a metric name followed by its label matchers or a range.
	selectorRE = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*(\[[^\]]*\])?`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	stringRE   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
)

// promqlWords are PromQL's functions, aggregations and keywords: every
// other identifier outside parentheses after by/without/on/ignoring is a
// metric.
var promqlWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`sum min max avg count stddev stdvar topk bottomk quantile count_values group
		rate irate increase delta idelta changes resets deriv predict_linear histogram_quantile
		abs ceil floor round clamp clamp_min clamp_max exp ln log2 log10 sqrt time timestamp vector scalar
		absent absent_over_time avg_over_time min_over_time max_over_time sum_over_time count_over_time
		last_over_time quantile_over_time label_replace label_join sort sort_desc
		by without on ignoring group_left group_right and or unless bool offset inf nan`) {
		promqlWords[w] = true
	}
}

// metricRefs returns the metrics an expression reads, with the label names
// its matchers use.
func metricRefs(expr string) map[string][]string {
	refs := map[string][]string{}
	// Grouping labels are not metrics: drop "by (...)" and the like.
	expr = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`).ReplaceAllString(expr, " ")
	// A duration or number is not a metric either.
	expr = regexp.MustCompile(`\[[0-9a-z$_]+\]`).ReplaceAllString(expr, "[]")
	for _, m := range selectorRE.FindAllStringSubmatchIndex(expr, -1) {
		name := expr[m[2]:m[3]]
		if promqlWords[name] || (m[3] < len(expr) && strings.HasPrefix(strings.TrimSpace(expr[m[3]:]), "(")) {
			continue
		}
		if regexp.MustCompile(`^[0-9]`).MatchString(name) {
			continue
		}
		var labels []string
		if m[4] >= 0 {
			inner := stringRE.ReplaceAllString(expr[m[4]:m[5]], `""`)
			for _, lm := range matcherRE.FindAllStringSubmatch(inner, -1) {
				labels = append(labels, lm[1])
			}
		}
		refs[name] = append(refs[name], labels...)
	}
	return refs
}

func TestMetricRefs(t *testing.T) {
	t.Parallel()
	got := metricRefs(`histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{waits="false",route!="/v1/x{y}"}[5m]))) > 1
		and on (instance) b{component="worker"} / sum without (x) (c) * 2`)
	require.Equal(t, map[string][]string{"a_bucket": {"waits", "route"}, "b": {"component"}, "c": nil}, got)
}

// familyOf maps a series name to its metric family: a histogram's
// _bucket/_sum/_count series belong to it.
func familyOf(name string, fams map[string]*dto.MetricFamily) (*dto.MetricFamily, bool) {
	if f, ok := fams[name]; ok {
		return f, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f, ok := fams[base]; ok && (f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY) {
				return f, true
			}
		}
	}
	return nil, false
}

// checkQueriesUseExportedMetrics: every metric the dashboard and the alert
// rules read is one the API or the worker exports (or an expected one), with
// the labels the queries match on.
func checkQueriesUseExportedMetrics(t *testing.T, scraped ...map[string]*dto.MetricFamily) {
	t.Helper()
	qs, recorded := queries(t)
	require.NotEmpty(t, qs)
	for where, expr := range qs {
		for name, labels := range metricRefs(expr) {
			if recorded[name] {
				continue
			}
			if want, ok := expectedMetrics[name]; ok {
				for _, l := range labels {
					require.Contains(t, want, l, "%s: %s has no label %s", where, name, l)
				}
				continue
			}
			var fam *dto.MetricFamily
			for _, fams := range scraped {
				if f, ok := familyOf(name, fams); ok {
					fam = f
					break
				}
			}
			require.NotNil(t, fam, "%s reads %s, which neither the API nor the worker exports", where, name)
			have := []string{"le", "instance", "job"}
			for _, m := range fam.GetMetric() {
				for _, l := range m.GetLabel() {
					have = append(have, l.GetName())
				}
			}
			for _, l := range labels {
				require.True(t, slices.Contains(have, l), "%s: %s has no label %s", where, name, l)
			}
		}
	}
}
